"""Real sweeps on a real local Ray, one per search algorithm and scheduler."""

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.records.tables import STOP_REASONS
from pipelines.search.space import grid_size
from pipelines.search.sweep_loader import load_sweep
from pipelines.tuning.run_plan import RunOptions, plan
from pipelines.tuning.runner import run
from tests.conftest import data_dir

pytestmark = pytest.mark.integration
TINY = dict(sweep="cifar_sweep", quick=True, max_epochs=2, grace_period=1, train_size=600,
            val_size=200)



def _tune_results(run_dir):
    """What the trials reported, read from Ray Tune's own per-trial result logs."""
    reported: dict[str, set[int]] = {}
    for log in (run_dir / "tune").glob("*/result.json"):
        for line in log.read_text().splitlines():
            result = json.loads(line)
            reported.setdefault(result["trial_id"], set()).add(result["epoch"])
    return reported


def _run(tmp_path, **overrides):
    options = RunOptions(**{**TINY, "data_dir": str(data_dir()), "storage": str(tmp_path),
                            **overrides})
    return Path(run(options).path)


@pytest.mark.parametrize("algo", ["grid", "random", "optuna", "hyperopt"])
def test_each_algorithm_records_exactly_what_ran(local_ray, tmp_path, algo):
    run_dir = _run(tmp_path, algo=algo, num_samples=None if algo == "grid" else 4)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    expected = grid_size(load_sweep("cifar_sweep").space) if algo == "grid" else 4
    assert len(trials) == expected and trials["trial_id"].is_unique
    assert set(trials["stop_reason"]) <= set(STOP_REASONS)
    assert (trials["status"] == "TERMINATED").all()
    assert trials["node_ip"].notna().all()
    reported = _tune_results(run_dir)
    assert set(trials["trial_id"]) == set(reported)
    ran = {(t, e) for t, es in reported.items() for e in es}
    assert set(zip(epochs["trial_id"], epochs["epoch"])) == ran and len(epochs) == len(ran)
    assert trials.set_index("trial_id")["epochs"].to_dict() == {
        t: len(es) for t, es in reported.items()}
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["algorithm"] == algo and meta["status"] == "finished" and meta["end_time"]
    if algo == "grid":
        assert (trials["stop_reason"] == "early_stopped").any(), "ASHA stopped no trial"
        assert trials["config/lr"].nunique() == 3


# Four trials in grid order, the last unable to learn (val_acc stays at chance, 0.1; the
# others reach 0.2-0.26 in an epoch). Each trial takes both CPUs of `local_ray`, so they
# run one at a time, in that order: what the schedulers decide is then fixed.
SCHEDULER_SWEEP = """
from pipelines import Budget, LogUniform, Sweep

SWEEP = Sweep(
    description="an lr grid whose last point cannot learn, for the schedulers to act on",
    space={"lr": LogUniform(1e-5, 1.0, grid=(0.1, 0.15, 0.2, 1e-5))},
    fixed={"model": "simple_cnn", "batch_size": 64, "schedule": "constant"},
    quick=Budget(num_samples=4, max_epochs=2, grace_period=1, reduction_factor=2,
                 train_size=600, val_size=200),
)
"""
HOPELESS_LR = 1e-5


@pytest.mark.parametrize("scheduler", ["hyperband", "median", "none"])
def test_other_schedulers(local_ray, tmp_path, scheduler):
    sweep_file = tmp_path / "user_repo" / "lr_grid.py"
    sweep_file.parent.mkdir()
    sweep_file.write_text(SCHEDULER_SWEEP)
    run_dir = _run(tmp_path, sweep=str(sweep_file), algo="grid", scheduler=scheduler,
                   cpus_per_trial=2)
    trials = pd.read_parquet(run_dir / "trials.parquet").set_index("config/lr")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 4 and not epochs.duplicated(["trial_id", "epoch"]).any()
    for _, group in epochs.groupby("trial_id"):
        assert list(group["epoch"]) == list(range(1, len(group) + 1))
    # a resumed trial continues from its checkpoint, so Tune's own log never sees an
    # epoch twice (a restart would report 1, 2, ... again)
    restored = []
    for log in (run_dir / "tune").glob("*/result.json"):
        results = [json.loads(line) for line in log.read_text().splitlines()]
        reported = [r["epoch"] for r in results]
        assert reported == sorted(set(reported)), f"{log.parent.name} repeated epochs"
        restored += [r["trial_id"] for r in results
                     if r["iterations_since_restore"] < r["epoch"]]
    others = trials.drop(HOPELESS_LR)
    if scheduler == "none":
        assert (trials["stop_reason"] == "completed").all() and len(epochs) == 8
        assert not restored
        return
    # HyperBand (max_t 2, rf 2): trials 1-2 fill a bracket without rungs; 3-4 pause at
    # epoch 1, the better (3) is restored to train on, the hopeless one is stopped.
    # Median: the 4th trial's epoch 1 is the first with 3 others to compare (the rule
    # pauses the first three to wait for them), and it is below their median.
    assert trials.loc[HOPELESS_LR, "stop_reason"] == "early_stopped"
    assert trials.loc[HOPELESS_LR, "epochs"] == 1
    assert (others["stop_reason"] == "completed").all() and (others["epochs"] == 2).all()
    if scheduler == "hyperband":
        assert restored == [trials.loc[0.2, "trial_id"]], "HyperBand restored no paused trial"


def test_runs_never_overwrite_each_other(local_ray, tmp_path):
    first = _run(tmp_path, algo="random", num_samples=1, max_epochs=1)
    second = _run(tmp_path, algo="random", num_samples=1, max_epochs=1)
    assert first != second and first.parent == second.parent
    assert (first / "trials.parquet").is_file() and (second / "trials.parquet").is_file()


def test_grid_repeats_differ_by_seed(tmp_path):
    p = plan(RunOptions(sweep="cifar_sweep", quick=True, algo="grid", num_samples=3, seed=7,
                        storage=str(tmp_path)))
    assert p.param_space["seed"] == {"grid_search": [7, 8, 9]} and p.num_samples == 1


def test_plan_applies_budget_overrides(tmp_path):
    p = plan(RunOptions(sweep="cifar_sweep", quick=True, max_epochs=5, num_samples=7,
                        storage=str(tmp_path)))
    assert p.budget.max_epochs == 5 and p.num_samples == 7 and p.fixed["epochs"] == 5
    assert p.algo == load_sweep("cifar_sweep").default_algo
    assert p.fixed["model"] == "simple_cnn"


def test_an_epoch_budget_stops_the_whole_search(local_ray, tmp_path):
    run_dir = _run(tmp_path, algo="random", num_samples=50, scheduler="none", max_epochs=2,
                   epoch_budget=5)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert 5 <= len(epochs) <= 5 + 2 and len(trials) < 50  # 2 trials run at once
    assert (trials["status"] == "TERMINATED").all() and trials["stop_reason"].notna().all()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
