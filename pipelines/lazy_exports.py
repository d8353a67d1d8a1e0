"""A package's public names, loaded when first used (PEP 562).

A package's `__init__.py` imports its public names under `if TYPE_CHECKING:`,
where type checkers and readers see them as ordinary imports, lists them in
`__all__`, and ends with

    __getattr__, __dir__ = lazy_exports(__name__)

The first `package.name` (or `from package import name`) then imports the one
module that defines `name`. Why: every trial worker unpickles its trainable by
module path, and importing a package ran its `__init__`, so a worker imported
the whole driver (the searchers, the analysis and its scipy, the run plan) to
train one configuration: ~4 s of each worker's start, and of every CLI call.

The name -> module map is read from the `__init__`'s own source (its
`if TYPE_CHECKING:` block's `from ... import ...` lines), so there is one list of
imports to keep, not two."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Callable

__all__ = ["lazy_exports", "type_checking_imports"]


def type_checking_imports(source: str) -> dict[str, str]:
    """{name: module} of every `from module import name` (or `name as alias`: the
    alias) inside the source's top-level `if TYPE_CHECKING:` blocks."""
    where: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                    for alias in stmt.names:
                        where[alias.asname or alias.name] = stmt.module
    return where


def lazy_exports(package: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package` (its `__name__`), whose
    `__init__.py` imports its public names under `if TYPE_CHECKING:`. A name
    loaded once is set on the package, so later lookups do not come here."""
    module = sys.modules[package]
    init = Path(module.__file__ or "")
    where = type_checking_imports(init.read_text(encoding="utf-8"))
    missing = set(getattr(module, "__all__", ())) - set(where)
    if missing:  # a programming error of the package's own: fail at its import
        raise ImportError(f"{package}.__all__ names {sorted(missing)}, which {init} does not "
                          f"import under TYPE_CHECKING")

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *where})

    return __getattr__, __dir__
