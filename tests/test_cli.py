"""The CLI as a user runs it: one real sweep, and bad input."""

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.search.sweep_loader import sweep_names
from tests.conftest import REPO, data_dir
from tests.digits import write_digits_parquet
from tests.user_sweeps import write_data_sweep


def cli(*args, storage, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run", *args, "--storage", str(storage),
         "--data-dir", str(data_dir())],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def in_process(capsys, *args, storage, data=None) -> tuple[int, str]:
    """The CLI's own main() in this process (a process of its own costs ~4 s of
    imports; the process as a whole: the tests that use `cli`): its exit code and
    what it wrote to stderr."""
    from pipelines.run import main

    capsys.readouterr()
    code = main([*args, "--storage", str(storage), "--data-dir", str(data or data_dir())])
    return code, capsys.readouterr().err


@pytest.mark.integration
def test_quick_sweep_end_to_end(cli_sweep):
    # the session's one CLI sweep (conftest.cli_sweep: 6 trials, test_analyze reads it too)
    out = cli_sweep.out
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("results: ")
    run_dir = cli_sweep.storage / "cifar_sweep" / last.removeprefix("results: ").split("/")[-1]
    assert run_dir.is_dir()
    assert "top 5 of 6 trials by val_acc" in out.stdout  # the leaderboard's 5 best
    assert "trials: 6/6 done" in out.stderr  # live progress
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 6 and epochs["trial_id"].isin(trials["trial_id"]).all()
    assert trials["best_val_acc"].max() > 0.2  # above chance: it really trained


def test_help_exits_0(tmp_path):
    out = cli("--help", storage=tmp_path)
    assert out.returncode == 0 and "--algo" in out.stdout and not out.stderr


def test_list_shows_sweeps_with_descriptions(tmp_path, capsys):
    # in-process; the process's --list: the test below
    from pipelines.run import main

    code = main(["--list", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and listed == sweep_names()
    assert "CIFAR-10 in stages" in out


def test_a_reader_that_stops_early_ends_the_list_quietly():
    # `python -m pipelines.run --list | head -1`: the reader is gone before the write
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.run", "--list"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


BAD_INPUT = [
    (["nope"], "unknown sweep 'nope'; known sweeps: cifar_fast, cifar_size, cifar_staged, "
               "cifar_sweep"),
    ([], "name a sweep"),
    (["cifar_sweep", "--algo", "bayes"], "unknown --algo 'bayes'"),
    (["cifar_sweep", "--scheduler", "pbt"], "unknown --scheduler 'pbt'"),
    (["cifar_sweep", "--max-epochs", "zero"], "invalid int value: 'zero'"),
    (["cifar_sweep", "--max-epochs", "0"], "--max-epochs must be >= 1"),
    (["cifar_sweep", "--quick", "--grace-period", "9"], "exceeds --max-epochs"),
    (["cifar_sweep", "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
    (["cifar_sweep", "--train-size", "48000"], "lower --train-size or --val-size"),
    (["cifar_sweep", "--val-size", "5"], "--val-size 5 is smaller than the 10 classes"),
    (["cifar_sweep", "--name", "a/b"], "must be a plain directory name"),
    (["cifar_sweep", "--name", ".."], "must be a plain directory name"),
    (["cifar_sweep", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["cifar_staged", "--num-samples", "3"], "runs in stages, each with its own number"),
    (["membrane_unet", "--lr-range", "auto"], "--lr-range auto runs on classification sweeps"),
    (["cifar_sweep", "--lr-range", "manual"], "invalid choice: 'manual'"),
    (["cifar_sweep", "--max-failures", "-1"], "--max-failures must be >= 0, got -1"),
    (["cifar_sweep", "--reduction-factor", "1"], "--reduction-factor must be >= 2, got 1"),
    (["cifar_sweep", "--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0, got -1.0"),
    (["cifar_sweep", "--address", "ray://10.0.0.1:10001"],
     "--address ray://10.0.0.1:10001: Ray Client (ray://) is not supported"),
    (["cifar_sweep", "--address", "head"], "give the head node's host:port"),
    (["cifar_sweep", "--keep-checkpoints", "-1"], "--keep-checkpoints must be >= 0, got -1"),
    (["cifar_sweep", "--keep-checkpoints", "all"], "invalid int value: 'all'"),
    # issue 16: several objectives, constraints, --confirm, --batch-size
    (["cifar_size", "--algo", "hyperopt"], "--algo hyperopt searches one objective"),
    (["cifar_sweep", "--max-params", "0"], "--max-params must be > 0, got 0"),
    (["cifar_sweep", "--max-memory-mb", "-5"], "--max-memory-mb must be > 0, got -5.0"),
    (["cifar_sweep", "--confirm", "0"], "--confirm must be >= 1"),
    (["cifar_sweep", "--confirm-seeds", "2"], "add --confirm K, or drop --confirm-seeds"),
    (["cifar_sweep", "--batch-size", "max"], "invalid choice: 'max'"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_nothing_written(cifar_cache, tmp_path, capsys, args,
                                                      message):
    # in-process (the CLI's own main); the process as a whole: the test below.
    # cifar_cache: decoded beforehand, so no "decoding CIFAR-10 ..." progress line precedes
    # the error when this test happens to be the first to need the data
    from pipelines.run import main

    code = main([*args, "--storage", str(tmp_path / "results"), "--data-dir", str(data_dir())])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "results").exists()


def _bad_data(tmp_path, case):
    """The arguments of a run whose data is wrong in one way, and the file it names."""
    data = tmp_path / "data"
    if case == "CIFAR-10 file damaged":
        broken = data / "train-00000-of-00001.parquet"
        data.mkdir()
        broken.write_bytes(np.random.default_rng(0).bytes(4096))  # a failed download, say
        return ["cifar_sweep", "--quick", "--data-dir", str(data)], \
            f"{broken} is not a readable Parquet file"
    if case == "CIFAR-10 file without label":
        write_digits_parquet(data, 20, image="img", label="y")
        return ["cifar_sweep", "--quick", "--data-dir", str(data)], \
            f"{data / 'train-00000-of-00001.parquet'} has no column 'label' (its columns: " \
            f"img, y); CIFAR-10's files have columns img and label"
    root = write_digits_parquet(data / "digits", 40)  # a user's own data, from a sweep file
    broken = root / "train-00000-of-00001.parquet"
    broken.write_bytes(broken.read_bytes()[:1000])  # cut short
    sweep_file = write_data_sweep(tmp_path / "my_project",
                                  f"ParquetImages({str(root)!r}, image='image', label='digit')")
    return [str(sweep_file), "--quick"], f"{broken} is not a readable Parquet file"


@pytest.mark.parametrize("case", ["CIFAR-10 file damaged", "CIFAR-10 file without label",
                                  "a sweep file's ParquetImages damaged"])
def test_bad_data_is_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, case):
    from pipelines.run import main

    args, message = _bad_data(tmp_path, case)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    code = main([*args, "--storage", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_an_address_without_a_cluster_fails_within_30_s(tmp_path):
    # Ray's own connect retries an address where nothing listens for minutes
    start = time.monotonic()
    out = cli("cifar_sweep", "--quick", "--address", "127.0.0.1:1", storage=tmp_path / "r",
              timeout=30)
    assert time.monotonic() - start < 30
    assert out.returncode == 2 and out.stderr == (
        "error: no Ray cluster at 127.0.0.1:1 (Connection refused); start one with `ray start "
        "--head` or drop --address\n")
    assert not (tmp_path / "r").exists()


def test_a_name_that_exists_is_never_overwritten(cifar_cache, tmp_path, capsys):
    earlier = tmp_path / "r" / "cifar_sweep" / "mine"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text('{"status": "finished"}')
    (earlier / "trials.parquet").write_bytes(b"the earlier run's results")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in earlier.iterdir()}
    code, err = in_process(capsys, "cifar_sweep", "--quick", "--name", "mine",
                           storage=tmp_path / "r")
    assert code == 2 and err == (
        f"error: {earlier} already exists and results are never overwritten; choose another "
        f"--name\n")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in earlier.iterdir()} == before
    assert [p.name for p in earlier.parent.iterdir()] == ["mine"]  # no other run either


def test_bad_input_exits_2_without_a_traceback(tmp_path):
    out = cli("cifar_sweep", "--max-epochs", "0", storage=tmp_path / "results")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr and "--max-epochs must be >= 1" in out.stderr


def test_missing_data_is_one_line(tmp_path, capsys):
    code, err = in_process(capsys, "cifar_sweep", "--quick", storage=tmp_path / "results",
                           data=tmp_path / "empty")
    assert code == 2 and err.count("\n") == 1
    assert "no CIFAR-10 found" in err and "--data-dir" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "empty").exists()


def test_gpus_without_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = in_process(capsys, "cifar_sweep", "--quick", "--gpus-per-trial", "0.5",
                           storage=tmp_path / "r")
    assert code == 2 and "no CUDA GPU" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_unwritable_storage_is_refused(tmp_path, capsys):
    code, err = in_process(capsys, "cifar_sweep", "--quick",
                           storage="/proc/raysweep-results")  # not even root can write there
    assert code == 2 and "is not writable" in err
    file_storage = tmp_path / "a_file"
    file_storage.write_text("")
    code, err = in_process(capsys, "cifar_sweep", "--quick", storage=file_storage)
    assert code == 2 and "is a file, not a directory" in err


def test_grid_without_grid_points_names_the_parameter(tmp_path, capsys):
    source = SWEEP_HEADER + (
        "SWEEP = Sweep(description='d', space={'lr': LogUniform(1e-3, 1.0)}, full=b, "
        "quick=b)\n"
    )
    code, err = in_process(capsys, str(_extra_sweep(tmp_path, "no_grid", source)), "--algo",
                           "grid", storage=tmp_path / "r")
    assert code == 2, err
    assert "parameter 'lr' has no grid points" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def _extra_sweep(tmp_path, module: str, source: str):
    """One more sweep: a file of the user's, in tmp_path/my_sweeps."""
    sweeps = tmp_path / "my_sweeps"
    sweeps.mkdir(exist_ok=True)
    (sweeps / f"{module}.py").write_text(source)
    return sweeps / f"{module}.py"


def _run_with_extra_sweep(tmp_path, module: str, source: str, *args):
    """Run the CLI on one more sweep, `_extra_sweep`'s."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run", str(_extra_sweep(tmp_path, module, source)),
         "--storage", str(tmp_path / "r"), "--data-dir", str(data_dir()), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


SWEEP_HEADER = (
    "from pipelines import Budget, Choice, LogUniform, Sweep\n"
    "b = Budget(num_samples=2, max_epochs=4, grace_period=1, reduction_factor=2, "
    "train_size=300, val_size=100)\n"
)


@pytest.mark.integration
def test_failing_and_diverging_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    # simple_cnn has one conv layer: depth 9 raises inside the trial; lr 1e6 diverges
    source = SWEEP_HEADER + (
        "SWEEP = Sweep(description='d', space={'depth': Choice((1, 9)), "
        "'lr': Choice((0.05, 1e6))}, fixed={'model': 'simple_cnn', 'width': 4, "
        "'schedule': 'constant'}, full=b, quick=b, default_algo='grid')\n"
    )
    out = _run_with_extra_sweep(tmp_path, "broken", source, "--max-failures", "0",
                                "--scheduler", "none")
    assert out.returncode == 0, out.stderr
    assert "has exactly one conv layer" in out.stderr  # the failing trial's error, on one line
    run_dir = next((tmp_path / "r" / "broken").iterdir())
    trials = pd.read_parquet(run_dir / "trials.parquet").set_index(["config/depth", "config/lr"])
    assert trials.loc[(9, 0.05), "stop_reason"] == "error"
    assert trials.loc[(9, 0.05), "status"] == "ERROR"
    assert trials.loc[(1, 1e6), "stop_reason"] == "diverged"
    assert trials.loc[(1, 0.05), "stop_reason"] == "completed"
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    diverged = epochs[epochs["trial_id"] == trials.loc[(1, 1e6), "trial_id"]]
    assert len(diverged) < 4 and not np.isfinite(diverged["train_loss"].iloc[-1])
    assert np.isfinite(diverged["train_loss"].iloc[:-1]).all()  # stopped at once
