"""The code's structure, read from the source: no import cycle among the
project's modules, no module importing another's private (_underscore) name,
packages that use each other through their public API (`__all__`), and a
public API that resolves."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("pipelines", "models", "search_spaces")
# tests and benches import nothing private either: they are code that others read
IMPORTERS = (*PACKAGES, "tests", "bench")

Import = tuple[str, list[str], int]  # (imported module, names taken from it, line)


def module_files(roots: tuple[str, ...] = PACKAGES, repo: Path = REPO) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under `roots`."""
    modules = {}
    for root in roots:
        for path in sorted((repo / root).rglob("*.py")):
            parts = path.relative_to(repo).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import in the file: top level, inside functions and under
    TYPE_CHECKING alike, since each is a dependency a reader must follow.
    `from a.b import c` is an import of the module a.b.c when that exists, else
    of a.b (taking the name c)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
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


def enclosing_packages(module: str, importer: str) -> list[str]:
    """The packages whose __init__ runs when `importer` imports `module`: each
    package above `module` that does not also hold `importer` (a package's own
    modules import each other while its __init__ is running, as Python allows)."""
    parts = module.split(".")
    packages = [".".join(parts[:i]) for i in range(1, len(parts))]
    return [p for p in packages if not (importer == p or importer.startswith(p + "."))]


def import_graph(repo: Path = REPO) -> dict[str, set[str]]:
    modules = module_files(repo=repo)
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, _, _ in imports_of(name, path, known):
            targets |= {target, *enclosing_packages(target, name)}
        graph[name] = targets - {name}
    return graph


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


def private_imports(modules: dict[str, Path]) -> list[str]:
    """Imports of another module's _private name, or of a _private module."""
    known = set(modules)
    offences = []
    for name, path in modules.items():
        for target, names, line in imports_of(name, path, known):
            where = f"{path.name}:{line} imports {target}"
            offences += [f"{where}.{n}" for n in names if _is_private(n) and target != name]
            if any(_is_private(part) for part in target.split(".")):
                offences.append(where)
    return offences


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


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
    # importing a module of another package runs that package's __init__
    assert "pipelines.analysis" in graph["pipelines.tuning.experiment"]
    # ... but a package's own modules do not depend on its __init__
    assert "models" not in graph["models.resnet"]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    files = {"pkg/__init__.py": "", "pkg/a/__init__.py": "from pkg.a.x import f\n",
             "pkg/a/x.py": "from pkg.b.y import g\n", "pkg/b/__init__.py": "",
             "pkg/b/y.py": "from pkg.a.z import h\n", "pkg/a/z.py": ""}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = module_files(("pkg",), repo=tmp_path)
    known = set(modules)
    graph = {n: {t for imp in imports_of(n, p, known) for t in
                 (imp[0], *enclosing_packages(imp[0], n))} - {n} for n, p in modules.items()}
    # pkg.b.y imports pkg.a.z, which runs pkg.a's __init__, which imports pkg.a.x -> pkg.b.y
    assert find_cycle(graph) == ["pkg.a", "pkg.a.x", "pkg.b.y", "pkg.a"]


def test_no_import_cycle_among_the_projects_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_private_import_check_sees_private_names_and_modules(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "__init__.py").write_text("")
    (tmp_path / "p" / "a.py").write_text("_x = 1\ny = 2\n")
    (tmp_path / "p" / "_b.py").write_text("")
    (tmp_path / "p" / "c.py").write_text(
        "from p.a import _x, y\nimport p._b\ndef f():\n    from p.a import _x as z\n")
    offences = private_imports(module_files(("p",), repo=tmp_path))
    assert offences == ["c.py:1 imports p.a._x", "c.py:2 imports p._b",
                        "c.py:4 imports p.a._x"]


def test_no_module_imports_another_modules_private_name():
    assert private_imports(module_files(IMPORTERS)) == []


def _packages() -> list[str]:
    return sorted(n for n, p in module_files(("pipelines", "models")).items()
                  if p.name == "__init__.py")


@pytest.mark.parametrize("package", _packages())
def test_every_package_names_its_public_api_and_each_name_resolves(package):
    module = importlib.import_module(package)
    assert getattr(module, "__all__", None), f"{package}/__init__.py has no __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


@pytest.mark.parametrize("package", _packages())
def test_no_public_name_hides_a_module_of_its_package(package):
    # `from pkg.plan import plan` in pkg/__init__ would make `import pkg.plan as m`
    # give the function, and mock.patch("pkg.plan.x") patch an attribute of it
    module = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    assert not submodules & set(module.__all__)


def test_packages_use_each_other_through_their_public_api():
    """A module that takes a name from another subpackage takes one that the
    subpackage lists in its __all__ (a module object itself is fine too)."""
    packages = {p: importlib.import_module(p) for p in _packages()}
    modules = module_files((*PACKAGES, "bench"))
    known = set(module_files())
    missing = []
    for name, path in modules.items():
        for target, names, line in imports_of(name, path, known):
            owner = max((p for p in packages if target == p or target.startswith(p + ".")),
                        key=len, default=None)
            if owner is None or owner == "pipelines" or name.startswith(owner + "."):
                continue
            public = set(packages[owner].__all__)
            missing += [f"{path.name}:{line} {target}.{n} (not in {owner}.__all__)"
                        for n in names if n not in public and f"{target}.{n}" not in known]
    assert missing == []


def test_the_public_api_is_typed_as_it_is_exported():
    """pipelines/__init__ loads its names lazily; the names it imports for type
    checkers are exactly those it exports."""
    tree = ast.parse((REPO / "pipelines" / "__init__.py").read_text())
    typed = {alias.asname or alias.name
             for node in ast.walk(tree) if isinstance(node, ast.If)
             for stmt in node.body if isinstance(stmt, ast.ImportFrom)
             for alias in stmt.names}
    assert typed == set(importlib.import_module("pipelines").__all__)


def test_sweep_modules_import_only_the_public_api():
    for name, path in module_files(("search_spaces",)).items():
        for target, _, line in imports_of(name, path, set(module_files())):
            assert target == "pipelines" or target.startswith("search_spaces"), \
                f"{path.name}:{line} imports {target}; sweeps use `from pipelines import ...`"
