"""The analysis API on synthetic runs with a known answer, written in the real
Parquet schema; the CLI and --final on a real sweep are in tests/test_analyze.py."""

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.anova import importance, scores_at_budget
from pipelines.analysis.curves import best_so_far, compare_runs
from pipelines.analysis.ranking import leaderboard
from pipelines.analysis.runs import best_config, config_of, int_config_keys, load_run, load_runs
from pipelines.errors import UsageError
from pipelines.records import tables as res
from pipelines.records.storage import resolve
from tests.records.digits_runs import SPACE as DIGITS_SPACE
from tests.records.digits_runs import user_records, write_user_run

SPACE = {
    "lr": {"type": "LogUniform", "low": 1e-4, "high": 1.0},
    "dropout": {"type": "Uniform", "low": 0.0, "high": 0.5},
    "optimizer": {"type": "Choice", "options": ["sgd", "adam", "adamw"]},
    "width": {"type": "IntUniform", "low": 8, "high": 64, "log": False},
}


def write_run(path, trials: list[dict], *, metric="val_acc", mode="max", status="finished"):
    """A run directory as pipelines.run writes it. Each trial: config and a list
    of per-epoch scores (NaN train loss marks a diverged epoch)."""
    path.mkdir(parents=True)
    records = []
    for i, t in enumerate(trials):
        record = res.TrialRecord(f"t{i:03d}", t["config"], started=1000.0 + i, ended=2000.0)
        for epoch, score in enumerate(t["scores"], start=1):
            record.add_epoch({"epoch": epoch, "train_loss": t.get("loss", 1.0), "val_loss": 1.0,
                              metric: score, "lr": 0.1, "epoch_s": 1.0, "images_per_s": 100.0})
            record.epochs[epoch]["ended_at"] = 1000.0 + i + epoch
        record.diverged = not math.isfinite(t.get("loss", 1.0))
        record.status = "TERMINATED"
        records.append(record)
    where = resolve(str(path))
    res.write_parquet(res.trials_frame(records, metric=metric, mode=mode, max_epochs=4,
                                       now=3000.0), where / "trials.parquet")
    res.write_parquet(res.epochs_frame(records), where / "epochs.parquet")
    (path / "run.json").write_text(json.dumps({
        "sweep": "synthetic", "algorithm": "random", "scheduler": "none", "metric": metric,
        "mode": mode, "space": SPACE, "status": status,
        "budget": {"max_epochs": 4, "grace_period": 1, "reduction_factor": 2}}))
    return str(path)


def only_lr_matters(n=40, seed=0):
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        lr = float(10 ** rng.uniform(-4, 0))
        score = 0.9 - 0.2 * abs(math.log10(lr) + 2)  # best at lr = 0.01
        config = {"lr": lr, "dropout": float(rng.uniform(0, 0.5)),
                  "optimizer": str(rng.choice(["sgd", "adam", "adamw"])),
                  "width": int(rng.integers(8, 65)), "epochs": 4}
        trials.append({"config": config, "scores": [score - 0.1, score]})
    return trials


@pytest.mark.parametrize("evaluator", ["fanova", "ped_anova"])
def test_importance_ranks_the_only_parameter_that_matters_first(tmp_path, evaluator):
    run = load_run(write_run(tmp_path / "run", only_lr_matters()))
    shares = importance(run, evaluator)
    assert shares.index[0] == "lr", shares
    assert shares["lr"] > 0.5 and math.isclose(shares.sum(), 1.0, rel_tol=1e-6)
    assert shares.attrs == {"epoch": 2, "trials": 40, "evaluator": evaluator}


def test_importance_compares_trials_at_one_budget(tmp_path):
    # 6 trials stopped at epoch 1, 6 that ran 3 epochs
    trials = [{"config": {"lr": 0.01, "dropout": 0.1, "optimizer": "sgd", "width": 8},
               "scores": [0.5]} for _ in range(6)]
    trials += [{"config": {"lr": 0.1, "dropout": 0.1, "optimizer": "sgd", "width": 8},
                "scores": [0.2, 0.3, 0.9]} for _ in range(6)]
    run = load_run(write_run(tmp_path / "r", trials))
    epoch, scores = scores_at_budget(run)  # default: the epoch every trial reached
    assert epoch == 1 and len(scores) == 12 and max(scores.values()) == 0.5
    epoch, scores = scores_at_budget(run, budget=3)  # only the trials that got there
    assert epoch == 3 and len(scores) == 6 and set(scores.values()) == {0.9}


def test_none_among_choices_and_ints_read_back_as_floats(tmp_path, monkeypatch):
    monkeypatch.setitem(SPACE, "depth", {"type": "Choice", "options": [None, 2, 4]})
    trials = [{"config": {"lr": 0.01 * (i + 1), "dropout": 0.1, "optimizer": "sgd",
                         "width": 8, "depth": [None, 2, 4][i % 3]},
               "scores": [0.1 * (i + 1)]} for i in range(6)]
    run = load_run(write_run(tmp_path / "r", trials))
    assert run.trials["config/depth"].dtype == "float64"  # Parquet: ints with NaN
    best = best_config(run)
    assert best["depth"] == 4 and isinstance(best["depth"], int)  # trial 5: depth 4
    assert isinstance(best["width"], int)
    assert importance(run).attrs["trials"] == 6  # trials with depth None count too


def test_importance_needs_enough_trials(tmp_path):
    run = load_run(write_run(tmp_path / "run", only_lr_matters(n=3)))
    assert importance(run).empty


def test_best_config_and_unscored_runs(tmp_path):
    run = load_run(write_run(tmp_path / "run", only_lr_matters()))
    best = best_config(run)
    top = run.trials.sort_values("best_val_acc", ascending=False).iloc[0]
    assert best["lr"] == top["config/lr"] and best["epochs"] == 4
    assert isinstance(best["width"], int) and isinstance(best["optimizer"], str)
    empty = load_run(write_run(tmp_path / "empty", [], status="running"))
    with pytest.raises(UsageError, match="no scored trial yet"):
        best_config(empty)


def test_best_so_far_is_monotone_and_skips_diverged_epochs(tmp_path):
    trials: list[dict] = [
        {"config": {"lr": 0.01}, "scores": [0.3, 0.5]},
        {"config": {"lr": 1.0}, "scores": [0.99], "loss": math.inf},  # diverged
        {"config": {"lr": 0.1}, "scores": [0.4, 0.6, 0.55]}]
    run = load_run(write_run(tmp_path / "run", trials))
    curve = best_so_far(run.trials, run.epochs, run.metric, run.mode)
    assert list(curve["epochs"]) == [1, 2, 3, 4, 5, 6]  # the diverged epoch was spent too
    assert curve["best_val_acc"].is_monotonic_increasing
    assert curve["best_val_acc"].iloc[-1] == 0.6  # not the diverged 0.99
    assert curve["best_trial_id"].iloc[-1] == "t002"
    assert curve["wall_s"].is_monotonic_increasing


def test_minimised_metrics_run_the_other_way(tmp_path):
    trials = [{"config": {"lr": 0.01}, "scores": [2.0, 1.5]},
              {"config": {"lr": 0.1}, "scores": [1.8, 1.2]}]
    run = load_run(write_run(tmp_path / "run", trials, metric="val_loss", mode="min"))
    curve = best_so_far(run.trials, run.epochs, run.metric, run.mode)
    assert curve["best_val_loss"].is_monotonic_decreasing
    assert best_config(run)["lr"] == 0.1


def test_load_runs_compares_runs(tmp_path):
    a = write_run(tmp_path / "a", only_lr_matters(n=5, seed=1))
    b = write_run(tmp_path / "b", only_lr_matters(n=7, seed=2))
    trials, epochs = load_runs([a, b])
    assert trials.groupby("run").size().to_dict() == {"a": 5, "b": 7}
    assert set(epochs["run"]) == {"a", "b"}
    curves = best_so_far(trials, epochs, "val_acc", "max")
    assert curves.groupby("run")["epochs"].max().to_dict() == {"a": 10, "b": 14}
    table = compare_runs([load_run(a), load_run(b)])
    assert list(table["trials"]) == [5, 7]
    for run, row in zip((a, b), table.itertuples()):
        t = pd.read_parquet(f"{run}/epochs.parquet").sort_values("ended_at", kind="stable")
        in_end_order = t["val_acc"].to_list()
        assert row.epochs_to_best == in_end_order.index(max(in_end_order)) + 1


def test_runs_with_the_same_name_stay_apart(tmp_path):
    a = write_run(tmp_path / "sweep_a" / "run", only_lr_matters(n=3, seed=1))
    b = write_run(tmp_path / "sweep_b" / "run", only_lr_matters(n=4, seed=2))
    trials, _ = load_runs([a, b])
    assert trials.groupby("run").size().to_list() == [3, 4]


def test_runs_of_different_metrics_are_not_compared(tmp_path):
    a = write_run(tmp_path / "a", only_lr_matters(n=4))
    b = write_run(tmp_path / "b", only_lr_matters(n=4), metric="val_loss", mode="min")
    with pytest.raises(UsageError, match="different metrics"):
        load_runs([a, b])


def test_a_run_without_any_finished_trial_loads(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(
        {"metric": "val_acc", "mode": "max", "status": "running", "space": SPACE}))
    run = load_run(str(run_dir))
    assert run.trials.empty and run.epochs.empty
    assert importance(run).empty


@pytest.mark.parametrize("content,message", [
    (None, "is not a results directory"),
    ("{oops", "cannot read"),
    ('{"status": "finished"}', "not a raysweep run record"),
])
def test_not_a_run_is_a_usage_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(UsageError, match=message):
        load_run(str(tmp_path))


def test_frames_survive_the_round_trip(tmp_path):
    run = load_run(write_run(tmp_path / "run", only_lr_matters(n=4)))
    assert isinstance(run.trials, pd.DataFrame) and run.trials["trial_id"].is_unique
    assert {"ended_at", "node_id"} <= set(run.epochs.columns)


def test_a_run_minimising_a_users_own_metric(tmp_path):
    records = user_records(n=12)
    run = load_run(write_user_run(tmp_path / "run", records))
    assert (run.metric, run.mode) == ("val_rmse", "min")
    assert run.epochs["train_mse"].notna().all()  # every reported metric is kept
    assert run.epochs[["train_loss", "val_loss", "lr", "epoch_s"]].isna().all().all()
    top = leaderboard(run.trials, run.metric, run.mode, n=len(run.trials))
    assert top["best_val_rmse"].is_monotonic_increasing  # ascending: lowest first
    lowest = min(records, key=lambda r: min(r.scores("val_rmse").values()))
    assert top["trial_id"].iloc[0] == lowest.trial_id
    best = best_config(run)
    assert best == lowest.config and isinstance(best["steps_per_epoch"], int)


def test_the_best_so_far_of_a_minimised_metric_is_its_running_minimum(tmp_path):
    run = load_run(write_user_run(tmp_path / "run", user_records(n=12)))
    curve = best_so_far(run.trials, run.epochs, run.metric, run.mode)
    in_time = run.epochs.sort_values("ended_at", kind="stable")["val_rmse"]
    assert curve["best_val_rmse"].tolist() == in_time.cummin().tolist()
    assert curve["best_val_rmse"].iloc[-1] == run.trials["best_val_rmse"].min()
    holder = curve["best_trial_id"].iloc[-1]
    assert run.trials.set_index("trial_id").loc[holder, "best_val_rmse"] == in_time.min()
    # no epoch_s reported: wall time counts from the first epoch's end, not NaN
    assert curve["wall_s"].notna().all() and curve["wall_s"].iloc[0] == 0.0


def _negated(records: list[res.TrialRecord]) -> list[res.TrialRecord]:
    """The same trials reporting neg_rmse = -val_rmse, a metric to maximise."""
    out = []
    for r in records:
        copy = res.TrialRecord(r.trial_id, r.config, started=r.started, ended=r.ended,
                               status=r.status)
        for epoch, row in r.epochs.items():
            copy.add_epoch({"epoch": epoch, "neg_rmse": -row["val_rmse"]})
            copy.epochs[epoch]["ended_at"] = row["ended_at"]
        out.append(copy)
    return out


@pytest.mark.parametrize("evaluator", ["fanova", "ped_anova"])
def test_importance_of_a_minimised_metric_follows_its_direction(tmp_path, evaluator):
    records = user_records(n=24, seed=3)
    low = load_run(write_user_run(tmp_path / "min", records))
    high = load_run(write_user_run(tmp_path / "max", _negated(records), metric="neg_rmse",
                                   mode="max"))
    shares = importance(low, evaluator)
    assert len(shares) == len(DIGITS_SPACE) and math.isclose(shares.sum(), 1.0, rel_tol=1e-6)
    pd.testing.assert_series_equal(shares, importance(high, evaluator), rtol=1e-6)
    assert scores_at_budget(low)[1] == {t: -s for t, s in scores_at_budget(high)[1].items()}


def test_int_config_keys_by_the_space_or_by_a_whole_integral_column():
    trials = pd.DataFrame({
        "config/depth": [2.0, None, 4.0],  # searched: a Choice of ints (and None)
        "config/scale": [1.0, None, 2.0],  # searched: a Choice of floats
        "config/warm": [3.0, None, 5.0],  # not searched, ints where some trials lack it
        "config/decay": [0.0, 0.0, 0.0],  # not searched, floats with none missing
        "config/bias": [0.5, None, 1.0],  # not searched, not all integral
    })
    space: dict[str, dict[str, Any]] = {
        "depth": {"type": "Choice", "options": [None, 2, 4]},
        "scale": {"type": "Choice", "options": [1.0, 2.0]},
    }
    assert int_config_keys(trials, space) == {"depth", "warm"}
    config = config_of(trials.iloc[0], int_config_keys(trials, space))
    assert config == {"depth": 2, "scale": 1.0, "warm": 3, "decay": 0.0, "bias": 0.5}
    assert [type(v) for v in config.values()] == [int, float, int, float, float]
