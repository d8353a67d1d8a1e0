"""Where a sweep is defined and how to load it: a bare name is a module of the
project's `search_spaces/`; a path (`my_sweep.py`, `~/work/sweeps/fast.py`) is a
file anywhere on disk; `package.module` or `package.module:ATTR` is an
importable module. The module defines the sweep as `SWEEP` (or as ATTR).

A trial's process loads the same module before it builds its config (`import_sweep`),
so that what the module does on import, such as `register_model`, happens on
every Ray worker too. A file travels with its text: a node of a cluster where
the path does not exist runs the same code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ray import cloudpickle

from pipelines.errors import UsageError
from pipelines.search.sweep import Sweep

SWEEP_PACKAGE = "search_spaces"
SWEEP_ATTR = "SWEEP"
FILE_MODULE_PREFIX = "raysweep_sweep_"  # sys.modules name of a sweep loaded from a file


@dataclass(frozen=True)
class SweepRef:
    """Where one sweep is defined: small and picklable, so it travels to the trials."""

    name: str  # the CLI's and the results directory's name: the module's (file's) stem
    module: str  # its name in sys.modules
    attr: str = SWEEP_ATTR
    path: str | None = None  # a file sweep: its absolute path on the driver
    source: str | None = None  # a file sweep: its text, for nodes without the path

    @property
    def origin(self) -> str:
        """Where it came from, as --list and run.json show it."""
        if self.path:
            return self.path
        suffix = "" if self.attr == SWEEP_ATTR else f":{self.attr}"
        return f"{self.module}{suffix}"

    @property
    def argument(self) -> str:
        """What names it again on the command line (--resume keeps it)."""
        if self.module == f"{SWEEP_PACKAGE}.{self.name}":
            return self.name
        return self.path or self.origin

    def source_file(self) -> str:
        """The file it is defined in (relative to the working directory where it lies
        below it), once imported."""
        if self.path:
            return self.path
        path = getattr(sys.modules.get(self.module), "__file__", None) or "?"
        try:
            return str(Path(path).relative_to(Path.cwd()))
        except ValueError:
            return path


def sweep_names() -> list[str]:
    """The project's own sweeps, by CLI name: the modules of search_spaces/."""
    package = importlib.import_module(SWEEP_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                  if not m.name.startswith("_"))


def is_file_argument(text: str) -> bool:
    """Whether a sweep argument names a file (a .py path) rather than a module."""
    return text.endswith(".py") or "/" in text or "\\" in text


def sweep_name(text: str) -> str:
    """The name the sweep argument `text` gives its runs, without loading anything:
    a file's stem, a module's last part (with its ATTR), or the bare name."""
    if is_file_argument(text):
        return Path(text).stem
    module, _, attr = text.partition(":")
    name = module.rsplit(".", 1)[-1]
    return f"{name}_{attr.lower()}" if attr and attr != SWEEP_ATTR else name


def find_sweep(text: str) -> SweepRef:
    """The sweep `text` names (a bare name, a file path or `package.module[:ATTR]`);
    a UsageError saying what was looked for otherwise. Nothing is imported yet."""
    if not text:
        raise UsageError("name a sweep: a name from --list, a file such as my_sweep.py, or "
                         "package.module[:ATTR]")
    if is_file_argument(text):
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"sweep file {text} does not exist; give the path of a .py file "
                             f"that defines {SWEEP_ATTR} = Sweep(...)")
        if path.suffix != ".py":
            raise UsageError(f"sweep file {text} is not a .py file; a sweep is a Python module "
                             f"that defines {SWEEP_ATTR} = Sweep(...)")
        return SweepRef(sweep_name(text), FILE_MODULE_PREFIX + _identifier(path.stem),
                        path=str(path), source=path.read_text(encoding="utf-8"))
    module, _, attr = text.partition(":")
    if "." not in module and not attr:
        if text not in sweep_names():
            raise UsageError(f"unknown sweep {text!r}; known sweeps: {', '.join(sweep_names())}"
                             f" (see --list), or give a file (my_sweep.py) or package.module")
        return SweepRef(text, f"{SWEEP_PACKAGE}.{text}")
    if not all(part.isidentifier() for part in module.split(".")) or \
            (attr and not attr.isidentifier()):
        raise UsageError(f"sweep {text!r} is not a module path; write package.module or "
                         f"package.module:ATTR (or a file path ending in .py)")
    return SweepRef(sweep_name(text), module, attr or SWEEP_ATTR)


def _identifier(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in stem)
    return cleaned if cleaned.isidentifier() else f"_{cleaned}"


def import_sweep(ref: SweepRef) -> Sweep:
    """Import the module `ref` names (once per process, again if a file's text
    changed) and return its sweep, unchecked. A ValueError or TypeError that our
    own code raises while the module runs (a bad SegDataset, a model name registered
    twice) is a UsageError naming the file; errors of the user's own code keep
    their traceback."""
    try:
        module = _import_file(ref) if ref.source is not None else _import_module(ref)
    except (ValueError, TypeError) as e:
        if not _raised_by_us(e):
            raise
        raise UsageError(f"{ref.source_file()}: {e}") from None
    sweep = getattr(module, ref.attr, None)
    if not isinstance(sweep, Sweep):
        raise UsageError(f"{ref.origin} defines no {ref.attr} = Sweep(...); add one (from "
                         f"pipelines import Sweep)")
    return sweep


def _raised_by_us(error: BaseException) -> bool:
    """Whether the innermost frame of `error`'s traceback is raysweep's code."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    ours = [Path(__file__).resolve().parents[1]]  # pipelines/
    ours += [Path(m.__file__).resolve().parent for m in (sys.modules.get("models"),)
             if m is not None and m.__file__]
    return any(where.is_relative_to(root) for root in ours)


def _import_module(ref: SweepRef) -> ModuleType:
    try:
        return importlib.import_module(ref.module)
    except ModuleNotFoundError as e:
        if e.name and (ref.module == e.name or ref.module.startswith(e.name + ".")):
            raise UsageError(f"cannot import sweep module {ref.module!r} ({e}); run from the "
                             f"directory that holds its package, or install it") from None
        raise


def _import_file(ref: SweepRef) -> ModuleType:
    assert ref.source is not None and ref.path is not None
    digest = hashlib.sha256(ref.source.encode()).hexdigest()
    loaded = sys.modules.get(ref.module)
    if loaded is not None and getattr(loaded, "__raysweep_source_sha__", None) == digest:
        return loaded
    path = Path(ref.path)
    if path.parent.is_dir() and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # its own helper modules, as for a script
    spec = importlib.util.spec_from_loader(ref.module, loader=None, origin=ref.path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = ref.path
    module.__raysweep_source_sha__ = digest  # type: ignore[attr-defined]
    sys.modules[ref.module] = module  # before exec: dataclasses and pickling look it up
    try:
        exec(compile(ref.source, ref.path, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(ref.module, None)
        raise
    # what the module defines and Ray pickles to a trial (a data source or a function
    # in `fixed`, its trainable) travels by value: the trial's process may not have
    # imported the module yet when it unpickles them
    cloudpickle.register_pickle_by_value(module)
    return module


def load_sweep(sweep: str | SweepRef) -> Sweep:
    """The sweep a CLI argument names (see find_sweep), or `ref`'s, imported and checked."""
    loaded = import_sweep(find_sweep(sweep) if isinstance(sweep, str) else sweep)
    loaded.check()
    return loaded
