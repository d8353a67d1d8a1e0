"""The driver's result recorder: what it counts and keeps, fed as Tune feeds it."""

import pickle
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pipelines.records.result_log import ResultLog
from pipelines.records.storage import resolve
from pipelines.records.tables import BASE_EPOCH_COLUMNS, TUNE_RESULT_KEYS, epochs_frame
from pipelines.tuning.recorder import ResultRecorder
from tests.records.digits_runs import regression_epochs, tune_result


def _recorder(run_dir, metric="val_acc", mode="max", max_epochs=2):
    run_dir.mkdir(exist_ok=True)
    log = ResultLog(resolve(str(run_dir)), metric=metric, mode=mode, max_epochs=max_epochs)
    return ResultRecorder(log)


def _trial(trial_id):  # the fields of a Tune Trial the recorder reads
    return SimpleNamespace(trial_id=trial_id, config={"lr": 0.1}, num_failures=0)


def _result(epoch):
    return {"epoch": epoch, "train_loss": 1.0, "val_acc": 0.5}


def test_the_epoch_count_counts_a_retried_epoch_once_and_survives_a_restore(tmp_path):
    recorder = _recorder(tmp_path)
    a, b = _trial("a"), _trial("b")
    for trial, epoch in [(a, 1), (a, 2), (b, 1), (a, 2)]:  # a's epoch 2 again: a retry
        recorder.on_trial_result(0, [], trial, _result(epoch))
    recorder.on_trial_result(0, [], b, {"done": True})  # a result without an epoch
    assert recorder.epoch_count == 3

    restored = _recorder(tmp_path)
    restored.set_state(pickle.loads(pickle.dumps(recorder.get_state())))
    assert restored.epoch_count == 3
    restored.on_trial_result(0, [], b, _result(2))
    assert restored.epoch_count == 4


def test_tunes_own_result_keys_are_never_taken_for_metrics():
    from ray.tune import result as tune_result_keys

    added_by_tune = {*tune_result_keys.AUTO_RESULT_KEYS, *tune_result_keys.DEBUG_METRICS,
                     tune_result_keys.DONE, tune_result_keys.SHOULD_CHECKPOINT,
                     tune_result_keys.EXPERIMENT_TAG, tune_result_keys.RESULT_DUPLICATE}
    assert added_by_tune - set(BASE_EPOCH_COLUMNS) <= TUNE_RESULT_KEYS


def test_a_users_trainer_results_keep_its_metrics_and_drop_tunes_bookkeeping(tmp_path):
    recorder = _recorder(tmp_path, metric="val_rmse", mode="min")
    config: dict[str, Any] = {"lr": 0.05, "l2": 1e-3, "steps_per_epoch": 4}
    trial: Any = SimpleNamespace(trial_id="u", config=config, num_failures=0)
    metrics = regression_epochs(**config, epochs=2)
    for epoch, m in enumerate(metrics, start=1):
        recorder.on_trial_result(0, [], trial, tune_result("u", epoch, m, config))
    epochs = epochs_frame(list(recorder.records.values()), metrics=("val_rmse",))
    assert list(epochs.columns) == [*BASE_EPOCH_COLUMNS, "val_rmse", "train_mse"]
    assert epochs["val_rmse"].tolist() == [m["val_rmse"] for m in metrics]
    assert recorder.records["u"].config == config and recorder.records["u"].node_ip == "10.0.0.1"


def _run_trials(recorder, ids, epochs=2):
    for trial_id in ids:
        trial = _trial(trial_id)
        recorder.on_trial_start(0, [], trial)
        for epoch in range(1, epochs + 1):
            recorder.on_trial_result(0, [], trial, _result(epoch))
        recorder.on_trial_complete(0, [], trial)


def test_finished_trials_leave_memory_and_the_snapshot_stays_the_size_of_the_running_ones(
        tmp_path):
    recorder = _recorder(tmp_path)
    running = _trial("live")
    recorder.on_trial_start(0, [], running)
    recorder.on_trial_result(0, [], running, _result(1))
    _run_trials(recorder, [f"t{i}" for i in range(20)])
    small = len(pickle.dumps(recorder.get_state()))
    _run_trials(recorder, [f"t{i}" for i in range(20, 400)])
    assert len(pickle.dumps(recorder.get_state())) <= small + 16  # 20 finished or 400: counts
    assert list(recorder.records) == ["live"]
    assert recorder.trial_count == 401 and recorder.tally.finished == 400
    trials = pd.read_parquet(tmp_path / "trials.parquet")  # get_state wrote them all
    assert len(trials) == 401 and trials["trial_id"].is_unique
    assert trials.set_index("trial_id").loc["live", "status"] == "RUNNING"
    assert len(pd.read_parquet(tmp_path / "epochs.parquet")) == 400 * 2 + 1


def test_a_resume_takes_back_the_finished_trials_its_snapshot_had_seen_and_no_more(tmp_path):
    recorder = _recorder(tmp_path)
    _run_trials(recorder, ["a", "b"])
    late = _trial("late")
    recorder.on_trial_start(0, [], late)
    recorder.on_trial_result(0, [], late, _result(1))
    snapshot = pickle.loads(pickle.dumps(recorder.get_state()))  # Tune's snapshot
    recorder.on_trial_result(0, [], late, _result(2))
    recorder.on_trial_complete(0, [], late)
    recorder.persist()  # the files have "late" finished; the snapshot saw it running
    assert len(pd.read_parquet(tmp_path / "trials.parquet")) == 3

    resumed = _recorder(tmp_path)  # the driver was killed; Tune resumes from the snapshot
    resumed.set_state(snapshot)
    assert list(resumed.records) == ["late"] and resumed.epoch_count == 5
    resumed.on_trial_result(0, [], late, _result(2))  # Tune runs "late" again
    resumed.on_trial_complete(0, [], late)
    resumed.persist()
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    assert sorted(trials["trial_id"]) == ["a", "b", "late"]  # once each
    assert set(trials["status"]) == {"TERMINATED"}
    assert not epochs.duplicated(["trial_id", "epoch"]).any() and len(epochs) == 6
    assert resumed.epoch_count == 6 and resumed.tally.finished == 3


def test_trials_that_end_while_the_storage_fails_travel_in_the_snapshot(tmp_path, capsys):
    recorder = _recorder(tmp_path / "run")
    _run_trials(recorder, ["a"])
    recorder.persist()
    (tmp_path / "run").rename(tmp_path / "away")
    (tmp_path / "run").write_text("not a directory")  # every write there fails now
    _run_trials(recorder, ["b"])
    snapshot = pickle.loads(pickle.dumps(recorder.get_state()))  # the write failed: a warning
    assert "warning: could not write results" in capsys.readouterr().err
    (tmp_path / "run").unlink()
    (tmp_path / "away").rename(tmp_path / "run")

    resumed = _recorder(tmp_path / "run")  # the driver died; Tune resumes from the snapshot
    resumed.set_state(snapshot)
    resumed.persist()
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert trials["trial_id"].tolist() == ["a", "b"]  # b was not lost with the failed write
    assert len(pd.read_parquet(tmp_path / "run" / "epochs.parquet")) == 4
