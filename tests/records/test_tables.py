"""The Parquet schema: records -> frames -> files -> pandas, with dtypes intact."""

import math
from typing import Any

import pandas as pd
import pytest

from pipelines.records.diagnosis import DIAGNOSIS_COLUMNS, LABELS
from pipelines.records.storage import resolve
from pipelines.records.tables import (
    BASE_EPOCH_COLUMNS,
    STEP_COLUMNS,
    TrialRecord,
    epochs_frame,
    steps_frame,
    trial_columns,
    trials_frame,
    write_json,
    write_parquet,
)
from tests.records.digits_runs import regression_epochs, tune_result, user_records


def _at(path):
    return resolve(str(path))


def _epoch(epoch, val_acc, **extra):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.5, "val_acc": val_acc,
            "lr": 0.1, "epoch_s": 2.0, "images_per_s": 5000.0, **extra}


def _records():
    done = TrialRecord("t1", {"lr": 0.1, "optimizer": "sgd"}, started=0.0)
    for e, acc in [(1, 0.3), (2, 0.5), (3, 0.4)]:
        done.add_epoch(_epoch(e, acc, node_ip="127.0.0.1"))
    done.ended, done.status = 10.0, "TERMINATED"
    stopped = TrialRecord("t2", {"lr": 0.01, "optimizer": "adam"}, started=1.0)
    stopped.add_epoch(_epoch(1, 0.2))
    stopped.ended, stopped.status = 4.0, "TERMINATED"
    diverged = TrialRecord("t3", {"lr": 10.0, "optimizer": "sgd"}, started=2.0)
    diverged.add_epoch(_epoch(1, 0.1, train_loss=math.nan, diverged=True))
    diverged.ended, diverged.status = 3.0, "TERMINATED"
    failed = TrialRecord("t4", {"lr": 0.5, "optimizer": "adamw"}, started=2.0)
    failed.ended, failed.status, failed.error = 5.0, "ERROR", True
    running = TrialRecord("t5", {"lr": 0.2, "optimizer": "sgd"}, started=5.0)
    running.add_epoch(_epoch(1, 0.25))
    return [done, stopped, diverged, failed, running]


def test_trial_rows_summarise_each_trial():
    frame = trials_frame(_records(), metric="val_acc", mode="max", max_epochs=3, now=7.0)
    rows = frame.set_index("trial_id")
    assert list(rows["stop_reason"].fillna("-")) == [
        "completed", "early_stopped", "diverged", "error", "-"]
    assert rows.loc["t1", "best_val_acc"] == 0.5 and rows.loc["t1", "best_epoch"] == 2
    assert rows.loc["t1", "last_val_acc"] == 0.4 and rows.loc["t1", "wall_s"] == 10.0
    assert rows.loc["t5", "wall_s"] == 2.0  # still running: time so far
    assert rows["best_epoch"].isna()["t4"] and rows.loc["t4", "epochs"] == 0
    assert rows.loc["t2", "config/optimizer"] == "adam"
    assert rows.loc["t1", "node_ip"] == "127.0.0.1" and rows["node_ip"].isna()["t2"]


def test_a_diverged_epoch_is_not_a_score():
    record = TrialRecord("t", {}, started=0.0)
    record.add_epoch(_epoch(1, 0.08))
    record.add_epoch(_epoch(2, 0.1, train_loss=math.inf, diverged=True))
    frame = trials_frame([record], metric="val_acc", mode="max", max_epochs=3, now=1.0)
    assert frame.loc[0, "best_epoch"] == 1 and frame.loc[0, "best_val_acc"] == 0.08
    assert frame.loc[0, "stop_reason"] == "diverged"


def test_min_mode_picks_the_lowest():
    record = TrialRecord("t", {}, started=0.0)
    for e, acc in [(1, 0.3), (2, 0.1), (3, 0.2)]:
        record.add_epoch(_epoch(e, acc))
    frame = trials_frame([record], metric="val_acc", mode="min", max_epochs=3, now=1.0)
    assert frame.loc[0, "best_epoch"] == 2


def test_a_repeated_epoch_replaces_rather_than_duplicates():
    record = TrialRecord("t", {}, started=0.0)
    record.add_epoch(_epoch(1, 0.3))
    record.add_epoch(_epoch(2, 0.4))
    record.add_epoch(_epoch(2, 0.45))  # reported again after a restore
    frame = epochs_frame([record])
    assert list(frame["epoch"]) == [1, 2] and frame["val_acc"].iloc[-1] == 0.45


def test_parquet_round_trip_keeps_dtypes(tmp_path):
    records = _records()
    trials = trials_frame(records, metric="val_acc", mode="max", max_epochs=3, now=7.0)
    epochs = epochs_frame(records)
    write_parquet(trials, _at(tmp_path / "trials.parquet"))
    write_parquet(epochs, _at(tmp_path / "epochs.parquet"))
    back_t = pd.read_parquet(tmp_path / "trials.parquet")
    back_e = pd.read_parquet(tmp_path / "epochs.parquet")
    pd.testing.assert_frame_equal(back_e, epochs)
    pd.testing.assert_frame_equal(back_t, trials)
    for column, dtype in trial_columns("val_acc").items():
        assert str(back_t[column].dtype) == dtype
    for column, dtype in {**BASE_EPOCH_COLUMNS, "val_acc": "float64"}.items():
        assert str(back_e[column].dtype) == dtype
    assert back_t["config/lr"].dtype == "float64"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.parquet", "trials.parquet"]


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "trials.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), _at(path))
    with pytest.raises(Exception):
        write_parquet(pd.DataFrame({"a": [object()]}), _at(path))  # pyarrow cannot write this
    assert pd.read_parquet(path)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["trials.parquet"]


def test_json_is_written_whole(tmp_path):
    write_json({"a": 1, "when": pd.Timestamp("2026-01-01")}, _at(tmp_path / "run.json"))
    assert '"a": 1' in (tmp_path / "run.json").read_text()


def test_a_users_trainer_keeps_every_metric_it_reported_and_none_of_tunes():
    records = user_records(n=3)
    epochs = epochs_frame(records, metrics=("val_rmse",))
    # after the base columns, in the order reported; not Tune's (training_iteration, pid, ...)
    assert list(epochs.columns) == [*BASE_EPOCH_COLUMNS, "val_rmse", "train_mse"]
    expected = [m for r in records for m in regression_epochs(**r.config)]
    assert epochs["val_rmse"].tolist() == [m["val_rmse"] for m in expected]
    assert epochs["train_mse"].tolist() == [m["train_mse"] for m in expected]
    for unreported in ("train_loss", "val_loss", "lr", "epoch_s", "images_per_s"):
        assert epochs[unreported].isna().all(), unreported
    assert not epochs["diverged"].any()  # no train_loss reported is no divergence
    assert (epochs["node_id"] == "node-a").all()


def test_the_epochs_file_reads_back_with_pandas_extra_metrics_and_all(tmp_path):
    epochs = epochs_frame(user_records(n=3), metrics=("val_rmse",))
    write_parquet(epochs, _at(tmp_path / "epochs.parquet"))
    back = pd.read_parquet(tmp_path / "epochs.parquet")
    pd.testing.assert_frame_equal(back, epochs)
    assert str(back["train_mse"].dtype) == "float64" and str(back["diverged"].dtype) == "boolean"


def test_a_metric_first_reported_later_is_nan_before_and_the_schema_only_grows():
    config: dict[str, Any] = {"lr": 0.05, "l2": 1e-3, "steps_per_epoch": 1}
    record = TrialRecord("u", config, started=0.0)
    metrics = regression_epochs(**config, epochs=3)
    record.add_epoch(tune_result("u", 1, metrics[0], config))
    first = epochs_frame([record], metrics=("val_rmse",))
    record.add_epoch(tune_result("u", 2, {**metrics[1], "grad_steps": 2, "plateau": False},
                                 config))
    record.add_epoch(tune_result("u", 3, {**metrics[2], "plateau": True}, config))
    second = epochs_frame([record], metrics=("val_rmse",))
    # the later file has every earlier column, in the same place, with the same dtype
    assert list(second.columns) == [*first.columns, "grad_steps", "plateau"]
    assert (second.dtypes[first.columns] == first.dtypes).all()
    assert second["grad_steps"].isna().tolist() == [True, False, True]
    assert second["grad_steps"].dtype == "float64" and second["grad_steps"].iloc[1] == 2.0
    assert second["plateau"].dtype == "boolean"
    assert second["plateau"].tolist() == [pd.NA, False, True]


def test_a_minimised_user_metric_is_best_at_its_lowest():
    records = user_records(n=6)
    frame = trials_frame(records, metric="val_rmse", mode="min", max_epochs=4, now=2000.0)
    assert {"best_val_rmse", "last_val_rmse"} <= set(frame.columns)
    for record, row in zip(records, frame.itertuples()):
        rmse = {e: m["val_rmse"] for e, m in
                enumerate(regression_epochs(**record.config), start=1)}
        assert row.best_val_rmse == min(rmse.values())
        assert row.best_epoch == min(rmse, key=rmse.__getitem__)
        assert row.last_val_rmse == rmse[4] and row.stop_reason == "completed"
    # lr 0.05 improves every epoch: its best is the last; a diverging lr's is the first
    assert frame["best_epoch"].nunique() > 1


def test_a_non_finite_train_loss_marks_the_epoch_diverged_without_the_flag():
    record = TrialRecord("t", {}, started=0.0)
    record.add_epoch({"epoch": 1, "train_loss": 0.5, "val_rmse": 0.3})
    record.add_epoch({"epoch": 2, "train_loss": math.nan, "val_rmse": 0.1})
    frame = trials_frame([record], metric="val_rmse", mode="min", max_epochs=3, now=1.0)
    assert frame.loc[0, "best_val_rmse"] == 0.3 and frame.loc[0, "stop_reason"] == "diverged"
    assert epochs_frame([record])["diverged"].tolist() == [False, True]


def test_costs_go_to_the_trial_and_a_broken_constraint_makes_it_infeasible(tmp_path):
    """Issue 16: the cost columns a trainer reports each epoch land once per trial in
    trials.parquet (the latest value), not in epochs.parquet; a trial over a start limit
    (its one `infeasible` report) trained nothing and is not feasible; a trial whose
    reported cost broke a limit later is infeasible too; a cost not measured breaks none."""
    costs = {"params": 120_000, "peak_mem_mb": 40.0, "latency_ms": 0.5}
    small = TrialRecord("small", {"width": 8}, started=0.0)
    small.add_epoch(_epoch(1, 0.3, **costs, train_s=1.0))
    small.add_epoch(_epoch(2, 0.6, **costs, train_s=2.5))
    big = TrialRecord("big", {"width": 64}, started=0.0)
    big.mark_infeasible({"infeasible": True, "epoch": 0, "params": 4_000_000,
                         "peak_mem_mb": 900.0, "val_acc": -math.inf})
    slow = TrialRecord("slow", {"width": 16}, started=0.0)
    slow.add_epoch(_epoch(1, 0.7, params=300_000, latency_ms=9.0))
    user = TrialRecord("user", {"width": 4}, started=0.0)  # a trainable reporting no costs
    user.add_epoch(_epoch(1, 0.2))
    for r in (small, big, slow, user):
        r.ended, r.status = 5.0, "TERMINATED"
    limits = {"params": 1_000_000, "latency_ms": 5.0}
    frame = trials_frame([small, big, slow, user], metric="val_acc", mode="max", max_epochs=2,
                         now=6.0, objectives=(("val_acc", "max"), ("params", "min")),
                         constraints=limits)
    write_parquet(frame, _at(tmp_path / "trials.parquet"))
    rows = pd.read_parquet(tmp_path / "trials.parquet").set_index("trial_id")
    assert rows.loc["small", "params"] == 120_000 and rows.loc["small", "train_s"] == 2.5
    assert list(rows["stop_reason"]) == ["completed", "infeasible", "infeasible",
                                         "early_stopped"]
    assert list(rows["feasible"]) == [True, False, False, True]
    assert rows.loc["big", "epochs"] == 0 and math.isnan(rows.loc["big", "best_val_acc"])
    assert rows.loc["big", "peak_mem_mb"] == 900.0
    assert rows["params"].isna()["user"] and rows["latency_ms"].isna()["user"]
    assert str(rows["params"].dtype) == "Int64"
    epochs = epochs_frame([small, slow])
    assert not {"params", "peak_mem_mb", "latency_ms", "train_s"} & set(epochs.columns)


def test_a_second_epoch_objective_gets_its_own_best():
    record = TrialRecord("t", {}, started=0.0)
    for e, (acc, loss) in enumerate([(0.5, 0.9), (0.7, 1.1), (0.6, 0.4)], start=1):
        record.add_epoch(_epoch(e, acc, val_loss=loss))
    record.ended = 1.0
    row = trials_frame([record], metric="val_acc", mode="max", max_epochs=3, now=1.0,
                       objectives=(("val_acc", "max"), ("val_loss", "min"))).iloc[0]
    assert row["best_val_acc"] == 0.7 and row["best_val_loss"] == 0.4


def test_a_resumed_trial_keeps_the_start_costs_it_was_judged_by():
    """A resumed trial measures its step again (a CPU's measure varies); the record
    keeps the start costs it was judged by, and the latest of the others. An
    infeasible report's worst values (for the searcher) are not costs."""
    record = TrialRecord("t", {}, started=0.0)
    record.add_epoch(_epoch(1, 0.5, params=100, peak_mem_mb=40.0, latency_ms=2.0))
    record.add_epoch(_epoch(2, 0.6, params=100, peak_mem_mb=55.0, latency_ms=1.5))
    assert record.costs == {"params": 100, "peak_mem_mb": 40.0, "latency_ms": 1.5}
    assert record.feasible({"peak_mem_mb": 50.0})
    over = TrialRecord("o", {}, started=0.0)
    over.mark_infeasible({"infeasible": True, "epoch": 0, "params": 9_000,
                          "peak_mem_mb": 30.0, "latency_ms": math.inf, "val_acc": -math.inf})
    assert over.costs == {"params": 9_000, "peak_mem_mb": 30.0}


def _windows(epoch, losses, steps_per_epoch=3):
    return [[(epoch - 1) * steps_per_epoch + i + 1, loss, 0.1] for i, loss in enumerate(losses)]


def test_step_windows_go_to_steps_parquet_and_not_to_the_epochs(tmp_path):
    record = TrialRecord("t1", {"lr": 0.1}, started=0.0)
    record.add_epoch(_epoch(1, 0.3, loss_windows=_windows(1, [2.3, 2.0, 1.8])))
    record.add_epoch(_epoch(2, 0.5, loss_windows=_windows(2, [1.6, 1.5, 1.4])))
    record.add_epoch(_epoch(2, 0.5, loss_windows=_windows(2, [1.6, 1.5, 1.3])))  # a retry
    frame = steps_frame([record])
    assert list(frame.columns) == list(STEP_COLUMNS)
    assert frame["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert frame["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert frame["train_loss"].tolist() == [2.3, 2.0, 1.8, 1.6, 1.5, 1.3]
    assert "loss_windows" not in epochs_frame([record]).columns
    write_parquet(frame, _at(tmp_path / "steps.parquet"))
    back = pd.read_parquet(tmp_path / "steps.parquet")
    assert str(back["trial_id"].dtype) == "string" and str(back["step"].dtype) == "int64"


def test_each_trial_row_holds_its_curves_diagnosis():
    good = TrialRecord("good", {"lr": 0.1}, started=0.0)
    good.add_epoch(_epoch(1, 0.5, loss_windows=_windows(1, [2.3, 1.5, 1.0])))
    silent = TrialRecord("silent", {"lr": 0.1}, started=0.0)  # a trainer that records none
    silent.add_epoch(_epoch(1, 0.5))
    rows = trials_frame([good, silent], metric="val_acc", mode="max", max_epochs=3,
                        now=1.0).set_index("trial_id")
    assert set(DIAGNOSIS_COLUMNS) <= set(rows.columns)
    assert rows.loc["good", "diagnosis"] in LABELS and rows.loc["good", "loss_start"] == 2.3
    assert pd.isna(rows.loc["silent", "diagnosis"])


def test_a_trial_its_patience_stopped_says_no_improvement():
    record = TrialRecord("t1", {"lr": 0.1}, started=0.0)
    record.add_epoch(_epoch(1, 0.5))
    record.add_epoch(_epoch(2, 0.5))
    record.add_epoch(_epoch(3, 0.5, no_improvement=True, checkpoint_rank=0.5))
    assert record.stop_reason(max_epochs=10) is None  # still running
    record.ended = 1.0
    assert record.stop_reason(max_epochs=10) == "no_improvement"
    columns = epochs_frame([record]).columns
    assert "no_improvement" not in columns and "checkpoint_rank" not in columns
    scheduled = TrialRecord("t2", {"lr": 0.1}, started=0.0, ended=1.0)
    scheduled.add_epoch(_epoch(1, 0.5))
    assert scheduled.stop_reason(max_epochs=10) == "early_stopped"  # by ASHA, not itself
