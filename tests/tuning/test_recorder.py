"""The driver's result recorder: what it counts and keeps, fed as Tune feeds it."""

from types import SimpleNamespace
from typing import Any

from pipelines.records.tables import BASE_EPOCH_COLUMNS, TUNE_RESULT_KEYS, epochs_frame
from pipelines.tuning.recorder import ResultRecorder
from tests.records.digits_runs import regression_epochs, tune_result


def _trial(trial_id):  # the fields of a Tune Trial the recorder reads
    return SimpleNamespace(trial_id=trial_id, config={"lr": 0.1}, num_failures=0)


def _result(epoch):
    return {"epoch": epoch, "train_loss": 1.0, "val_acc": 0.5}


def test_the_epoch_count_counts_a_retried_epoch_once_and_survives_a_restore():
    recorder = ResultRecorder(on_change=lambda: None)
    a, b = _trial("a"), _trial("b")
    for trial, epoch in [(a, 1), (a, 2), (b, 1), (a, 2)]:  # a's epoch 2 again: a retry
        recorder.on_trial_result(0, [], trial, _result(epoch))
    recorder.on_trial_result(0, [], b, {"done": True})  # a result without an epoch
    assert recorder.epoch_count == 3

    restored = ResultRecorder(on_change=lambda: None)
    restored.set_state(recorder.get_state())
    assert restored.epoch_count == 3
    restored.on_trial_result(0, [], b, _result(2))
    assert restored.epoch_count == 4


def test_tunes_own_result_keys_are_never_taken_for_metrics():
    from ray.tune import result as tune_result_keys

    added_by_tune = {*tune_result_keys.AUTO_RESULT_KEYS, *tune_result_keys.DEBUG_METRICS,
                     tune_result_keys.DONE, tune_result_keys.SHOULD_CHECKPOINT,
                     tune_result_keys.EXPERIMENT_TAG, tune_result_keys.RESULT_DUPLICATE}
    assert added_by_tune - set(BASE_EPOCH_COLUMNS) <= TUNE_RESULT_KEYS


def test_a_users_trainer_results_keep_its_metrics_and_drop_tunes_bookkeeping():
    recorder = ResultRecorder(on_change=lambda: None)
    config: dict[str, Any] = {"lr": 0.05, "l2": 1e-3, "steps_per_epoch": 4}
    trial: Any = SimpleNamespace(trial_id="u", config=config, num_failures=0)
    metrics = regression_epochs(**config, epochs=2)
    for epoch, m in enumerate(metrics, start=1):
        recorder.on_trial_result(0, [], trial, tune_result("u", epoch, m, config))
    epochs = epochs_frame(list(recorder.records.values()), metrics=("val_rmse",))
    assert list(epochs.columns) == [*BASE_EPOCH_COLUMNS, "val_rmse", "train_mse"]
    assert epochs["val_rmse"].tolist() == [m["val_rmse"] for m in metrics]
    assert recorder.records["u"].config == config and recorder.records["u"].node_ip == "10.0.0.1"
