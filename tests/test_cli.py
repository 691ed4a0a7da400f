"""The `fanzha` command dispatches to every subcommand and fails clearly on unknown ones."""
import subprocess
import sys

from fanzha.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "evaluate", "export", "score", "serve"):
        assert name in COMMANDS and name in out


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_each_subcommand_has_help():
    for name in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "fanzha", name, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (name, result.stderr[-500:])
        assert "usage" in result.stdout.lower(), name
