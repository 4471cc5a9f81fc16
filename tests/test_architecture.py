"""The layers of docs/architecture.md: every module imports only from its own layer or the ones below it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"offerpilot": "offerpilot", "envs": "offerpilot.envs", "encoders": "offerpilot.encoders", "agents": "offerpilot.agents",
           "evaluation": "offerpilot.evaluation", "ope": "offerpilot.ope", "deployment": "offerpilot.deployment"}
"""Each package folder and the import name it is installed as (pyproject's package-dir)."""
LAYERS = (
    ("core", ("offerpilot",)),
    ("envs", ("offerpilot.envs",)),
    ("encoders", ("offerpilot.encoders",)),
    ("agents", ("offerpilot.agents",)),
    ("evaluation", ("offerpilot.evaluation", "offerpilot.ope")),
    ("deployment", ("offerpilot.deployment",)),
    ("app", ("offerpilot.app", "offerpilot.__main__")),
)
"""Lowest first; a module may import its own layer and any below."""


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            found[".".join((package, *parts)).removesuffix(".__init__")] = path
    return found


def layer_of(module: str) -> int:
    """The index of ``module``'s layer: the longest package prefix that names one."""
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def imports_of(path: Path) -> set[str]:
    """Every ``offerpilot`` module ``path`` imports, at the top or inside a function, ``TYPE_CHECKING`` included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; write the full offerpilot.<layer> path")
    return {name for name in names if name == "offerpilot" or name.startswith("offerpilot.")}


def test_every_module_is_in_a_layer_and_imports_only_downward():
    found = modules()
    assert len(found) > 75  # the walk sees the whole package
    upward = []
    for module, path in found.items():
        assert layer_of(module) >= 0, f"{module} belongs to no layer"
        for name in imports_of(path):
            assert name in found or name.rsplit(".", 1)[0] in found, f"{path}: imports {name}, which is no module of offerpilot"
            if layer_of(name) > layer_of(module):
                upward.append(f"{path.relative_to(ROOT)}: {module} ({LAYERS[layer_of(module)][0]}) imports {name} ({LAYERS[layer_of(name)][0]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_walk_sees_an_upward_import(tmp_path):
    """The check can fail: a core module that imported the app would be reported."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from offerpilot.app.cli import main\n")
    assert layer_of("offerpilot.tables") < layer_of(next(iter(imports_of(path))))


@pytest.mark.parametrize("module", sorted(modules()))
def test_the_module_path_names_its_file(module):
    """``offerpilot.<folder>.<name>`` is ``<folder>/<name>.py``: the installed module is the file in the tree."""
    if module == "offerpilot.__main__":
        return  # importing it runs the command
    assert Path(importlib.import_module(module).__file__).resolve() == modules()[module].resolve()


def test_no_import_cycles():
    """No module reaches itself through its imports (lazy imports inside functions count): each file can be read
    knowing only the files below it."""
    found = modules()
    graph = {module: {name if name in found else name.rsplit(".", 1)[0] for name in imports_of(path)} - {module} for module, path in found.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if name not in graph:
                continue
            if state.get(name) == 1:
                cycles.append(" -> ".join(path[path.index(name):] + [name]))
            elif name not in state:
                visit(name, path + [name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
