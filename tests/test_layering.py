"""The layers hold: serving imports no torch / datasets, and training and serving never import each other."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[str]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_serving_does_not_import_torch_in_a_clean_interpreter():
    code = ("import sys, serving.predictor, serving.batch.score, serving.service, serving.server, serving.policy, serving.certify; "
            "bad = [m for m in ('torch', 'datasets', 'training') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_static_import_boundaries():
    assert not {"torch", "datasets", "training", "transformers"} & _imports("serving")
    assert "serving" not in _imports("training")
    assert not {"training", "serving", "torch", "fanzha"} & _imports("data")
