"""The curve diagnosis rule (pipelines.records.diagnosis): synthetic curves with a
known answer, odd input, and real CIFAR-10 trials trained at a too-high, a too-low
and a good learning rate, recorded as the sweeps record them."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

from pipelines.data.images import open_split, prepare
from pipelines.records import diagnosis as rule
from pipelines.records.diagnosis import DIAGNOSIS_COLUMNS, LABELS, diagnose
from pipelines.records.tables import TrialRecord, trial_columns, trials_frame
from pipelines.training.classify import probe, train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import default_device
from tests.conftest import data_dir

CHANCE = math.log(10)  # cross-entropy of a uniform guess over CIFAR-10's classes
WINDOWS = 10  # per epoch, as the trainer records them


def windows(losses: list[float] | np.ndarray, per_epoch: int = WINDOWS) -> list[int]:
    """The epoch of each of `losses`' windows, `per_epoch` to an epoch."""
    return [1 + i // per_epoch for i in range(len(losses))]


def label(losses: list[float] | np.ndarray, per_epoch: int = WINDOWS) -> str | None:
    return diagnose(windows(losses, per_epoch), list(losses))["diagnosis"]


def noisy(curve: np.ndarray, sd: float = 0.03, seed: int = 0) -> np.ndarray:
    """`curve` plus one batch's noise per window (~0.03-0.06 for 256 examples)."""
    return curve + np.random.default_rng(seed).normal(0.0, sd, len(curve))


T = np.arange(1, 3 * WINDOWS + 1) / WINDOWS  # 3 epochs, each window's end in epochs
GOOD = CHANCE * (0.55 + 0.45 * np.exp(-T))  # a fast fall that flattens
WARM_UP = CHANCE * np.where(T <= 1, 1 - 0.04 * T, 0.96 - 0.12 * (T - 1))  # slow, then falls
CRAWL = CHANCE * (1 - 0.01 * T)  # 1% of the start an epoch
CLIMB = np.concatenate([GOOD[:12], GOOD[11] * (1 + 0.05 * np.arange(1, 19))])  # lr too high
BOUNCE = CHANCE * (0.9 + 0.15 * (-1.0) ** np.arange(len(T)))  # +-15% from window to window
FLAT_BOUNCE = np.where(np.arange(len(T)) == 14, CHANCE * 1.15, CHANCE)  # flat with one climb

# Real windows of plain_cnn, 2000 CIFAR-10 images, batch 256 (8 a epoch), onecycle, 3 epochs
REAL_WARM_UP_GOOD = [  # lr 0.01 (seed 1): a tiny epoch of warm-up gains little; then falls
    2.36, 2.36, 2.38, 2.36, 2.33, 2.33, 2.31, 2.28, 2.25, 2.18, 2.16, 2.13, 2.12, 2.16, 2.1,
    2.11, 2.07, 2.04, 2.07, 2.05, 2.09, 2.03, 2.07, 2.1]
REAL_BOUNCE = [  # lr 1 (seed 1): climbs back as the rate peaks, flat over two epochs
    2.36, 2.31, 2.24, 2.2, 2.16, 2.3, 2.24, 2.5, 2.47, 2.34, 2.34, 2.41, 2.16, 2.19, 2.05,
    2.12, 2.03, 2.05, 1.98, 1.97, 2.0, 1.95, 2.0, 1.95]


@pytest.mark.parametrize("curve, per_epoch, expected", [
    (noisy(GOOD), WINDOWS, "ok"),
    (noisy(GOOD, sd=0.06, seed=1), WINDOWS, "ok"),  # one batch of ~100 examples a window
    (noisy(WARM_UP), WINDOWS, "ok"),  # a warm-up epoch that gains little is not slow
    (REAL_WARM_UP_GOOD, 8, "ok"),
    (noisy(CRAWL, sd=0.01), WINDOWS, "slow"),
    (noisy(np.full(len(T), CHANCE), sd=0.02), WINDOWS, "slow"),  # flat at chance
    (np.full(len(T), CHANCE), WINDOWS, "slow"),  # exactly flat
    (noisy(CLIMB, sd=0.01), WINDOWS, "unstable"),
    (BOUNCE, WINDOWS, "unstable"),
    (FLAT_BOUNCE, WINDOWS, "unstable"),  # no progress, yet a climb: bouncing, not crawling
    (REAL_BOUNCE, 8, "unstable"),
    (np.concatenate([GOOD[:5], [CHANCE * 3.5], GOOD[6:]]), WINDOWS, "diverged"),  # >3x start
    (np.concatenate([GOOD[:8], [math.nan]]), WINDOWS, "diverged"),
    (np.concatenate([GOOD[:8], [math.inf, math.nan]]), WINDOWS, "diverged"),
    ([math.nan], WINDOWS, "diverged"),  # a single window, NaN
    ([2.3, 40.0], WINDOWS, "diverged"),  # too few windows to judge, but blown up
])
def test_each_curve_gets_its_label(curve, per_epoch, expected):
    assert label(curve, per_epoch) == expected, diagnose(windows(curve, per_epoch), list(curve))


def test_the_rule_checks_its_labels_in_order():
    # a curve that both climbs and crawls is unstable; one that blows up and wiggles, diverged
    assert LABELS == ("diverged", "unstable", "slow", "ok")
    climb_and_crawl = np.concatenate([CRAWL[:10], CRAWL[9] * 1.3 * np.ones(20)])
    assert label(climb_and_crawl) == "unstable"
    assert label(np.concatenate([BOUNCE, [CHANCE * 10]])) == "diverged"


def test_statistics_say_why():
    stats = diagnose(windows(noisy(GOOD)), list(noisy(GOOD)))
    assert stats["loss_start"] == pytest.approx(noisy(GOOD)[0])
    assert stats["loss_end"] < stats["loss_start"]
    assert stats["loss_peak_ratio"] <= 1.05 and stats["loss_rise"] < rule.UNSTABLE_RISE
    assert stats["loss_jitter"] < rule.UNSTABLE_JITTER
    assert stats["loss_drop_first_epoch"] > rule.SLOW_FIRST_EPOCH_DROP
    assert stats["loss_drop_per_epoch"] > rule.SLOW_DROP_PER_EPOCH
    crawl = diagnose(windows(CRAWL), list(CRAWL))
    start = CRAWL[0]  # 0.999 of chance, its first window ending at 0.1 epoch
    assert crawl["loss_drop_per_epoch"] == pytest.approx(0.01 * CHANCE / start)  # a line
    # after the first epoch: the median of the next three windows, at 1.2 epochs
    assert crawl["loss_drop_first_epoch"] == pytest.approx((start - CHANCE * 0.988) / start)
    climb = diagnose(windows(CLIMB), list(CLIMB))
    assert climb["loss_rise"] == pytest.approx(CLIMB.max() / CLIMB[0] - GOOD[11] / CLIMB[0])


@pytest.mark.parametrize("epochs, losses", [
    ([], []),
    ([1], [2.3]),  # one window: too few to judge
    ([1, 1], [2.3, 2.2]),
    ([1, 1, 1], [0.0, 0.0, 0.0]),  # no positive start: no scale to judge by
    ([1, 1, 1], [-1.0, -2.0, -3.0]),
])
def test_too_little_to_judge_gets_no_label(epochs, losses):
    stats = diagnose(epochs, losses)
    assert stats["diagnosis"] is None
    if not losses:
        assert all(math.isnan(stats[k]) for k in DIAGNOSIS_COLUMNS if k != "diagnosis")


@pytest.mark.parametrize("epochs, losses", [
    ([1, 2], [2.3, 2.2, 2.1]),  # lengths differ
    (["a", "b", "c"], [2.3, 2.2, 2.1]),
    ([1, 1, 1], ["x", "y", "z"]),
    ([3, 1, 2], [2.3, 2.0, 1.5]),  # not in epoch order
    ([1, 1, 1, 1], [2.3, None, 2.1, 2.0]),  # None reads as NaN: diverged
    ([1] * 4, [1e308, 1e308, 1e308, 1e308]),
    ([1] * 4, [5e-324, 1e-300, 2.0, 1e-320]),
])
def test_odd_input_never_raises(epochs, losses):
    stats = diagnose(epochs, losses)
    assert set(stats) == set(DIAGNOSIS_COLUMNS)
    assert stats["diagnosis"] is None or stats["diagnosis"] in LABELS


def test_every_column_is_returned_with_its_type():
    stats = diagnose(windows(GOOD), list(GOOD))
    assert list(stats) == list(DIAGNOSIS_COLUMNS)
    assert DIAGNOSIS_COLUMNS["diagnosis"] == "string" and isinstance(stats["diagnosis"], str)
    for name, dtype in DIAGNOSIS_COLUMNS.items():
        if name != "diagnosis":
            assert dtype == "float64" and isinstance(stats[name], float), name


def test_cost_grows_with_the_windows_alone():
    curve = noisy(CHANCE * (0.3 + 0.7 * np.exp(-np.arange(100_000) / 20)), sd=0.01)
    start = time.perf_counter()
    assert diagnose(windows(curve), list(curve))["diagnosis"] == "ok"
    assert time.perf_counter() - start < 1.0  # 10,000 epochs' windows; ~30 ms


# ---- real trials --------------------------------------------------------------------

# plain_cnn (batch norm) on 2,000 CIFAR-10 images, batch 256, the default onecycle
# schedule: 8 steps and windows an epoch. Calibration (3 seeds, 2 epochs): lr 10 climbs
# 2-11x its start (diverged); lr 1e-4 loses <1% of it (slow); lr 0.1 falls ~10%/epoch (ok).
REAL: dict[str, Any] = dict(model="plain_cnn", width=16, epochs=2, batch_size=256, optimizer="sgd")


@pytest.fixture(scope="module")
def real_data(cifar_cache):
    """2,000 training and 200 validation images of CIFAR-10, and the model's cost
    (the same at every lr: measured once for the three trials)."""
    data = open_split(prepare(str(data_dir()), None, 2000, 200, 0))
    return data, probe(TrainConfig(**REAL), data, default_device())


@pytest.mark.parametrize("lr, labels", [
    (10.0, {"unstable", "diverged"}),  # too high: lr per 256 examples
    (1e-4, {"slow"}),  # too low
    (0.1, {"ok"}),  # good
])
def test_real_trials_get_their_label(real_data, lr, labels):
    data, cost = real_data
    record = TrialRecord("t0", {"lr": lr}, started=0.0)
    train(TrainConfig(**REAL, lr=lr), data, cost=cost,
          report=lambda metrics, _: record.add_epoch(metrics))
    record.status = "TERMINATED"
    row = trials_frame([record], metric="val_acc", mode="max", max_epochs=2, now=1.0).iloc[0]
    assert set(trial_columns("val_acc")) >= set(DIAGNOSIS_COLUMNS)
    stats = {k: row[k] for k in DIAGNOSIS_COLUMNS}
    assert row["diagnosis"] in labels, stats

