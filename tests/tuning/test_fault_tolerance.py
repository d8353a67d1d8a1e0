"""Failures a real sweep survives, through the CLI on an embedded local Ray:
a trial's worker process killed, the driver killed, Ctrl-C; every one ends
with each trial once and each epoch once in the Parquet files."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import processes as proc
from tests.conftest import data_dir

pytestmark = pytest.mark.integration
TRIAL_WORKER = "ray::ImplicitFunc"  # the process title of a function trainable's actor


def sweep_cmd(storage: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.run", "cifar_sweep", "--quick", "--algo", "random",
            "--scheduler", "none", "--val-size", "300", "--storage", str(storage),
            "--data-dir", str(data_dir()), "--name", "run", *args]


def reported_epochs(run_dir: Path) -> dict[str, list[int]]:
    """{trial: epochs in the order reported}, from Ray Tune's own per-trial logs."""
    return {log.parent.name: [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
            for log in (run_dir / "tune").glob("*/result.json")}


def assert_each_trial_and_epoch_once(run_dir: Path, trials_expected: int, epochs_each: int):
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == trials_expected and trials["trial_id"].is_unique
    assert (trials["stop_reason"] == "completed").all(), trials["stop_reason"].tolist()
    assert len(epochs) == trials_expected * epochs_each
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    return trials


def last_result(run_dir: Path, trial: str) -> dict:
    lines = (run_dir / "tune" / trial / "result.json").read_text().splitlines()
    return json.loads(lines[-1])


def trial_workers(session: int) -> list[int]:
    pids = []
    for pid in proc.live_session_pids(session):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(TRIAL_WORKER.encode()):
                pids.append(pid)
        except OSError:
            continue
    return pids


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "cifar_sweep" / "run"
    driver = proc.start(sweep_cmd(tmp_path, "--num-samples", "2", "--max-epochs", "5",
                                  "--train-size", "3000"), dict(os.environ),
                        tmp_path / "driver.log")
    try:
        trial = proc.wait_for(lambda: next((t for t, e in reported_epochs(run_dir).items()
                                             if len(e) >= 2), None), 180, "a second epoch")
        victim = last_result(run_dir, trial)["pid"]  # the worker running that trial
        assert victim in trial_workers(driver.pid)
        os.kill(victim, signal.SIGKILL)
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        proc.stop(driver)
    trials = assert_each_trial_and_epoch_once(run_dir, 2, 5).set_index("trial_id")
    assert trials["failures"].to_dict() == {t: int(t == trial) for t in trials.index}
    # restored from its checkpoint: Tune's log continues where it stopped (a restart
    # from scratch would report epoch 1 again), in a new worker process
    assert reported_epochs(run_dir)[trial] == [1, 2, 3, 4, 5]
    assert last_result(run_dir, trial)["pid"] != victim


def test_killed_driver_then_resume_finishes_the_run(tmp_path):
    run_dir = tmp_path / "cifar_sweep" / "run"
    driver = proc.start(sweep_cmd(tmp_path, "--num-samples", "6", "--max-epochs", "3",
                                  "--train-size", "3000"), dict(os.environ),
                        tmp_path / "driver.log")

    def finished_trials():
        if not (run_dir / "trials.parquet").exists():
            return set()
        trials = pd.read_parquet(run_dir / "trials.parquet")
        return set(trials.loc[trials["status"] == "TERMINATED", "trial_id"])

    try:
        done_before = proc.wait_for(finished_trials, 240, "a finished trial")
        # Tune saves its experiment state every experiment.EXPERIMENT_STATE_EVERY_S (2 s):
        # trials that finished longer ago than that are in the state the resume reads
        time.sleep(3)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        proc.stop(driver)  # the embedded Ray it started, if anything of it survived
    assert len(finished_trials()) < 6, "kill the driver mid-sweep, not after it"
    logs_before = {t: (run_dir / "tune" / t / "result.json").read_text() for t in done_before}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    proc.run_to_completion([sys.executable, "-m", "pipelines.run", "--resume", str(run_dir),
                            "--data-dir", str(data_dir())], dict(os.environ),
                           tmp_path / "resume.log")
    assert_each_trial_and_epoch_once(run_dir, 6, 3)
    for trial, log in logs_before.items():  # finished trials did not run again
        assert (run_dir / "tune" / trial / "result.json").read_text() == log
    meta = json.loads((run_dir / "run.json").read_text())
    assert len(meta["resumed"]) == 1 and meta["end_time"]


GOOD_RUN_JSON = json.dumps({"status": "interrupted", "metric": "val_acc", "mode": "max",
                            "options": {"sweep": "cifar_sweep"}})
RESUME_ERRORS = [  # (arguments, run.json, message)
    (["--resume", "{run}"], json.dumps({"status": "interrupted", "metric": "m", "mode": "max",
                                        "options": {"sweep": "/gone/job_dir/my_sweep.py"}}),
     "which is gone (a job's working directory?); give the sweep file's path now: "
     "python -m pipelines.run path/to/my_sweep.py --resume"),
    (["--resume", "{tmp}"], GOOD_RUN_JSON, "is not a results directory (no run.json)"),
    (["--resume", "{run}", "--algo", "grid"], GOOD_RUN_JSON,
     "--resume continues the run as it was started (only --address and --data-dir may "
     "change); drop --algo"),
    (["other_sweep", "--resume", "{run}"], GOOD_RUN_JSON,
     "is a run of 'cifar_sweep', not 'other_sweep'"),
    (["--resume", "{run}"], GOOD_RUN_JSON, "has no saved Ray Tune state"),
    (["--resume", "{run}"], "{not json", "cannot read"),
    (["--resume", "{run}"], json.dumps({"status": "running", "metric": "m", "mode": "max"}),
     "has no run options"),
    (["--resume", "{run}"], json.dumps({"status": "running", "metric": "m", "mode": "max",
                                        "options": {"lr_x": 1}}),
     "has options this raysweep does not know (lr_x)"),
]


@pytest.mark.parametrize("args,run_json,message", RESUME_ERRORS)
def test_bad_resume_is_one_line_exit_2(tmp_path, capsys, args, run_json, message):
    from pipelines.run import main

    run = tmp_path / "cifar_sweep" / "run"
    run.mkdir(parents=True)
    (run / "run.json").write_text(run_json)
    code = main([a.format(tmp=tmp_path, run=run) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert message in err
    assert (run / "run.json").read_text() == run_json
    assert [p.name for p in run.iterdir()] == ["run.json"]


def test_resuming_a_finished_run_is_refused(tmp_path, capsys):
    from pipelines.run import main  # in-process, as above: no process's ~4 s of imports

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(
        {"status": "finished", "metric": "val_acc", "mode": "max",
         "options": {"sweep": "cifar_sweep"}}))
    code = main(["--resume", str(run)])
    assert code == 2 and "already finished; nothing to resume" in capsys.readouterr().err


@pytest.mark.integration
def test_a_run_saved_by_another_module_layout_is_refused_in_one_line(tmp_path, capsys):
    """Tune pickles our classes by module path (tuner.pkl); a run saved by a raysweep
    whose modules lived elsewhere (here: the flat pipelines.progress of earlier
    versions) cannot be restored by this one, and says so instead of a traceback."""
    from pipelines.run import main

    run = tmp_path / "cifar_sweep" / "run"
    (run / "tune").mkdir(parents=True)
    run_json = json.dumps({"status": "interrupted", "metric": "val_acc", "mode": "max",
                           "options": {"sweep": "cifar_sweep", "quick": True,
                                       "train_size": 100, "val_size": 100}})
    (run / "run.json").write_text(run_json)
    # a pickle of pipelines.progress.ResultRecorder, as an earlier version's tuner.pkl held
    (run / "tune" / "tuner.pkl").write_bytes(b"cpipelines.progress\nResultRecorder\n.")
    (run / "tune" / "experiment_state-2026-11-30_12-00-00.json").write_text("{}")
    code = main(["--resume", str(run), "--data-dir", str(data_dir())])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[-1].startswith("error: "), err
    assert "modules were laid out differently" in err[-1] and "pipelines.progress" in err[-1]
    assert (run / "run.json").read_text() == run_json  # nothing half-written
