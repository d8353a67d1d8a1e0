"""The Parquet schema: records -> frames -> files -> pandas, with dtypes intact."""

import math

import pandas as pd
import pytest

from pipelines.records.storage import resolve
from pipelines.records.tables import (
    EPOCH_COLUMNS,
    TrialRecord,
    epochs_frame,
    trial_columns,
    trials_frame,
    write_json,
    write_parquet,
)


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
    for column, dtype in EPOCH_COLUMNS.items():
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
