"""The package's modules import each other without circles: every import of one lstm_native module by another
(at module level or inside a function, relative or absolute) is an edge, and the graph has no cycle. Every
module imports on its own."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import pathlib

import pytest

import lstm_native

PACKAGE_DIR = pathlib.Path(lstm_native.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = ("lstm_native",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}
# The compiled modules (lstm_native._core...) import nothing of the package, but are modules all the same.
EXTENSIONS = {_module_name(path.parent / path.name.split(".")[0]) for suffix in importlib.machinery.EXTENSION_SUFFIXES
              for path in PACKAGE_DIR.rglob(f"*{suffix}")}


def _imported_modules(name: str, path: pathlib.Path) -> set:
    """The package's modules that the module ``name`` imports anywhere in its code. ``from P import x`` imports
    the module P.x if there is one, else P (x is a name of P)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            imported.update(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES.keys() | EXTENSIONS
                            else source for alias in node.names)
    return {module for module in imported if module in MODULES and module != name}


def _cycle(graph: dict):
    """A cycle of ``graph`` (module -> imported modules) as a list of modules, or None."""
    state = {}  # module -> "open" while on the current path, "done" when all it reaches is cycle-free
    path = []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = {name: _imported_modules(name, path) for name, path in MODULES.items()}
    assert graph["lstm_native.models"] >= {"lstm_native.saving", "lstm_native.training"}  # the parser sees imports
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_saving_does_not_know_the_model_class():
    path = MODULES["lstm_native.saving"]
    assert "lstm_native.models" not in _imported_modules("lstm_native.saving", path)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    assert importlib.import_module(name).__name__ == name
