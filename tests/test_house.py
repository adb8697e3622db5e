"""The house rules that a reader would notice first: short functions, true layers.

The layers themselves are enforced by import-linter (``lint-imports``, run by ``.ci/run``)
from the contracts in pyproject.toml; this checks that the layers contract names every
package, and that the REST modules stay forbidden to import the Subsonic API.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).parents[1]
PACKAGE = REPO / "mosic"
FUNCTION_LINES_MAX = 60


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES_MAX:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert long == []


def _contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def test_the_layers_contract_names_every_package_and_module():
    (contract,) = [c for c in _contracts() if c["type"] == "layers"]
    named = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    present = {
        f"mosic.{p.stem if p.is_file() else p.name}"
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and not p.name.startswith("__"))
    }
    assert named == present


def test_the_rest_modules_may_not_import_the_subsonic_api():
    forbidden = [c for c in _contracts() if c["type"] == "forbidden"]
    assert [(c["source_modules"], c["forbidden_modules"]) for c in forbidden] == [
        (["mosic.api.*"], ["mosic.api.subsonic"])
    ]
