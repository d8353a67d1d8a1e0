"""The Pareto front, feasible-only ranking (leaderboard, best_config, best so far) and
sorting by any column, on runs written in the real Parquet schema into tmp_path
(outside the repository): random trials checked against a brute-force dominance
check on the Parquet, and a digits sweep with two objectives and constraints
(tests/analysis/objective_runs.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipelines
from pipelines.analysis.curves import best_so_far
from pipelines.analysis.pareto import non_dominated, pareto_front
from pipelines.analysis.ranking import leaderboard, sort_order
from pipelines.analysis.runs import best_config, load_run
from pipelines.errors import UsageError
from pipelines.records import tables as res
from pipelines.records.storage import resolve
from tests.analysis import objective_runs as digits

LIMIT = 350  # params above it: infeasible


def random_records(n: int, seed: int) -> list[res.TrialRecord]:
    """Trials with few distinct values (ties), some unscored (NaN), some over LIMIT
    params at their start (infeasible, no epoch), some with no params measured."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        record = res.TrialRecord(f"r{i:03d}", {"x": i}, started=float(i), ended=float(i + 1))
        record.status = "TERMINATED"
        params = int(rng.choice([100, 200, 300, 400]))
        if rng.random() < 0.15:
            record.mark_infeasible({res.INFEASIBLE_KEY: True, "params": params})
            records.append(record)
            continue
        for epoch in range(1, int(rng.integers(0, 4)) + 1):  # 0 epochs: unscored
            result = {"epoch": epoch, "train_loss": 1.0,
                      "val_acc": float(rng.integers(0, 6)) / 5,
                      "val_loss": float(rng.integers(0, 4)) / 3 if rng.random() > 0.2
                      else math.nan}  # an epoch without val_loss
            if rng.random() > 0.1:  # some trials never report params
                result["params"] = params
            record.add_epoch(result)
        records.append(record)
    return records


def write_random_run(path: Path, n: int, seed: int, objectives) -> str:
    path.mkdir(parents=True)
    where = resolve(str(path))
    (metric, mode), *_ = objectives
    frame = res.trials_frame(random_records(n, seed), metric=metric, mode=mode, max_epochs=3,
                             now=1e4, objectives=objectives, constraints={"params": LIMIT})
    res.write_parquet(frame, where / "trials.parquet")
    (path / "run.json").write_text(json.dumps({
        "metric": metric, "mode": mode, "objectives": [list(o) for o in objectives],
        "constraints": {"params": LIMIT}, "space": {}}))
    return str(path)


def brute_force_front(trials: pd.DataFrame, objectives) -> set[str]:
    """The non-dominated feasible, fully scored trials, by comparing every pair."""
    columns = [res.objective_column(m) for m, _ in objectives]
    ok = trials[trials["feasible"].fillna(True).astype(bool)
                & (trials["stop_reason"] != "infeasible")
                & trials[columns].notna().all(axis=1)]
    rows = [(t, [float(v) for v in values]) for t, values in
            zip(ok["trial_id"], ok[columns].to_numpy(dtype=float, na_value=np.nan))]

    def no_worse(a: float, b: float, mode: str) -> bool:
        return a >= b if mode == "max" else a <= b

    def dominates(a: list[float], b: list[float]) -> bool:
        modes = [mode for _, mode in objectives]
        return all(no_worse(x, y, m) for x, y, m in zip(a, b, modes)) and a != b

    return {t for t, v in rows if not any(dominates(w, v) for _, w in rows)}


@pytest.mark.parametrize("objectives", [
    (("val_acc", "max"), ("params", "min")),
    (("val_loss", "min"), ("val_acc", "max"), ("params", "min")),
    (("val_acc", "max"), ("val_loss", "max")),
], ids=["acc_params", "three", "both_max"])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_front_matches_a_brute_force_check_on_the_parquet(tmp_path, objectives, seed):
    run_dir = write_random_run(tmp_path / "run", n=80, seed=seed, objectives=objectives)
    on_disk = pd.read_parquet(Path(run_dir) / "trials.parquet")
    assert (on_disk["stop_reason"] == "infeasible").any()  # the cases the check is about
    assert (on_disk["params"].isna() & on_disk["feasible"]).any()
    assert on_disk[res.objective_column(objectives[0][0])].isna().any()
    front = pipelines.pareto_front(load_run(run_dir))
    expected = brute_force_front(on_disk, objectives)
    assert set(front["trial_id"]) == expected and len(front) == len(expected)
    assert not front["trial_id"].isin(on_disk.loc[~on_disk["feasible"], "trial_id"]).any()
    first, mode = res.objective_column(objectives[0][0]), objectives[0][1]
    ordered = front[first].to_numpy(dtype=float)
    assert (np.diff(ordered) <= 0).all() if mode == "max" else (np.diff(ordered) >= 0).all()


def test_equal_trials_share_the_front_and_rows_dominate_by_all_columns():
    costs = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [0.5, 3.0], [3.0, 1.0]])
    assert non_dominated(costs).tolist() == [True, True, True, False, True, False]
    assert non_dominated(np.empty((0, 2))).tolist() == []
    rng = np.random.default_rng(0)  # against every pair, on a thousand random rows
    costs = rng.integers(0, 30, size=(1000, 3)).astype(float)
    dominated = ((costs[:, None] <= costs[None]).all(axis=2)
                 & (costs[:, None] < costs[None]).any(axis=2)).any(axis=0)
    assert (non_dominated(costs) == ~dominated).all()


@pytest.fixture
def digits_run(tmp_path) -> str:
    return digits.write_run(tmp_path / "digits", digits.records(n=24))


def test_infeasible_trials_are_never_ranked(digits_run):
    run = load_run(digits_run)
    trials = pd.read_parquet(Path(digits_run) / "trials.parquet")
    broke = trials[~trials["feasible"]]
    # over the latency limit: trained and scored, some better than any feasible trial
    scored_broke = broke.dropna(subset=["best_val_rmse"])
    assert len(scored_broke) and (broke["stop_reason"] == "infeasible").all()
    assert scored_broke["best_val_rmse"].min() < trials.loc[trials["feasible"],
                                                            "best_val_rmse"].min()
    assert (broke["epochs"] == 0).any()  # over the size limit: no epoch
    for top in (leaderboard(run.trials, run.metric, run.mode, n=len(trials)),
                leaderboard(run.trials, run.metric, run.mode, n=len(trials), by="params")):
        assert len(top) == len(trials) - len(broke)
        assert not top["trial_id"].isin(broke["trial_id"]).any()
    feasible = trials[trials["feasible"]]
    best = feasible.loc[feasible["best_val_rmse"].idxmin()]
    assert best_config(run) == {"lr": best["config/lr"], "features": best["config/features"]}
    curve = best_so_far(run.trials, run.epochs, run.metric, run.mode)  # their epochs: budget
    assert curve["best_val_rmse"].iloc[-1] == best["best_val_rmse"]
    assert curve["epochs"].iloc[-1] == len(run.epochs)
    assert not curve["best_trial_id"].isin(broke["trial_id"]).any()
    assert set(pareto_front(run)["trial_id"]) <= set(feasible["trial_id"])


def test_a_run_without_objectives_has_its_metric_alone(digits_run):
    meta_path = Path(digits_run) / "run.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items()
                                     if k not in ("objectives", "constraints")}))
    run = load_run(digits_run)
    assert run.objectives == [("val_rmse", "min")] and run.constraints == {}
    front = pareto_front(run)  # one objective: the best feasible trial
    assert front["trial_id"].tolist() == leaderboard(run.trials, "val_rmse", "min",
                                                     n=1)["trial_id"].tolist()


def test_sort_order_names_columns_objectives_and_config_keys(digits_run):
    run = load_run(digits_run)
    assert run.objectives == list(digits.OBJECTIVES) and run.constraints == digits.CONSTRAINTS
    t, objectives = run.trials, run.objectives
    assert sort_order(t, objectives, "val_rmse") == ("best_val_rmse", "min")
    assert sort_order(t, objectives, "params") == ("params", "min")
    assert sort_order(t, objectives, "params:max") == ("params", "max")
    assert sort_order(t, objectives, "features") == ("config/features", "min")
    assert sort_order(t, objectives, "wall_s:max") == ("wall_s", "max")
    with pytest.raises(UsageError, match=r"no column 'nope' .* one of: val_rmse, params, "
                                         r"trial_id, .*config/features"):
        sort_order(t, objectives, "nope")
    with pytest.raises(UsageError, match="'min' .* or 'max'"):
        sort_order(t, objectives, "params:up")


@pytest.mark.parametrize("bad,message", [
    ({"objectives": [["val_rmse", "lowest"]]}, "'objectives' is not a list of"),
    ({"objectives": "val_rmse"}, "'objectives' is not a list of"),
    ({"constraints": {"params": "big"}}, "'constraints' is not a {column: limit}"),
])
def test_a_damaged_run_json_is_a_usage_error(digits_run, bad, message):
    meta_path = Path(digits_run) / "run.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), **bad}))
    with pytest.raises(UsageError, match=message):
        load_run(digits_run)


def test_an_objective_the_trials_lack_is_a_usage_error(digits_run):
    trials = pd.read_parquet(Path(digits_run) / "trials.parquet")
    trials.drop(columns="params").to_parquet(Path(digits_run) / "trials.parquet")
    with pytest.raises(UsageError, match="has no params column; add it .* as an objective"):
        load_run(digits_run)

