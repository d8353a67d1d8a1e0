"""pipelines.lazy_exports: a package's public names load when first used, so a
trial worker (which unpickles its trainable by module path) imports what training
needs, not the driver; read in fresh interpreters, as a worker starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.lazy_exports import type_checking_imports
from tests.conftest import REPO

# what the driver needs and a trial does not: searchers (optuna, hyperopt), the run
# plan and runner, the analysis (scipy), the records' run directories
DRIVER_ONLY = ["optuna", "hyperopt", "scipy", "pipelines.search.searchers",
               "pipelines.tuning.runner", "pipelines.tuning.run_plan",
               "pipelines.tuning.final_score", "pipelines.analysis.ranking",
               "pipelines.records.run_record"]


def imported_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after `statement`."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_trial_worker_imports_the_trainer_and_not_the_driver():
    loaded = imported_after("import pipelines.tuning.trainable")
    assert {"torch", "ray.tune", "pipelines.training.classify"} <= loaded
    assert not loaded & set(DRIVER_ONLY), sorted(loaded & set(DRIVER_ONLY))


def test_a_public_name_loads_its_module_on_first_use_and_stays():
    loaded = imported_after("import pipelines.tuning")
    assert "pipelines.tuning.runner" not in loaded and "torch" not in loaded
    loaded = imported_after("from pipelines.tuning import run; import pipelines.tuning as t\n"
                            "assert t.run is run and 'run' in vars(t) and 'plan' in dir(t)")
    assert "pipelines.tuning.runner" in loaded
    # the sweep file's one import line: the sweep and its space, not the searchers
    loaded = imported_after("from pipelines import Budget, LogUniform, Sweep")
    assert {"pipelines.search.space", "pipelines.search.sweep"} <= loaded
    assert not loaded & {"optuna", "hyperopt", "pipelines.search.searchers"}


def test_type_checking_imports_are_read_from_the_source():
    source = '''
from typing import TYPE_CHECKING
from os import sep
if TYPE_CHECKING:
    from a.b import c, d as e
    from f import (
        g,
    )
    import h
if other:
    from x import y
'''
    assert type_checking_imports(source) == {"c": "a.b", "e": "a.b", "g": "f"}


def test_a_package_whose_all_names_an_unimported_name_fails_at_import(tmp_path, monkeypatch):
    package = tmp_path / "pkg_lazy"
    package.mkdir()
    (package / "mod.py").write_text("VALUE = 3\n")
    (package / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nfrom pipelines.lazy_exports import lazy_exports\n"
        "if TYPE_CHECKING:\n    from pkg_lazy.mod import VALUE\n"
        "__all__ = ['VALUE', 'OTHER']\n__getattr__, __dir__ = lazy_exports(__name__)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"\['OTHER'\], which .* does not import"):
        __import__("pkg_lazy")
    sys.modules.pop("pkg_lazy", None)
    (package / "__init__.py").write_text(
        (package / "__init__.py").read_text().replace(", 'OTHER'", ""))
    pkg = __import__("pkg_lazy")
    assert "VALUE" not in vars(pkg) and pkg.VALUE == 3 and "VALUE" in vars(pkg)
    with pytest.raises(AttributeError, match="'pkg_lazy' has no attribute 'OTHER'"):
        getattr(pkg, "OTHER")
    sys.modules.pop("pkg_lazy", None)
    sys.modules.pop("pkg_lazy.mod", None)

