"""Per-trial early stopping, best-epoch checkpoints, the step-window recording and
--final's epoch count, on a real Ray sweep: a sweep file kept outside this
repository, searching the trainer's knobs (activation, beta2, l1, brightness,
contrast) on scikit-learn's digits (not CIFAR-10)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipelines.analysis.ranking import leaderboard
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.records.diagnosis import LABELS
from pipelines.run import main
from pipelines.training.loop import LOSS_WINDOWS
from pipelines.tuning.trainable import checkpoint_rank
from tests.conftest import REPO
from tests.digits import write_digits_parquet

KNOBS_SWEEP = '''
"""A user's sweep of the trainer's knobs, with early stopping that must bind."""
from pipelines import Budget, Choice, LogUniform, ParquetImages, Sweep, Uniform

SWEEP = Sweep(
    description="digits: activation, Adam's beta2, L1, brightness and contrast jitter",
    data=ParquetImages(ROOT, image="image", label="digit"),
    space={"activation": Choice(("gelu", "silu")), "beta2": Uniform(0.9, 0.999),
           "l1": LogUniform(1e-6, 1e-4), "brightness": Uniform(0.0, 0.3),
           "contrast": Uniform(0.0, 0.3)},
    # the metric watched is one that training only makes worse in its direction: the
    # training loss, maximised. It stalls from the first epoch on for certain, so patience
    # 2 stops every trial after its third epoch, before the budget's six, its best epoch
    # the first: the best checkpoint, the latest and the budget all differ
    metric="train_loss",
    mode="max",
    fixed={"model": "plain_cnn", "width": 8, "depth": 2, "optimizer": "adam", "lr": 0.02,
           "batch_size": 32, "crop_padding": 1, "flip_prob": 0.0, "patience": 2},
    quick=Budget(num_samples=2, max_epochs=6, grace_period=6, reduction_factor=2),
)
'''
PATIENCE, MAX_EPOCHS = 2, 6


def test_the_checkpoint_rank_prefers_the_better_value_then_the_earlier_epoch():
    def rank(value, epoch, mode="max"):
        return checkpoint_rank({"val_acc": value, "epoch": epoch}, ("val_acc", mode))

    assert rank(0.9, 5) > rank(0.8, 1)
    assert rank(0.9, 2) > rank(0.9, 3)  # a tie: the first epoch to reach it is the best
    assert rank(0.0, 2) > rank(0.0, 3)
    assert rank(0.1, 9, "min") > rank(0.2, 1, "min") and rank(0.1, 2, "min") > rank(0.1, 3, "min")
    assert rank(float("nan"), 1) == float("-inf") == rank(None, 1)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, local_ray):
    tmp = tmp_path_factory.mktemp("early_stopping")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(tmp / "cache"))
        root = write_digits_parquet(tmp / "data" / "digits", n=400, test=100)
        sweep = tmp / "my_project" / "digits_knobs.py"
        sweep.parent.mkdir(parents=True)
        sweep.write_text(textwrap.dedent(KNOBS_SWEEP).replace("ROOT", repr(str(root))))
        assert not sweep.is_relative_to(REPO)
        code = main([str(sweep), "--quick", "--algo", "random", "--scheduler", "none",
                     "--val-size", "80", "--storage", str(tmp / "results"), "--name", "run"])
        assert code == 0
        yield tmp / "results" / "digits_knobs" / "run", sweep


@pytest.mark.integration
def test_patience_stops_a_stalled_trial_with_no_improvement(stopped_run):
    run_dir, _ = stopped_run
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 2
    assert (trials["stop_reason"] == "no_improvement").all()
    assert (trials["epochs"] == 1 + PATIENCE).all()  # the budget was MAX_EPOCHS
    for _, trial in trials.iterrows():  # the loss fell every epoch: it never improved
        mine = epochs[epochs["trial_id"] == trial["trial_id"]].sort_values("epoch")
        assert mine["train_loss"].is_monotonic_decreasing
        assert trial["best_epoch"] == 1
    for knob in ("activation", "beta2", "l1", "brightness", "contrast"):
        assert trials[f"config/{knob}"].notna().all()


def _checkpoints(run_dir: Path, trial_id: str) -> dict[int, dict]:
    """{epoch: state} of the trial's checkpoints on disk."""
    found = {}
    for state_file in (run_dir / "tune").glob(f"{trial_id}*/checkpoint_*/state.pt"):
        state = torch.load(state_file, weights_only=True, map_location="cpu")
        found[state["epoch"]] = state
    return found


@pytest.mark.integration
def test_each_trial_keeps_its_best_and_its_latest_checkpoint(stopped_run):
    run_dir, _ = stopped_run
    trials = pd.read_parquet(run_dir / "trials.parquet")
    for _, trial in trials.iterrows():
        kept = _checkpoints(run_dir, trial["trial_id"])
        assert set(kept) == {1, 1 + PATIENCE}  # the best and the latest; epoch 2's is gone
        state = kept[int(trial["epochs"])]
        # the searched beta2 reached the optimizer the trial trained with
        betas = state["optimizer"]["param_groups"][0]["betas"]
        assert betas[1] == pytest.approx(trial["config/beta2"])


@pytest.mark.integration
def test_every_epoch_records_its_step_windows_and_each_trial_a_diagnosis(stopped_run):
    run_dir, _ = stopped_run
    trials = pd.read_parquet(run_dir / "trials.parquet")
    steps = pd.read_parquet(run_dir / "steps.parquet")
    assert list(steps.columns) == ["trial_id", "epoch", "step", "train_loss", "lr"]
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    for trial_id, mine in steps.groupby("trial_id"):
        per_epoch = mine.groupby("epoch").size()
        assert (per_epoch == LOSS_WINDOWS).all() and len(per_epoch) == 1 + PATIENCE
        assert mine["step"].is_monotonic_increasing and mine["step"].is_unique
        assert (mine["lr"] > 0).all()
        # the windows' losses average to the epoch's (320 images: 10 steps of 32, a window each)
        theirs = epochs[epochs["trial_id"] == trial_id].set_index("epoch")["train_loss"]
        means = mine.groupby("epoch")["train_loss"].mean()
        assert means.to_numpy() == pytest.approx(theirs.loc[means.index].to_numpy(), rel=0.02)
    assert set(steps["trial_id"]) == set(trials["trial_id"])
    assert trials["diagnosis"].isin(LABELS).all()


@pytest.mark.integration
def test_final_retrains_for_the_winners_best_epoch_and_says_so(stopped_run, capsys):
    run_dir, sweep = stopped_run
    trials = pd.read_parquet(run_dir / "trials.parquet")
    winner = leaderboard(trials, "train_loss", "max", n=1).iloc[0]
    assert winner["best_epoch"] == 1
    capsys.readouterr()
    assert main([str(sweep), "--final", str(run_dir)]) == 0
    out = capsys.readouterr()
    assert "1 epochs: the winner's best epoch" in out.out
    assert _epochs_trained(out.err) == [1]
    # the budget, all of it: the winner's patience has no validation split to watch here
    assert main([str(sweep), "--final", str(run_dir), "--final-epochs", "budget"]) == 0
    out = capsys.readouterr()
    assert f"{MAX_EPOCHS} epochs: its epoch budget" in out.out
    assert _epochs_trained(out.err) == list(range(1, MAX_EPOCHS + 1))
    final = pd.read_parquet(run_dir / "final.parquet")
    assert final["epochs"].tolist() == [1, MAX_EPOCHS]
    assert final["epochs_from"].tolist() == ["best", "budget"]


def _epochs_trained(stderr: str) -> list[int]:
    """The epochs --final printed as it trained them ("  epoch 3: train_loss ...")."""
    return [int(n) for n in re.findall(r"^  epoch (\d+):", stderr, flags=re.MULTILINE)]


@pytest.mark.parametrize("choice", ["best", "budget"])
def test_final_epochs_without_final_is_a_one_line_error(choice, tmp_path, capsys):
    code = main(["cifar_sweep", "--final-epochs", choice, "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "--final-epochs is how many epochs --final retrains for" in err
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written
