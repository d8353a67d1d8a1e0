"""The analysis CLI and --final on a real sweep: a tiny sweep on real CIFAR-10,
then `python -m pipelines.analyze`, then `--final`, as a user runs them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipelines.analysis.anova import importance
from pipelines.analysis.curves import best_so_far
from pipelines.analysis.ranking import leaderboard
from pipelines.analysis.runs import best_config, load_run, load_runs
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.training.config import TrainConfig
from tests.conftest import REPO, CliSweep, data_dir


def cli(module: str, *args: str, timeout: int = 400, cache=None) -> subprocess.CompletedProcess:
    env = {**os.environ, CACHE_DIR_ENV: str(cache)} if cache else None
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cache(cli_sweep: CliSweep) -> Path:
    """The sweep's own data cache, to see which splits get decoded."""
    return cli_sweep.cache


@pytest.fixture(scope="module")
def real_run(cli_sweep: CliSweep) -> Path:
    """A real sweep through the CLI: 6 random trials of cifar_sweep --quick, up to 3
    epochs of 1000 images (conftest.cli_sweep, shared with test_cli, which only reads it)."""
    return cli_sweep.run_dir


@pytest.mark.integration
def test_the_sweep_never_reads_the_test_split(cli_sweep):
    # what the cache held when the sweep ended (--final below decodes the test split)
    decoded = sorted(name.rsplit("-", 1)[0] for name in cli_sweep.decoded)
    assert decoded == ["cifar10-train"]


def referenced_files(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.integration
def test_the_api_on_a_real_sweep(real_run):
    run = load_run(str(real_run))
    assert len(run.trials) == 6 and run.metric == "val_acc" and run.mode == "max"
    top = leaderboard(run.trials, run.metric, run.mode, n=1).iloc[0]
    config = best_config(run)
    assert config["lr"] == top["config/lr"] and config["model"] == "simple_cnn"
    TrainConfig.from_dict(config)  # what --final will train
    curve = best_so_far(run.trials, run.epochs, run.metric, run.mode)
    assert len(curve) == len(run.epochs) == run.trials["epochs"].sum()
    assert curve["best_val_acc"].is_monotonic_increasing
    assert curve["best_val_acc"].iloc[-1] == top["best_val_acc"]
    for evaluator in ("fanova", "ped_anova"):
        shares = importance(run, evaluator)
        assert len(shares) and set(shares.index) <= set(run.space)
        assert abs(shares.sum() - 1) < 1e-6
        assert shares.attrs["trials"] >= 4
    trials, epochs = load_runs([str(real_run), str(real_run)])
    assert len(trials) == 12 and trials["run"].nunique() == 2  # same name, kept apart


@pytest.mark.integration
def test_analyze_prints_and_writes_a_self_contained_report(real_run):
    out = cli("pipelines.analyze", str(real_run))
    assert out.returncode == 0, out.stderr
    assert "top 6 of 6 trials by val_acc" in out.stdout
    assert "importance (fanova)" in out.stdout and "importance (ped_anova)" in out.stdout
    report = real_run / "report.html"
    assert out.stdout.strip().endswith(f"report: {report}")
    html = report.read_text()
    refs = referenced_files(html)
    assert refs and all("://" not in r and not r.startswith("/") for r in refs)
    for ref in refs:  # only files it wrote, and every PNG decodes
        assert (real_run / ref).is_file(), ref
        if ref.endswith(".png"):
            with Image.open(real_run / ref) as image:
                image.verify()
    best = pd.read_parquet(real_run / "trials.parquet").sort_values(
        "best_val_acc", ascending=False, kind="stable")["trial_id"].iloc[0]
    assert f"Trial {best}: best val_acc" in html  # the best-configuration section
    # the trainer recorded its step windows: every trial's curve is labelled and drawn
    assert (real_run / "steps.parquet").is_file()
    trials = pd.read_parquet(real_run / "trials.parquet")
    assert trials.loc[trials["epochs"] > 0, "diagnosis"].notna().all()
    assert "<h2>Learning-rate diagnosis</h2>" in html and "loss_diagnosis.png" in refs
    assert "learning-rate diagnosis of the training-loss curves" in out.stdout


@pytest.mark.integration
def test_final_scores_the_best_config_once_on_the_test_split(real_run, cache, tmp_path,
                                                             capsys, monkeypatch):
    from pipelines.analyze import main as analyze
    from pipelines.run import main as run

    out = cli("pipelines.run", "cifar_sweep", "--final", str(real_run), "--data-dir",
              str(data_dir()), "--train-size", "2000", "--max-epochs", "2", cache=cache)
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(p.name.startswith("cifar10-test-") for p in cache.iterdir())
    final = pd.read_parquet(real_run / "final.parquet")
    meta = json.loads((real_run / "run.json").read_text())
    trials = pd.read_parquet(real_run / "trials.parquet")
    best = trials.sort_values("best_val_acc", ascending=False).iloc[0]
    assert len(final) == 1 and final["trial_id"].iloc[0] == best["trial_id"]
    assert final["config/lr"].iloc[0] == best["config/lr"]
    assert 0.15 < final["test_acc"].iloc[0] <= 1.0  # above chance: it really trained
    assert meta["final"]["test_acc"] == final["test_acc"].iloc[0]
    assert meta["final"]["train_size"] == 2000 and meta["status"] == "finished"
    assert f"test_acc {final['test_acc'].iloc[0]:.4f}" in out.stdout

    # from here on the CLIs' main() in this process (no process's ~4 s of imports each;
    # the processes themselves: the --final above, the analysis CLI's test above)
    capsys.readouterr()
    assert analyze([str(real_run), "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    assert "final test score" in capsys.readouterr().out
    assert "Final test score" in (tmp_path / "report.html").read_text()

    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    code = run(["cifar_sweep", "--final", str(real_run), "--data-dir", str(data_dir()),
                "--train-size", "500", "--max-epochs", "1"])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    assert "scored 2 times" in err  # every look at the test split is on record
    assert len(pd.read_parquet(real_run / "final.parquet")) == 2


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/run"], "is not a results directory"),
    (["{run}", "--top", "0"], "--top must be >= 1"),
    ([], "the following arguments are required: RUN_DIR"),
])
def test_bad_analyze_input_is_one_line_exit_2(tmp_path, args, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"metric": "val_acc", "mode": "max"}))
    out = cli("pipelines.analyze", *[a.format(run=run) for a in args], timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]  # nothing written


@pytest.mark.parametrize("args,message", [
    (["--final", "{run}", "--algo", "grid"], "--final takes only"),
    (["--final", "{run}", "--resume", "{run}"], "--final and --resume do not go together"),
    (["--final", "{run}"], "is running, not finished"),
    (["--final", "{run}", "--name", "x"], "--final takes only"),
])
def test_bad_final_input_is_one_line_exit_2(tmp_path, args, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"metric": "val_acc", "mode": "max",
                                              "status": "running", "sweep": "cifar_sweep"}))
    out = cli("pipelines.run", "cifar_sweep", *[a.format(run=run) for a in args], timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_analyze_prints_what_the_curves_say_of_the_lr(tmp_path, capsys):
    from pipelines.analyze import main
    from tests.analysis.diagnosed_runs import kinds_over_lr, write_run

    run = write_run(tmp_path / "run", kinds_over_lr(["slow"] * 4 + ["ok"] * 4
                                                    + ["unstable", "diverged"] * 2))
    assert main([run, "--no-report"]) == 0
    out = capsys.readouterr().out
    assert ("learning-rate diagnosis of the training-loss curves: diverged 2, unstable 2, "
            "slow 4, ok 4") in out
    assert "were unstable or diverged" in out and "the top of the lr domain can come down" in out
    assert "All 4 trials with lr <= " in out and "the bottom of the lr domain can come up" in out
    quiet = write_run(tmp_path / "quiet", kinds_over_lr(["ok", "slow", "ok"]))
    assert main([quiet, "--no-report"]) == 0
    assert "no clear pattern of labels against the lr" in capsys.readouterr().out
