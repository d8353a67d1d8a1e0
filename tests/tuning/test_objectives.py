"""Acceptance of issue 16 on a user's own problem: a sweep file outside the
repository, on scikit-learn's handwritten digits (not CIFAR-10), with a net of
its own, searched by Optuna's Gaussian process on two objectives (val_acc up,
params down) under a size constraint, through the CLI's main() on local Ray."""

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis import load_run
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.run import main
from tests.conftest import REPO
from tests.digits import write_digits_folder

pytestmark = pytest.mark.integration

SWEEP = '''
"""Digits: how small can the net be? val_acc up, its size down."""
from torch import nn

from pipelines import Budget, Choice, ImageFolder, LogUniform, Sweep, register_model


@register_model("sized_digits_net")
def sized_digits_net(num_classes, in_channels, image_size, width=8):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))


SWEEP = Sweep(
    description="digits: accuracy against size",
    data=ImageFolder(ROOT),
    metric=("val_acc", "params"),
    mode=("max", "min"),
    space={"lr": LogUniform(0.05, 1.0), "width": Choice((4, 8, 80, 96))},
    fixed={"model": "sized_digits_net", "batch_size": 64, "crop_padding": 0, "flip_prob": 0.0},
    quick=Budget(num_samples=8, max_epochs=2, grace_period=1, reduction_factor=2),
)
'''


def _params(width: int) -> int:
    """sized_digits_net's trainable parameters, counted by hand (1 input channel)."""
    return (9 * width + width) + (9 * width * 2 * width + 2 * width) + (2 * width * 10 + 10)


def _dominated(a: np.ndarray, b: np.ndarray) -> bool:
    """b dominates a (both maximised): at least as good on all, better on one."""
    return bool(np.all(b >= a) and np.any(b > a))


def test_two_objectives_under_a_size_limit_with_the_gp(tmp_path, capsys, monkeypatch,
                                                      local_ray):
    root = write_digits_folder(tmp_path / "data" / "digits", n=500)
    sweep_file = tmp_path / "my_project" / "sized_digits.py"
    sweep_file.parent.mkdir()
    sweep_file.write_text(textwrap.dedent(SWEEP).replace("ROOT", repr(str(root))))
    assert not sweep_file.is_relative_to(REPO)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    largest = _params(96)
    limit = largest // 2 - 1  # below half the largest model: widths 80 and 96 break it
    assert _params(80) > limit > _params(8)
    code = main([str(sweep_file), "--quick", "--algo", "gp", "--max-params", str(limit),
                 "--storage", str(tmp_path / "results"), "--name", "run"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    run_dir = tmp_path / "results" / "sized_digits" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 8
    # the cost of every trial, measured: its parameters as counted by hand
    assert list(trials["params"]) == [_params(w) for w in trials["config/width"]]
    assert trials["peak_mem_mb"].notna().all() and (trials["peak_mem_mb"] > 0).all()
    assert trials["suggest_s"].notna().all()  # the GP's time per suggestion
    over = trials["config/width"] >= 80
    assert over.any() and (~over).any(), trials[["config/width", "stop_reason"]]
    bad, good = trials[over], trials[~over]
    # over-size: infeasible at the start, zero epochs trained, in about a second
    # (wall_s is the driver's: Tune's scheduling and the trial's start included; a
    # busy machine may add to it)
    assert (bad["stop_reason"] == "infeasible").all() and (bad["epochs"] == 0).all()
    assert not bad["feasible"].any() and (bad["wall_s"] < 2.0).all(), bad["wall_s"]
    assert bad["latency_ms"].isna().all()  # not measured: no worst value recorded as one
    assert not set(bad["trial_id"]) & set(epochs["trial_id"])
    assert good["feasible"].all() and (good["epochs"] >= 1).all()
    assert good["latency_ms"].notna().all() and (good["train_s"] > 0).all()
    # no infeasible trial ranked: not on the printed leaderboard
    board = out.out.split("trials by val_acc:")[1].split("stop reasons")[0]
    assert not any(t in board for t in bad["trial_id"])
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["objectives"] == [["val_acc", "max"], ["params", "min"]]
    assert meta["constraints"] == {"params": limit}
    # the Pareto front: every feasible trial not on it is dominated by one on it, and no
    # trial on it is dominated by any feasible trial (a brute-force check on the Parquet)
    from pipelines import pareto_front

    front = pareto_front(load_run(str(run_dir)))
    points = {r.trial_id: np.array([r.best_val_acc, -r.params], dtype=float)
              for r in good.itertuples() if not math.isnan(r.best_val_acc)}
    on = set(front["trial_id"])
    assert on and on <= set(points)
    for t, p in points.items():
        beaten = any(_dominated(p, q) for u, q in points.items() if u != t)
        assert (t in on) == (not beaten), (t, p)
