"""The code's structure, read from the source: no import cycle among the
project's modules, no module importing another's private (_underscore) name,
and a public API that resolves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("pipelines", "models", "search_spaces")
# private names may be imported by these too: tests and benches are code that others read
IMPORTERS = (*PACKAGES, "tests", "bench")


def module_files(roots=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under `roots`."""
    modules = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file:
    top level, inside functions and under TYPE_CHECKING alike, since each is a
    dependency a reader must follow. `from a.b import c` is an import of the
    module a.b.c when that exists, else of a.b (taking the name c)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.append((f"{base}.{alias.name}", [], node.lineno))
                elif base in known:
                    found.append((base, [alias.name], node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    known = set(modules)
    return {name: {target for target, _, _ in imports_of(name, path, known) if target != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None (depth-first)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    # function-level (lazy) imports count: run.py imports the runner inside main()
    assert "pipelines.tuning.runner" in graph["pipelines.run"]
    # `from pipelines.records import tables as res` is an import of the module
    assert "pipelines.records.tables" in graph["pipelines.tuning.experiment"]
    # TYPE_CHECKING imports count too
    assert "pipelines.search" in graph["pipelines"]


def test_no_import_cycle_among_the_projects_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_another_modules_private_name():
    modules = module_files(IMPORTERS)
    known = set(modules)
    offences = [f"{path.relative_to(REPO)}:{line} imports {target}.{taken}"
                for name, path in modules.items()
                for target, names, line in imports_of(name, path, known)
                for taken in names
                if taken.startswith("_") and not taken.startswith("__") and target != name]
    private_modules = [f"{path.relative_to(REPO)} imports {target}"
                       for name, path in modules.items()
                       for target, _, _ in imports_of(name, path, known)
                       if any(p.startswith("_") and not p.startswith("__")
                              for p in target.split("."))]
    assert not offences + private_modules


@pytest.mark.parametrize("package", sorted(
    n for n, p in module_files(("pipelines",)).items() if p.name == "__init__.py"))
def test_every_package_names_its_public_api_and_each_name_resolves(package):
    module = importlib.import_module(package)
    assert getattr(module, "__all__", None), f"{package}/__init__.py has no __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_sweep_modules_import_only_the_public_api():
    for name, path in module_files(("search_spaces",)).items():
        for target, _, line in imports_of(name, path, set(module_files())):
            assert target == "pipelines" or target.startswith("search_spaces"), \
                f"{path.name}:{line} imports {target}; sweeps use `from pipelines import ...`"
