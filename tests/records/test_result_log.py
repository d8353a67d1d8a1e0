"""The run's result files kept incrementally, on a user's trainer's records (the
digits regression of tests.records.digits_runs: not CIFAR-10)."""

import pandas as pd

from pipelines.records.result_log import ResultLog
from pipelines.records.storage import resolve
from pipelines.records.tables import TrialRecord
from tests.records.digits_runs import MAX_EPOCHS, tune_result, user_records


def _log(tmp_path):
    return ResultLog(resolve(str(tmp_path)), metric="val_rmse", mode="min", max_epochs=MAX_EPOCHS)


def test_a_finished_trial_is_serialised_once_and_a_write_adds_only_the_running_rows(tmp_path):
    log = _log(tmp_path)
    done = user_records(12)
    log.add_finished(done[:10])
    first_rmse = done[0].epochs[1]["val_rmse"]
    done[0].epochs[1]["val_rmse"] = -1.0  # a later write rebuilding it would show this
    log.add_finished(done[10:])
    running = TrialRecord("live", dict(done[0].config), started=2000.0)
    running.add_epoch(tune_result("live", 1, {"val_rmse": 2.5, "train_mse": 6.0}, running.config))
    log.write([running])
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    assert trials["trial_id"].tolist() == [r.trial_id for r in done] + ["live"]
    assert trials["status"].tolist() == ["TERMINATED"] * 12 + ["RUNNING"]
    assert epochs.set_index(["trial_id", "epoch"]).loc[("u00", 1), "val_rmse"] == first_rmse
    assert len(epochs) == 12 * MAX_EPOCHS + 1
    assert log.written.trials == 12 and log.written.epochs == 12 * MAX_EPOCHS
    # pandas reads back the dtypes the rows were written with, across the batches
    assert str(trials["trial_id"].dtype) == "string" and str(trials["best_epoch"].dtype) == "Int64"
    assert str(epochs["diverged"].dtype) == "boolean"
    assert [c for c in trials.columns if c.startswith("config/")] == \
        ["config/lr", "config/l2", "config/steps_per_epoch"]


def test_a_metric_first_a_bool_then_a_number_and_one_reported_late_keep_every_value(tmp_path):
    log = _log(tmp_path)
    first, second = user_records(2)
    first.epochs[1]["converged"] = True  # a bool in the first batch
    second.add_epoch(tune_result(second.trial_id, 5, {"val_rmse": 2.0, "converged": 0.5,
                                                      "late_metric": 3.0}, second.config))
    log.add_finished([first])
    log.add_finished([second])
    log.write([])
    epochs = pd.read_parquet(tmp_path / "epochs.parquet").set_index(["trial_id", "epoch"])
    assert epochs["converged"].dtype == "float64"
    assert epochs.loc[("u00", 1), "converged"] == 1.0
    assert epochs.loc[("u01", 5), "converged"] == 0.5
    assert epochs.loc[("u01", 5), "late_metric"] == 3.0
    assert pd.isna(epochs.loc[("u00", 1), "late_metric"])


def test_restore_takes_back_the_first_rows_only(tmp_path):
    log = _log(tmp_path)
    records = user_records(5)
    log.add_finished(records[:3])
    log.write([])
    seen = log.written
    log.add_finished(records[3:])
    log.write([])
    again = _log(tmp_path)
    again.restore(seen)
    again.add_finished([TrialRecord("new", {"lr": 0.1}, started=0.0, ended=1.0)])
    again.write([])
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert trials["trial_id"].tolist() == ["u00", "u01", "u02", "new"]
    assert len(pd.read_parquet(tmp_path / "epochs.parquet")) == 3 * MAX_EPOCHS


def test_steps_are_kept_and_restored_like_the_epochs(tmp_path):
    log = _log(tmp_path)
    records = user_records(3)
    for record in records:
        record.steps = {e: [(e * 10, 1.0 / e, 0.1)] for e in record.epochs}
    log.add_finished(records[:2])
    log.write([])
    seen = log.written
    assert seen.steps == 2 * MAX_EPOCHS
    log.add_finished(records[2:])
    log.write([])
    again = _log(tmp_path)
    again.restore(seen)
    again.write([])
    steps = pd.read_parquet(tmp_path / "steps.parquet")
    assert steps["trial_id"].unique().tolist() == ["u00", "u01"]
    assert len(steps) == 2 * MAX_EPOCHS
