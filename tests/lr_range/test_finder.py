"""The learning-rate range test: its suggestion rules on known curves, and on
real CIFAR-10 a suggestion where training learns (and 100x it does not)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from models import build_model
from pipelines.lr_range.finder import RangeTest, lr_at, range_test, suggest
from pipelines.training.classify import train
from pipelines.training.config import TrainConfig
from tests.conftest import REPO, data_dir

TEST = RangeTest(start_lr=1e-5, end_lr=10.0, num_iter=200)


def curve_of(losses: np.ndarray, test: RangeTest = TEST) -> pd.DataFrame:
    lrs = [lr_at(i, test) for i in range(len(losses))]
    return pd.DataFrame({"step": range(len(losses)), "lr": lrs, "effective_lr": lrs,
                         "loss": losses, "smoothed_loss": losses})


def test_the_schedule_spans_the_range_exponentially():
    assert lr_at(0, TEST) == pytest.approx(1e-5)
    assert lr_at(TEST.num_iter - 1, TEST) == pytest.approx(10.0)
    ratios = [lr_at(i + 1, TEST) / lr_at(i, TEST) for i in range(10)]
    assert max(ratios) == pytest.approx(min(ratios))


def test_suggestions_on_a_known_curve():
    log_lr = np.log10([lr_at(i, TEST) for i in range(180)])
    # flat until 1e-3, falls fastest around 1e-2, bottoms out near 1e-1, then blows up
    losses = 2.3 - 0.8 / (1 + np.exp(-(log_lr + 2) * 4)) + np.where(log_lr > -0.7,
                                                                      (log_lr + 0.7) * 5, 0)
    result = suggest(curve_of(losses), "diverged", TEST)
    assert result.steepest == pytest.approx(1e-2, rel=0.3)
    assert result.valley is not None and 1e-3 < result.valley < 1e-1
    assert result.suggestion == result.steepest


def test_no_suggestion_when_the_loss_never_falls():
    flat = 2.3 + 0.01 * np.random.default_rng(0).standard_normal(150)
    result = suggest(curve_of(flat), "end_lr", TEST)
    assert result.suggestion is None and "never fell" in str(result.why_no_suggestion)
    short = suggest(curve_of(np.array([2.3, 9.0, 50.0])), "diverged", TEST)
    assert short.suggestion is None
    assert "diverged after 3 steps" in str(short.why_no_suggestion)


def test_the_model_and_optimizer_are_restored(tiny_data):
    cfg = TrainConfig(model="simple_cnn", width=8)
    model = build_model("simple_cnn", num_classes=tiny_data.info.num_classes, width=8,
                        depth=None, dropout=0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    rng = torch.get_rng_state()
    range_test(cfg, tiny_data, RangeTest(num_iter=50), torch.device("cpu"), model=model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and torch.equal(torch.get_rng_state(), rng)


def test_valley_of_a_curve_falling_from_its_first_point():
    from pipelines.lr_range.finder import valley

    assert valley(np.array([2.0, 1.0, 3.0, 4.0, 5.0])) == 0  # not -1: the largest lr


def test_a_loss_that_falls_only_at_the_very_start_gets_no_suggestion():
    losses = np.concatenate([[2.3, 1.5, 1.2], np.linspace(1.25, 3.0, 150)])
    result = suggest(curve_of(losses), "diverged", TEST)
    assert result.suggestion is None
    assert "fell only in the first" in str(result.why_no_suggestion)


def test_range_settings_are_checked():
    for bad in (dict(start_lr=0), dict(start_lr=1, end_lr=0.1), dict(end_lr=float("inf")),
                dict(num_iter=10)):
        with pytest.raises(ValueError):
            RangeTest(**bad)


@pytest.mark.integration
def test_the_suggestion_is_where_training_learns(cifar_cache):
    from pipelines.data.images import open_split, prepare

    data = open_split(prepare(str(data_dir()), None, 5000, 1000, 0))
    cfg = TrainConfig(model="simple_cnn", optimizer="sgd", batch_size=128, schedule="constant",
                      epochs=2)
    result = range_test(cfg, data, RangeTest(num_iter=250), torch.device("cpu"))
    assert result.suggestion is not None, result.why_no_suggestion
    at_suggestion = train(TrainConfig(**{**vars(cfg), "lr": result.suggestion}), data)
    too_high = train(TrainConfig(**{**vars(cfg), "lr": 100 * result.suggestion}), data)
    assert at_suggestion.best_score > 0.25  # chance is 0.10
    assert too_high.diverged or too_high.best_score < 0.2


@pytest.mark.integration
def test_cli_writes_the_curve_and_refuses_to_guess(tmp_path, capsys):
    args = ["cifar_sweep", "--quick", "--train-size", "2000", "--data-dir", str(data_dir()),
            "--storage", str(tmp_path)]

    def lr_find(*more):
        return subprocess.run([sys.executable, "-m", "pipelines.lr_find", *args, *more],
                              cwd=REPO, capture_output=True, text=True, timeout=300)

    # three decades in 100 steps: most of them where simple_cnn learns (a wider range in
    # so few steps left the smoothed loss short of the 10% drop now and then: CPU
    # convolutions on 2 threads are not bit-reproducible)
    ok = lr_find("--start-lr", "1e-3", "--end-lr", "3", "--num-iter", "100")
    assert ok.returncode == 0, ok.stderr
    assert "suggested lr (per 256 examples)" in ok.stdout
    run = next((tmp_path / "cifar_sweep").iterdir())
    curve = pd.read_parquet(run / "curve.parquet")
    assert 25 <= len(curve) <= 100 and curve["lr"].is_monotonic_increasing
    assert {p.name for p in run.iterdir()} == {"curve.parquet", "lr_range.png",
                                               "lr_range.json"}
    # every learning rate from 100 up diverges at once: no number, exit 1 (the command's
    # own main, in this process: a process of its own costs ~4 s of imports)
    from pipelines.lr_find import main

    capsys.readouterr()
    code = main([*args, "--start-lr", "100", "--end-lr", "1e5", "--num-iter", "50"])
    bad = capsys.readouterr()
    assert code == 1 and "no learning rate to suggest" in bad.err
    assert "suggested" not in bad.out


@pytest.mark.parametrize("args,message", [
    (["--start-lr", "0"], "need 0 < --start-lr < --end-lr"),
    (["--quick", "--train-size", "49999", "--data-dir", str(data_dir())],
     "more than the 50000 training images"),
    (["--end-lr", "inf"], "need 0 < --start-lr < --end-lr < inf"),
    (["--num-iter", "5"], "--num-iter must be >= 50"),
    (["--optimizer", "lion"], "optimizer"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--model", "nope"], "nope"),
    (["--quick", "--train-size", "0"], "--train-size must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(cifar_cache, tmp_path, capsys, args, message):
    # in-process (the command's own main; a process of its own costs ~4 s of imports);
    # the process as a whole: the test below. cifar_cache: decoded beforehand, so no
    # "decoding CIFAR-10 ..." progress line precedes the error
    from pipelines.lr_find import main

    code = main(["cifar_sweep", "--storage", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert message in err and not (tmp_path / "r").exists()


def test_bad_input_exits_2_from_the_process_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipelines.lr_find", "cifar_sweep",
                          "--storage", str(tmp_path / "r"), "--num-iter", "5"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr and "--num-iter must be >= 50" in out.stderr
    assert not (tmp_path / "r").exists()
