"""The driver's result recorder: what it counts and keeps, fed as Tune feeds it."""

from types import SimpleNamespace

from pipelines.tuning.recorder import ResultRecorder


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
