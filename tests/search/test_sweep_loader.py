"""Sweeps found by name, by file path anywhere on disk, or by module path; bad
references are one-line usage errors. The files live outside the repository."""

import re
import subprocess
import sys

import pandas as pd
import pytest

from pipelines.errors import UsageError
from pipelines.search.sweep_loader import find_sweep, import_sweep, load_sweep, sweep_name
from tests.conftest import REPO
from tests.user_sweeps import write_function_sweep


def test_a_sweep_file_outside_the_repository_loads_by_path(tmp_path):
    path = write_function_sweep(tmp_path / "elsewhere")
    ref = find_sweep(str(path))
    assert not path.is_relative_to(REPO)
    assert (ref.name, ref.path, ref.origin) == ("digits_loop", str(path), str(path))
    sweep = load_sweep(str(path))
    assert sweep.runs_function and sweep.metric == "val_nll" and sweep.mode == "min"
    assert sweep.task_name == "function" and sweep.trainable.__module__ == ref.module


def test_a_file_loads_again_from_its_shipped_text_where_its_path_is_gone(tmp_path):
    path = write_function_sweep(tmp_path)
    ref = find_sweep(str(path))
    sys.modules.pop(ref.module, None)
    path.unlink()  # another node of a cluster: the path does not exist there
    assert import_sweep(ref).description.startswith("digits MLP")


def test_package_module_and_attr_load_from_the_python_path(tmp_path, monkeypatch):
    package = tmp_path / "my_project" / "sweeps"
    package.mkdir(parents=True)
    (tmp_path / "my_project" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    write_function_sweep(package, name="loops")
    text = (package / "loops.py").read_text()
    (package / "loops.py").write_text(text + "\nFAST = SWEEP\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_sweep("my_project.sweeps.loops").metric == "val_nll"
    ref = find_sweep("my_project.sweeps.loops:FAST")
    assert (ref.name, ref.origin) == ("loops_fast", "my_project.sweeps.loops:FAST")
    assert import_sweep(ref).mode == "min"


def test_a_bare_name_is_still_a_module_of_search_spaces():
    ref = find_sweep("cifar_sweep")
    assert ref.module == "search_spaces.cifar_sweep" and sweep_name("cifar_sweep") == "cifar_sweep"


@pytest.mark.parametrize("text, message", [
    ("no_such_sweep", "unknown sweep 'no_such_sweep'; known sweeps: cifar_fast"),
    ("{tmp}/missing.py", "missing.py does not exist"),
    ("{tmp}/notes.txt", "is not a .py file"),
    ("no_such_package.sweeps", "cannot import sweep module 'no_such_package.sweeps'"),
    ("{tmp}/empty.py", "defines no SWEEP = Sweep(...)"),
    ("my-sweeps.fast", "is not a module path"),
])
def test_bad_sweep_references_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "empty.py").write_text("X = 1\n")
    (tmp_path / "notes.txt").write_text("lr: 0.1\n")
    with pytest.raises(UsageError, match="^[^\n]*" + re.escape(message)):
        load_sweep(text.replace("{tmp}", str(tmp_path)))


def run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pipelines.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


# the CLI's own main() in this process, run from the repository as run_cli is (a process
# of its own costs ~4 s of imports; the CLI as a process: tests/test_cli.py)
def test_list_shows_where_each_sweep_comes_from(tmp_path, capsys, monkeypatch):
    from pipelines.run import main

    monkeypatch.chdir(REPO)
    assert main(["--list"]) == 0
    builtin = capsys.readouterr()
    assert "[search_spaces/cifar_sweep.py]" in builtin.out, builtin.err
    path = write_function_sweep(tmp_path)
    assert main([str(path), "--list"]) == 0
    own = capsys.readouterr()
    assert own.out.startswith("digits_loop") and f"[{path}]" in own.out, own.err


def test_a_missing_sweep_file_is_exit_2_in_one_line(tmp_path, capsys, monkeypatch):
    from pipelines.run import main

    monkeypatch.chdir(REPO)
    code = main([str(tmp_path / "nope.py"), "--quick", "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "nope.py does not exist" in err and not (tmp_path / "r").exists()


def test_a_bad_value_our_code_refuses_at_import_names_the_file(tmp_path):
    bad = tmp_path / "seg_sweep.py"
    bad.write_text("from pipelines import SegDataset\n"
                   "DATA = SegDataset('x', mask_mode='indexed')\n")
    with pytest.raises(UsageError, match=f"^{re.escape(str(bad))}: .*mask_mode"):
        load_sweep(str(bad))
    own = tmp_path / "own_bug.py"
    own.write_text("raise ValueError('a bug of my own')\n")
    with pytest.raises(ValueError, match="a bug of my own"):  # the user's: a traceback
        load_sweep(str(own))


def test_what_a_sweep_file_defines_unpickles_where_the_file_was_never_imported(tmp_path):
    from ray import cloudpickle

    path = tmp_path / "with_helpers.py"
    path.write_text(
        "import dataclasses\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Thing:\n"
        "    n: int = 3\n"
        "    def twice(self):\n"
        "        return 2 * self.n\n"
        "SWEEP = None\n")
    with pytest.raises(UsageError):  # SWEEP is no Sweep, but the module ran
        import_sweep(find_sweep(str(path)))
    module = sys.modules[find_sweep(str(path)).module]
    blob = tmp_path / "thing.pkl"
    blob.write_bytes(cloudpickle.dumps(module.Thing(5)))
    out = subprocess.run([sys.executable, "-c", "import pickle, sys; "
                          "print(pickle.loads(open(sys.argv[1], 'rb').read()).twice())",
                          str(blob)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr


MODULE_SWEEP = '''
from pipelines import Budget, Choice, Sweep


def train(config, report):
    for epoch in range(config["epochs"]):
        report({"loss": config["x"] / (epoch + 1)})


SWEEP = Sweep(description="a module's sweep", trainable=train, metric="loss", mode="min",
              space={"x": Choice((1.0, 2.0))},
              quick=Budget(num_samples=1, max_epochs=2, grace_period=1, reduction_factor=2))
FAST = SWEEP
'''


@pytest.mark.integration
def test_a_package_module_attr_sweep_runs_on_ray_workers_from_the_users_directory(tmp_path):
    package = tmp_path / "my_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sweeps.py").write_text(MODULE_SWEEP)
    out = run_cli("my_pkg.sweeps:FAST", "--quick", "--algo", "grid", "--scheduler", "none",
                  "--storage", str(tmp_path / "r"), "--name", "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "r" / "sweeps_fast" / "run" / "trials.parquet")
    assert sorted(trials["best_loss"]) == [0.5, 1.0]  # both trials ran both epochs
