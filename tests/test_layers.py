"""The floor plan of ``utils/``: packages by layer, imports pointing down only, no circles.

A module may import its own package and any lower layer; peers (the same rank) do not import each
other. The short entry-point modules at the top (``utils.detector``, ``python -m utils.fidelity`` …)
sit above everything and nothing in the package imports them.
"""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

UTILS = ROOT / "utils"
RANKS = {  # lowest first
    "base": 0,        # errors, console, files, machine, stopping, plotting
    "tflite": 1,
    "runtime": 2,
    "yolo": 3,
    "media": 4, "darknet": 4,
    "evaluation": 5, "app": 5,  # app: the inference loop, its outputs and the live view
    "quantize": 6,    # the quantizer judges its candidates by evaluation's agreement mAP
    "testing": 7,     # code for tests and benches only: nothing in the product imports it
    "entry": 8,       # the documented short names
}
BASE = {"errors", "console", "files", "machine", "stopping", "plotting"}
ENTRY = {"detector", "fetch_weights", "edgetpu_check", "fidelity", "quant_debug"}


def modules() -> dict[str, Path]:
    """Dotted name (``utils.yolo.nms``) -> file, for every module under utils/."""
    found = {}
    for path in sorted(UTILS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in BASE):
        return "base"
    if len(parts) == 2 and parts[1] in ENTRY:
        return "entry"
    return parts[1]


def imports(path: Path, known: set[str]) -> set[str]:
    """The utils modules a file imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import (the house uses absolute ones)"
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name and name in known}
    return found


def graph() -> dict[str, set[str]]:
    files = modules()
    return {module: imports(path, set(files)) - {module} for module, path in files.items()}


def test_every_module_has_a_layer_and_every_package_says_what_it_holds():
    for module in modules():
        assert layer(module) in RANKS, f"{module}: a package the floor plan does not know (add it to RANKS)"
    for package in (p for p in UTILS.rglob("__init__.py") if p.parent != UTILS):
        docstring = ast.get_docstring(ast.parse(package.read_text()))
        assert docstring and len(docstring.splitlines()) <= 2, f"{package}: say in a line what the package holds"


def test_imports_point_down():
    wrong = []
    for module, imported in graph().items():
        for target in imported:
            own, other = layer(module), layer(target)
            if own == other and own != "entry":
                continue
            if other == "base" and target.count(".") == 0:
                continue  # ``utils`` itself (its __init__ only sets an environment default)
            if RANKS[other] >= RANKS[own]:
                wrong.append(f"{module} ({own}) imports {target} ({other})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(target):] + [module, target]))
            if target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_engine_imports_nothing_of_yolo():
    for module, imported in graph().items():
        if layer(module) in ("runtime", "tflite"):
            assert not {layer(target) for target in imported} & {"yolo"}, (module, imported)


def test_no_product_module_imports_test_code():
    """utils/testing/ (the stand-in Edge TPU, libdarknet, loopback cameras) is for tests and benches."""
    for module, imported in graph().items():
        if layer(module) != "testing":
            assert not {target for target in imported if layer(target) == "testing"}, (module, imported)


def test_the_adapter_runs_models_only_through_the_engine():
    """(The letterbox's resize graph runs on the same runtime, so ``letterbox`` uses ``interpreters``.)"""
    imported = graph()["utils.yolo.adapter"]
    assert "utils.runtime.engine" in imported, imported
    assert not imported & {"utils.runtime.interpreters", "utils.runtime.edgetpu", "utils.runtime.device_pool"}


def test_the_floor_plan_catches_a_wrong_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: an upward import and a circle are both reported."""
    package = tmp_path / "utils"
    (package / "runtime").mkdir(parents=True)
    (package / "yolo").mkdir()
    (package / "__init__.py").write_text('"""x"""\n')
    (package / "runtime" / "__init__.py").write_text('"""x"""\n')
    (package / "yolo" / "__init__.py").write_text('"""x"""\n')
    (package / "runtime" / "engine.py").write_text("def f():\n    from utils.yolo.nms import nms\n")
    (package / "yolo" / "nms.py").write_text("import utils.runtime.engine\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "UTILS", package)
    with pytest.raises(AssertionError, match="utils.runtime.engine \\(runtime\\) imports utils.yolo.nms"):
        test_imports_point_down()
    with pytest.raises(pytest.fail.Exception, match="import circle"):
        test_no_import_circles()
