"""A sweep with its own training loop, from a file outside the repository, on
scikit-learn's digits (not CIFAR-10): every search algorithm under ASHA with a
metric of the user's naming that is better lower (mode="min"), and a resume after
the driver is killed with -9 that loses or doubles no trial and no epoch."""

import json
import os
import signal
import sys
import time

import pandas as pd
import pytest

from pipelines.tuning.run_plan import RunOptions
from pipelines.tuning.runner import run
from tests import processes as proc
from tests.conftest import REPO
from tests.user_sweeps import write_function_sweep

pytestmark = pytest.mark.integration



def reported_epochs(run_dir):
    """{trial: epochs in the order reported}, from Ray Tune's own per-trial logs."""
    return {log.parent.name: [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
            for log in (run_dir / "tune").glob("*/result.json")}


def assert_each_epoch_once(run_dir, trials):
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    for trial_id, group in epochs.groupby("trial_id"):
        assert sorted(group["epoch"]) == list(range(1, len(group) + 1))
        assert reported_epochs(run_dir)[trial_id] == list(range(1, len(group) + 1))
    assert trials.set_index("trial_id")["epochs"].to_dict() == \
        epochs.groupby("trial_id").size().to_dict()
    return epochs


# the single-objective algorithms of every kind; NSGA-II and the GP: test_objectives.py
@pytest.mark.parametrize("algo", ["grid", "random", "optuna", "hyperopt"])
def test_every_algorithm_minimises_the_users_metric_under_asha(tmp_path, algo, capsys,
                                                              local_ray):
    sweep_file = write_function_sweep(tmp_path / "user_repo")
    assert not sweep_file.is_relative_to(REPO)
    location = run(RunOptions(sweep=str(sweep_file), quick=True, algo=algo, scheduler="asha",
                              storage=str(tmp_path / "results"), name="run"))
    run_dir = tmp_path / "results" / "digits_loop" / "run"
    assert location.path == str(run_dir)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 6 and (trials["status"] == "TERMINATED").all()  # grid: 3 x 2
    epochs = assert_each_epoch_once(run_dir, trials)
    # the user's own metrics, every one of them, per epoch
    assert {"val_nll", "val_error", "resumed_at"} <= set(epochs.columns)
    # mode="min": a trial's best is its lowest epoch, and the leaderboard ascends
    lowest = epochs.groupby("trial_id")["val_nll"].min()
    assert trials.set_index("trial_id")["best_val_nll"].to_dict() == \
        pytest.approx(lowest.to_dict())
    # ASHA acted: it stopped some trials before the 4 epochs, and none that had the
    # lowest val_nll at the rung where it stopped (ASHA maximising would stop those)
    stopped = trials[trials["stop_reason"] == "early_stopped"]
    assert len(stopped) >= 1 and (stopped["epochs"] < 4).all()
    at = epochs.pivot(index="trial_id", columns="epoch", values="val_nll")
    for trial_id, rung in zip(stopped["trial_id"], stopped["epochs"]):
        assert at.loc[trial_id, rung] > at[rung].min()
    assert trials["best_val_nll"].min() < 1.5  # it learned: chance is ln(10) = 2.30
    out = capsys.readouterr().out
    best_row = out.split("trials by val_nll:")[1].splitlines()[2]
    assert f"{trials['best_val_nll'].min():.4f}"[:5] in best_row
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["mode"], meta["metric"], meta["task"]) == ("min", "val_nll", "function")
    assert meta["sweep_origin"] == str(sweep_file)


def test_a_killed_driver_resumes_with_no_trial_or_epoch_lost_or_doubled(tmp_path):
    sweep_file = write_function_sweep(tmp_path / "user_repo", sleep_s=0.7)
    run_dir = tmp_path / "results" / "digits_loop" / "run"
    # no early stopping here (ASHA has its own tests): a trial two epochs in has 6 more
    # (4+ s) to go, so it is still running when the driver is killed 2.5 s later; four
    # trials, two at a time (six would only add a round to the resume)
    cmd = [sys.executable, "-m", "pipelines.run", str(sweep_file), "--quick", "--algo", "random",
           "--scheduler", "none", "--num-samples", "4", "--max-epochs", "8",
           "--keep-checkpoints", "1", "--storage", str(tmp_path / "results"), "--name", "run"]
    driver = proc.start(cmd, dict(os.environ), tmp_path / "driver.log")

    def finished():
        if not (run_dir / "trials.parquet").exists():
            return set()
        trials = pd.read_parquet(run_dir / "trials.parquet")
        return set(trials.loc[trials["status"] == "TERMINATED", "trial_id"])

    def midway():  # a trial that reported 2 epochs of 8 and goes on
        done = finished()
        return [t for t, e in reported_epochs(run_dir).items() if len(e) >= 2 and t not in done]

    try:
        proc.wait_for(midway, 240, "a trial two epochs in")
        time.sleep(2.5)  # Tune's experiment state is saved every 2 s
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        proc.stop(driver)
    done_before = finished()
    assert len(done_before) < 4, "kill the driver mid-sweep, not after it"
    logs_before = {t: (run_dir / "tune" / t / "result.json").read_text() for t in done_before}
    epochs_before = pd.read_parquet(run_dir / "epochs.parquet").groupby("trial_id")["epoch"].max()

    proc.run_to_completion([sys.executable, "-m", "pipelines.run", "--resume", str(run_dir)],
                           dict(os.environ), tmp_path / "resume.log")
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "TERMINATED").all() and trials["stop_reason"].notna().all()
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    for trial_id, group in epochs.groupby("trial_id"):  # every epoch from 1, none missing
        assert sorted(group["epoch"]) == list(range(1, len(group) + 1))
    assert trials.set_index("trial_id")["epochs"].to_dict() == \
        epochs.groupby("trial_id").size().to_dict()
    for trial, log in logs_before.items():  # finished trials did not run again
        assert (run_dir / "tune" / trial / "result.json").read_text() == log
    # trials cut off mid-way went on from a state they reported: their loop was handed
    # resume_state (a restart from scratch would report resumed_at 0 to the end)
    last = epochs.sort_values("epoch").groupby("trial_id").last()
    cut = [t for t in epochs_before.index if t not in done_before
           and last.loc[t, "epoch"] > epochs_before[t]]
    assert cut, "no trial was cut off mid-way and continued"
    # (a trial whose first checkpoint came after Tune's last saved state starts over,
    # legitimately; the one two epochs in when the driver died has one in it)
    assert (last.loc[cut, "resumed_at"] >= 2).any(), last.loc[cut]
    restored = epochs[epochs["resumed_at"] > 0]
    assert (restored["epoch"] > restored["resumed_at"]).all()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "finished" and len(meta["resumed"]) == 1
    # --keep-checkpoints 1: only the best trial's state is left on disk, the others'
    # checkpoints were emptied as they finished, before the kill and after the resume
    with_state = {path.parent.parent.name
                  for path in (run_dir / "tune").glob("*/checkpoint_*/state.pt")}
    best = trials.sort_values("best_val_nll")["trial_id"].iloc[0]
    assert with_state == {best}


SILENT_SWEEP = '''
from pipelines import Budget, Choice, Sweep, Uniform


def train(config, report):
    if config["kind"] == "silent":
        return  # forgot to report
    report({"score": config["x"]})


SWEEP = Sweep(description="one trial never reports", trainable=train, metric="score",
              mode="min", space={"kind": Choice(("silent", "loud")),
                                 "x": Uniform(0.0, 1.0, grid=(0.5,))},
              quick=Budget(num_samples=1, max_epochs=1, grace_period=1, reduction_factor=2))
'''


def test_a_trainable_that_never_reports_is_an_error_trial_and_the_sweep_goes_on(tmp_path,
                                                                                local_ray):
    sweep_file = tmp_path / "user_repo" / "silent.py"
    sweep_file.parent.mkdir()
    sweep_file.write_text(SILENT_SWEEP)
    run(RunOptions(sweep=str(sweep_file), quick=True, algo="grid", max_failures=0,
                   storage=str(tmp_path / "results"), name="run"))
    trials = pd.read_parquet(tmp_path / "results" / "silent" / "run" / "trials.parquet")
    by_kind = trials.set_index("config/kind")
    assert by_kind.loc["silent", "status"] == "ERROR"
    assert by_kind.loc["silent", "stop_reason"] == "error"
    assert "NoMetricReported: " in by_kind.loc["silent", "error"]
    assert "returned without reporting 'score'" in by_kind.loc["silent", "error"]
    assert by_kind.loc["loud", "status"] == "TERMINATED"
    assert by_kind.loc["loud", "best_score"] == 0.5 and pd.isna(by_kind.loc["loud", "error"])


def test_hyperband_pauses_a_users_loop_and_it_resumes_from_its_state(tmp_path, local_ray):
    sweep_file = write_function_sweep(tmp_path / "user_repo")
    run(RunOptions(sweep=str(sweep_file), quick=True, algo="random", scheduler="hyperband",
                   num_samples=6, storage=str(tmp_path / "results"), name="run"))
    run_dir = tmp_path / "results" / "digits_loop" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 6 and (trials["status"] == "TERMINATED").all()
    epochs = assert_each_epoch_once(run_dir, trials)  # Tune's logs too: none reported twice
    # a paused trial came back through resume_state: its loop went on from the epoch
    # it had reached (a restart would train from resumed_at 0 and report epoch 1 again)
    continued = epochs[epochs["resumed_at"] > 0]
    assert not continued.empty, "HyperBand paused no trial"
    assert (continued["epoch"] == continued["resumed_at"] + 1).groupby(
        continued["trial_id"]).any().all()


def test_a_users_loop_tunes_in_stages_carrying_the_lowest_metric(tmp_path, local_ray):
    sweep_file = write_function_sweep(tmp_path / "user_repo")
    stages = ("    stages=(Stage('lr', ('lr',), 3, 3),\n"
              "            Stage('hidden', ('hidden',), 1, 1, algo='grid')),\n")
    text = sweep_file.read_text().replace("    full=Budget(", stages + "    full=Budget(")
    text = text.replace("from pipelines import Budget,", "from pipelines import Stage, Budget,")
    sweep_file.write_text(text)
    run(RunOptions(sweep=str(sweep_file), quick=True, algo="random", scheduler="none",
                   storage=str(tmp_path / "results"), name="run"))
    run_dir = tmp_path / "results" / "digits_loop" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    lr_stage = trials[trials["stage"] == "lr"]
    hidden_stage = trials[trials["stage"] == "hidden"]
    assert len(lr_stage) == 3 and len(hidden_stage) == 2  # grid over hidden (8, 32)
    # the lr stage ran at hidden's start value (the Choice's first option); the hidden
    # stage at the lr stage's lowest val_nll (mode="min"), not its highest
    assert (lr_stage["config/hidden"] == 8).all()
    best_lr = lr_stage.loc[lr_stage["best_val_nll"].idxmin(), "config/lr"]
    assert (hidden_stage["config/lr"] == best_lr).all()
    assert sorted(hidden_stage["config/hidden"]) == [8, 32]
