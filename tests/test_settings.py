"""data/settings.py is the one place environment variables are defined: every FANZHA_* name in the
source is registered and read through it, nothing reads one from os.environ directly, and the
reference the docs are generated from lists them all."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data import settings

REPO = Path(__file__).resolve().parent.parent
SOURCE = ("serving", "training", "data", "fanzha", "bench")
SETTINGS_PY = REPO / "data" / "settings.py"


def _files(*trees: str) -> list[Path]:
    return sorted(p for tree in trees for p in (REPO / tree).rglob("*.py") if p != SETTINGS_PY)


def _dotted(node: ast.AST) -> str:
    """`os.environ` for os.environ, `environ` for a bare name; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _direct_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Reads of a registered or FANZHA_* variable that bypass data.settings: `X.get("NAME")` on any
    mapping, `os.getenv("NAME")`, `os.environ["NAME"]` (a load) and `"NAME" in os.environ`; and any
    os.environ / getenv read whose key is not a constant (a helper taking the name). Writes for a
    subprocess (`env["NAME"] = ...`, `env.pop(...)`, `{"NAME": ...}`) are not reads."""
    def watched(key: ast.AST) -> bool:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value.startswith("FANZHA_") or key.value in settings.REGISTRY
        return False

    def environ(node: ast.AST) -> bool:
        return _dotted(node).split(".")[-1] == "environ"

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = _dotted(node.func)
            getenv = name.split(".")[-1] == "getenv"
            get = (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                   and not _dotted(node.func.value).endswith("settings"))  # the accessor itself
            if (getenv or get) and watched(node.args[0]):
                found.append((node.lineno, ast.unparse(node)))
            elif (getenv or (get and environ(node.func.value))) and not isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and environ(node.value):
            if watched(node.slice) or not isinstance(node.slice, ast.Constant):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if watched(node.left) and any(environ(c) for c in node.comparators):
                found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def _constants(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_every_fanzha_name_in_the_source_is_registered():
    found = {}
    for path in _files(*SOURCE):
        for name in re.findall(r"FANZHA_[A-Z_]+", path.read_text(encoding="utf-8")):
            found.setdefault(name.rstrip("_"), path.relative_to(REPO))
    missing = {name: str(path) for name, path in found.items() if name not in settings.REGISTRY}
    assert not missing, f"not in data/settings.py REGISTRY: {missing}"


def test_every_registered_name_is_used():
    """As a string in code (`settings.get("NAME")`, a helper's argument), not only in a docstring: in
    the source, in the tests (the bench/test settings) or in a computed default of data/settings.py."""
    used = set()
    for path in _files(*SOURCE, "tests"):
        if path.name != "test_settings.py":
            used |= _constants(ast.parse(path.read_text(encoding="utf-8")))
    for node in ast.walk(ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))):  # a computed default's reads
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get":
            used |= _constants(node)
    unused = sorted(set(settings.REGISTRY) - used)
    assert not unused, f"registered in data/settings.py but read nowhere: {unused}"


def test_no_module_reads_a_setting_from_os_environ():
    reads = [f"{path.relative_to(REPO)}:{line}: {code}" for path in _files(*SOURCE)
             for line, code in _direct_reads(ast.parse(path.read_text(encoding="utf-8")))]
    assert not reads, "read these through data.settings instead:\n" + "\n".join(reads)


def test_the_scan_tells_reads_from_writes():
    code = '''
import os
a = os.environ.get("FANZHA_A")
b = os.getenv("FANZHA_B", "1")
c = os.environ["FANZHA_C"]
d = "FANZHA_D" in os.environ
e = env.get("FANZHA_E")
f = os.environ.get(name, "")
g = os.environ.get("MLFLOW_TRACKING_URI")
env["FANZHA_MODEL"] = "x"
env.pop("FANZHA_MODEL_TAG", None)
h = {"FANZHA_WORKERS": "2", **os.environ}
i = os.environ.get("WORLD_SIZE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")
'''
    code += 'j = settings.get("FANZHA_MODEL")\n'
    assert {line for line, _ in _direct_reads(ast.parse(code))} == {3, 4, 5, 6, 7, 8, 9}


def test_get_returns_the_default_when_unset_and_the_value_when_set(monkeypatch):
    monkeypatch.delenv("FANZHA_MAX_BODY_BYTES", raising=False)
    assert settings.get("FANZHA_MAX_BODY_BYTES") == "1048576"
    assert settings.get_int("FANZHA_MAX_BODY_BYTES") == 1 << 20
    monkeypatch.setenv("FANZHA_MAX_BODY_BYTES", "2048")
    assert settings.get("FANZHA_MAX_BODY_BYTES") == "2048" and settings.get_int("FANZHA_MAX_BODY_BYTES") == 2048
    monkeypatch.delenv("FANZHA_FEEDBACK_DB", raising=False)
    assert settings.get("FANZHA_FEEDBACK_DB") is None
    assert settings.get("FANZHA_FEEDBACK_DB", {"FANZHA_FEEDBACK_DB": "f.db"}) == "f.db"
    monkeypatch.setenv("FANZHA_FEEDBACK_SYNC_S", "0.5")
    assert settings.get_float("FANZHA_FEEDBACK_SYNC_S") == 0.5


def test_blank_is_unset_or_the_value_as_each_variable_was_read(monkeypatch):
    monkeypatch.setenv("FANZHA_DATA_DIR", "")  # `os.environ.get(...) or default` before
    assert settings.get("FANZHA_DATA_DIR") == str(REPO.parent / "shared" / "data")
    monkeypatch.setenv("FANZHA_MAX_QUEUE", "")  # int(os.environ.get(..., "4096")) before: an error
    with pytest.raises(ValueError, match="invalid literal"):
        settings.get_int("FANZHA_MAX_QUEUE")
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")
    monkeypatch.delenv("FANZHA_STATE_DIR", raising=False)
    assert settings.get("FANZHA_STATE_DIR") == "/srv/state/fanzha", "a computed default is computed per read"


def test_bools(monkeypatch):
    for raw, on in (("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False), ("", False)):
        monkeypatch.setenv("FANZHA_AUTH_HEALTH", raw)
        assert settings.get_bool("FANZHA_AUTH_HEALTH") is on, raw


def test_an_unknown_name_raises_at_once():
    for read in (settings.get, settings.get_int, settings.default):
        with pytest.raises(KeyError, match="FANZHA_MAX_BODY_BYTE is not a registered setting"):
            read("FANZHA_MAX_BODY_BYTE")


def test_every_setting_is_described():
    for s in settings.REGISTRY.values():
        assert 20 <= len(s.help) <= 400 and s.help.endswith("."), s.name
        assert s.help.count(". ") <= 3, f"{s.name}: one to three sentences"


def test_the_reference_has_every_name_under_its_area():
    text = settings.markdown()
    for s in settings.REGISTRY.values():
        assert f"| `{s.name}` |" in text, s.name
        section = text.split(f"## {s.area}\n", 1)[1].split("\n## ", 1)[0]
        assert f"`{s.name}`" in section, f"{s.name} outside its area {s.area}"
    assert text.count("| name | type | default | description |") == len(settings.AREAS)
    out = subprocess.run([sys.executable, "-m", "data.settings", "--markdown"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out == text


def test_settings_imports_only_the_standard_library():
    tree = ast.parse(SETTINGS_PY.read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules
