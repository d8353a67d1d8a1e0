"""Segmentation: Dice and IoU against hand-computed values, ignored pixels left
out of the metrics and the losses, the image/mask loader and its split, paired
augmentation, and real U-Net trials on ISBI 2012 and on a folder of digits."""

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.data.seg_folder import (
    SegData,
    SegDataset,
    load_pairs,
    open_seg,
    prepare,
    split_slices,
)
from pipelines.data.seg_masks import IGNORE
from pipelines.errors import UsageError
from pipelines.training.augmentation import augment_pairs
from pipelines.training.config import SEG_LOSSES, SegConfig
from pipelines.training.seg_metrics import (
    confusion,
    dice_and_iou,
    predict,
    seg_loss,
    seg_scores,
    soft_dice_loss,
)
from pipelines.training.segment import build_segmenter, train_segmentation
from tests.conftest import REPO, data_dir
from tests.data.test_seg_folder import digits_dataset, write_digits

NAMES = ("membrane", "interior")


def _scores(pred, target):
    counts = confusion(torch.tensor(pred), torch.tensor(target), 2)
    return seg_scores(counts.numpy(), NAMES)


def test_dice_and_iou_by_hand():
    target = [[0, 0, 1, 1],
              [0, 0, 1, 1]]
    pred = [[0, 1, 1, 1],
            [0, 0, 0, 1]]
    # class 0: TP 3, FP 1 (a 1 predicted 0), FN 1 -> Dice 6/8, IoU 3/5
    # class 1: TP 3, FP 1, FN 1 -> the same
    s = _scores(pred, target)
    assert s["val_dice_membrane"] == pytest.approx(0.75)
    assert s["val_miou"] == pytest.approx(0.6) and s["val_dice"] == pytest.approx(0.75)


def test_perfect_disjoint_and_empty_masks():
    target = [[1, 1], [0, 0]]
    assert _scores(target, target) == {"val_dice": 1.0, "val_miou": 1.0, "val_pixel_acc": 1.0,
                                       "val_dice_membrane": 1.0, "val_dice_interior": 1.0}
    inverted = [[0, 0], [1, 1]]
    assert _scores(inverted, target)["val_miou"] == 0.0
    # no membrane anywhere, none predicted: nothing to find, nothing wrongly found
    all_interior = [[1, 1], [1, 1]]
    s = _scores(all_interior, all_interior)
    assert s["val_dice_membrane"] == 1.0 and s["val_miou"] == 1.0
    # "all interior" on ISBI-like masks: foreground Dice high, mean IoU low
    membrane_22 = np.ones((100,), dtype=int)
    membrane_22[:22] = 0  # 22% membrane
    s = _scores(np.ones((100,), dtype=int), membrane_22)
    assert s["val_dice_interior"] == pytest.approx(2 * 78 / (2 * 78 + 22))  # ~0.88
    assert s["val_dice_membrane"] == 0.0 and s["val_miou"] == pytest.approx(0.39)


def test_confusion_counts_rows_as_truth():
    counts = confusion(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 2]), 3).numpy()
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    dice, iou = dice_and_iou(counts)
    assert dice.tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert iou.tolist() == pytest.approx([0.5, 0.5, 1.0])


def test_ignored_pixels_count_in_no_metric():
    i = IGNORE
    target = [[0, 0, 1, i],
              [1, 1, i, 0]]
    pred = [[0, 1, 1, 0],
            [1, 0, 1, 1]]
    counts = confusion(torch.tensor(pred), torch.tensor(target), 2, ignore_index=IGNORE)
    # the 6 counted pixels: class 0: TP 1, FP 1, FN 2 -> Dice 2/5, IoU 1/4
    #                       class 1: TP 2, FP 2, FN 1 -> Dice 4/7, IoU 2/5
    assert counts.sum() == 6
    s = seg_scores(counts.numpy(), NAMES)
    assert s["val_dice_membrane"] == pytest.approx(0.4)
    assert s["val_dice_interior"] == pytest.approx(4 / 7)
    assert s["val_miou"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert s["val_pixel_acc"] == pytest.approx(3 / 6)
    flipped = [[0, 1, 1, 1], [1, 0, 0, 1]]  # other predictions at the ignored pixels
    assert confusion(torch.tensor(flipped), torch.tensor(target), 2, IGNORE).equal(counts)


@pytest.mark.parametrize("loss", SEG_LOSSES)
@pytest.mark.parametrize("channels", [1, 3])  # binary (one logit) and 3-class logits
def test_ignored_pixels_get_no_gradient_from_the_loss(loss, channels):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(max(channels, 2), (2, 6, 6), generator=g)
    ignored = torch.rand((2, 6, 6), generator=g) < 0.3
    target[ignored] = IGNORE
    logits = torch.randn((2, channels, 6, 6), generator=g, requires_grad=True)
    value = seg_loss(logits, target, loss, 0.5, ignore_index=IGNORE)
    value.backward()
    assert logits.grad is not None
    grad_at = logits.grad.abs().sum(1)
    assert (grad_at[ignored] == 0).all() and (grad_at[~ignored] > 0).all()
    other = logits.detach().clone()
    other.masked_fill_(ignored[:, None], 7.0)  # any logits at ignored pixels: the same loss
    assert seg_loss(other, target, loss, 0.5, ignore_index=IGNORE).item() == \
        pytest.approx(value.item())


def test_losses_reward_the_right_answer_for_binary_and_multiclass_logits():
    target = torch.tensor([[[0, 1], [1, 1]]])
    good = (target * 2 - 1).float()[:, None] * 8  # one logit: confident and right
    assert predict(good).equal(target)
    for loss in ("bce", "dice", "bce_dice"):
        assert seg_loss(good, target, loss, 0.5) < seg_loss(-good, target, loss, 0.5)
    three = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 8
    assert predict(three).equal(target)
    assert soft_dice_loss(three, target) < 0.5 < soft_dice_loss(-three, target)


def _write_pairs(folder, n=3, size=(20, 16), mask_values=(0, 255)):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 256, size, dtype=np.uint8)
        mask = np.where(rng.random(size) < 0.3, mask_values[0], mask_values[1]).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"{i}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{i}.png")


def test_any_folder_of_pairs_loads_with_class_indices(tmp_path):
    _write_pairs(tmp_path / "mine", n=3)
    images, masks = load_pairs(tmp_path / "mine", SegDataset("mine", NAMES, (0, 255)))
    assert images.shape == (3, 1, 20, 16) and images.dtype == np.uint8
    assert masks.shape == (3, 20, 16) and set(np.unique(masks)) == {0, 1}
    first = np.asarray(Image.open(tmp_path / "mine" / "masks" / "0.png"))
    assert (masks[0] == (first == 255)).all()


def test_unpaired_files_are_named(tmp_path):
    _write_pairs(tmp_path / "mine", n=2)
    (tmp_path / "mine" / "masks" / "1.png").unlink()
    with pytest.raises(UsageError, match="without a partner .* e.g. 1.png"):
        load_pairs(tmp_path / "mine", SegDataset("mine", NAMES, (0, 255)))


def test_split_is_seeded_and_disjoint():
    train, val = split_slices(30, 24, 6, seed=0)
    assert len(train) == 24 and len(val) == 6 and not set(train) & set(val)
    assert split_slices(30, 24, 6, seed=0)[1].tolist() == val.tolist()
    assert split_slices(30, 24, 6, seed=1)[1].tolist() != val.tolist()
    with pytest.raises(UsageError, match="lower --train-size or --val-size"):
        split_slices(30, 26, 6, seed=0)


def test_paired_augmentation_moves_image_and_mask_together():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) / 128
    masks = (x[:, 0] * 128).long()  # the mask is the image, so they must stay equal
    for _ in range(5):
        xa, ma = augment_pairs(x, masks, flip_prob=0.5, rot90_prob=0.5, jitter=0.0,
                               generator=g)
        assert torch.equal((xa[:, 0] * 128).round().long(), ma)
    xj, _ = augment_pairs(x, masks, flip_prob=0, rot90_prob=0, jitter=0.2, generator=g)
    assert not torch.equal(xj, x) and xj.min() >= 0 and xj.max() <= 1


@pytest.fixture(scope="module")
def isbi():
    return prepare(str(data_dir()), SegDataset("isbi2012_membrane", NAMES, (0, 255)), 24, 6, 0)


def test_isbi_loads_as_30_slices_mostly_interior(isbi):
    data = open_seg(isbi)
    assert data.images.shape == (30, 1, 512, 512) and data.masks.shape == (30, 512, 512)
    assert 0.7 < data.masks.mean() < 0.85  # ~78% cell interior


def test_a_short_unet_training_beats_all_interior_on_isbi(isbi):
    torch.manual_seed(0)
    # 6 training slices: 2 epochs of 12 steps (96 crops each), and it has learned, well
    # past both marks below (val_miou ~0.62, membrane Dice ~0.66; 12 slices: ~0.66, ~0.69)
    data = open_seg(dataclasses.replace(isbi, train_size=6))
    reports = []
    result = train_segmentation(SegConfig(epochs=2, width=8, depth=3, crop_size=128,
                                          lr=0.05), data,
                                report=lambda metrics, state: reports.append(metrics))
    scores = reports[-1]
    assert {"val_dice", "val_miou", "val_dice_membrane", "val_dice_interior"} <= set(scores)
    assert scores["val_miou"] > 0.45  # "all interior" scores ~0.39
    assert scores["val_dice_membrane"] > 0.3  # and 0 here
    assert result.best_score == scores["val_miou"] and not result.diverged


@pytest.mark.integration
def test_membrane_sweep_runs_through_the_same_cli(tmp_path, capsys):
    from pipelines.analyze import main as analyze

    # 2 training slices (crops of 2 x 512 x 512 pixels an epoch), 2 to score: what is
    # tested is the path through the CLI, not how well a U-Net learns (the test above)
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "membrane_unet", "--quick", "--algo", "random",
         "--num-samples", "2", "--max-epochs", "1", "--train-size", "2", "--val-size", "2",
         "--data-dir", str(data_dir()), "--storage", str(tmp_path), "--name", "run"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "membrane_unet" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 2 and trials["best_val_miou"].between(0, 1).all()
    assert {"val_dice", "val_miou", "val_dice_membrane"} <= set(epochs)
    assert json.loads((run_dir / "run.json").read_text())["task"] == "segmentation"
    # the analysis CLI's main() in this process (its process: test_analyze.py's tests)
    capsys.readouterr()
    assert analyze([str(run_dir)]) == 0, capsys.readouterr().err
    assert (run_dir / "report.html").is_file() and "val_miou" in capsys.readouterr().out
    assert not math.isnan(trials["effective_lr"].iloc[0])


def test_a_short_unet_training_on_a_folder_of_digits_reports_a_finite_miou(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    write_digits(tmp_path / "digits", "index", n=16)  # index masks with an ignored rim
    data = open_seg(prepare(None, digits_dataset(tmp_path / "digits"), None, None, seed=0))
    assert data.ignore_index == IGNORE and IGNORE in np.unique(data.masks[data.val_idx])
    reports = []
    result = train_segmentation(SegConfig(epochs=2, width=4, depth=2, crop_size=32,
                                          batch_size=4, lr=0.1), data,
                                report=lambda metrics, state: reports.append(metrics))
    scores = reports[-1]
    assert 0 <= scores["val_miou"] <= 1 and math.isfinite(scores["val_loss"])
    assert {"val_dice_background", "val_dice_ink", "val_pixel_acc"} <= set(scores)
    assert result.best_score == max(r["val_miou"] for r in reports) and not result.diverged


@pytest.mark.parametrize("activation,kind", [(None, torch.nn.ReLU), ("silu", torch.nn.SiLU),
                                             ("prelu", torch.nn.PReLU)])
def test_the_segmenter_is_built_with_the_configs_activation(activation, kind):
    data = SegData(np.zeros((2, 1, 16, 16), np.uint8), np.zeros((2, 16, 16), np.uint8),
                   np.arange(1), np.arange(1, 2), NAMES)
    cfg = SegConfig(width=4, depth=2, activation=activation)
    model = build_segmenter(cfg, data, torch.device("cpu"))
    nonlinear = (torch.nn.ReLU, torch.nn.SiLU, torch.nn.PReLU)
    assert {type(m) for m in model.modules() if isinstance(m, nonlinear)} == {kind}
