"""`python -m pipelines.analyze` on a run of a user's own trainer: a metric of its
own name, minimised, and epochs without val_loss, lr or epoch_s; and on trials
brought from another tool, whose run.json holds only sweep, algorithm, metric and
mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis.runs import load_run
from pipelines.analyze import main
from tests.records.digits_runs import regression_epochs, user_records, write_user_run

BROUGHT_RUN_JSON = {"sweep": "digits_regression", "algorithm": "random", "metric": "val_rmse",
                    "mode": "min"}  # all a user writes beside another tool's trials


@pytest.mark.parametrize("run_json", ["as_written", "four_keys"])
def test_analyze_reports_a_minimised_users_metric(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  run_json: str) -> None:
    run_dir = write_user_run(tmp_path / "run", user_records(n=12))
    if run_json == "four_keys":  # the space too is left to infer from config/ columns
        (Path(run_dir) / "run.json").write_text(json.dumps(BROUGHT_RUN_JSON))
    out = tmp_path / "report"
    assert main([run_dir, "--out", str(out), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "top 3 of 12 trials by val_rmse:" in printed
    trials = pd.read_parquet(f"{run_dir}/trials.parquet")
    lowest = trials.nsmallest(3, "best_val_rmse")["trial_id"].tolist()
    assert re.findall(r"^\s*(u\d\d) ", printed, flags=re.MULTILINE)[:3] == lowest
    assert "importance (fanova), of the best val_rmse up to epoch 4" in printed
    assert printed.strip().endswith(f"report: {out / 'report.html'}")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "val_rmse (lower is better)" in html and f"Trial {lowest[0]}: best val_rmse" in html
    for name in re.findall(r'src="([^"]+)"', html):
        assert (out / name).is_file(), name
    assert "learning_curves.png" in html and "best_so_far.png" in html
    if run_json == "four_keys":
        assert printed.splitlines()[0] == "digits_regression / run: random search; " \
                                          "12 trials (completed 12)"
        assert "None" not in printed and "None" not in html
        assert "parameters inferred from trials.parquet's config/ columns: lr (log " in printed


def brought_trials(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Another tool's tables of the digits regression. Trials: an int trial id, the best
    val_rmse over 4 epochs and config/ columns, no other column of raysweep's schema
    (lr log-uniform over three decades, l2 uniform within one, steps_per_epoch one of
    two, epochs the same in every trial). Epochs: trial id, epoch and val_rmse alone."""
    rng = np.random.default_rng(seed)
    trials, epochs = [], []
    for i in range(n):
        lr, l2 = float(10 ** rng.uniform(-4, -1)), float(rng.uniform(0.01, 0.1))
        steps = int(rng.choice([1, 4]))
        scores = [e["val_rmse"] for e in regression_epochs(lr, l2, steps, epochs=4)]
        trials.append({"trial_id": i, "best_val_rmse": min(scores), "config/lr": lr,
                       "config/l2": l2, "config/steps_per_epoch": steps, "config/epochs": 4})
        epochs += [{"trial_id": i, "epoch": e, "val_rmse": v} for e, v in enumerate(scores, 1)]
    return pd.DataFrame(trials), pd.DataFrame(epochs)


@pytest.mark.parametrize("with_epochs", [False, True], ids=["trials_only", "with_epochs"])
def test_analyze_infers_the_space_of_trials_brought_from_another_tool(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], with_epochs: bool) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trials, epochs = brought_trials()
    trials.to_parquet(run_dir / "trials.parquet")
    if with_epochs:
        epochs.to_parquet(run_dir / "epochs.parquet")
    (run_dir / "run.json").write_text(json.dumps(BROUGHT_RUN_JSON))

    run = load_run(str(run_dir))
    assert run.space_inferred and run.space == {
        "lr": {"type": "LogUniform", "low": trials["config/lr"].min(),
               "high": trials["config/lr"].max()},  # spans three decades: log
        "l2": {"type": "Uniform", "low": trials["config/l2"].min(),
               "high": trials["config/l2"].max()},  # within one decade: linear
        "steps_per_epoch": {"type": "Choice", "options": [1, 4]},
    }  # epochs, one value in every trial, was not searched
    out = tmp_path / "report"
    assert main([str(run_dir), "--out", str(out), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    header, note = printed.splitlines()[:2]
    assert header == "digits_regression / run: random search; 60 trials (completed 60)"
    assert re.fullmatch(r"parameters inferred from trials.parquet's config/ columns: "
                        r"lr \(log 0\.000\d+\.\.0\.0\d+\), l2 \(0\.01\d*\.\.0\.0\d+\), "
                        r"steps_per_epoch \(choice of 1, 4\); left out \(.*\): epochs", note)
    leaderboard = printed.split("by val_rmse:\n")[1].splitlines()
    assert leaderboard[0].split() == ["trial_id", "best_val_rmse", "stop_reason", "lr", "l2",
                                      "steps_per_epoch"]
    lowest = trials.nsmallest(3, "best_val_rmse")["trial_id"].tolist()
    assert [int(row.split()[0]) for row in leaderboard[1:4]] == lowest
    basis = ("of the best val_rmse up to epoch 4, over the 60 trials that got there"
             if with_epochs else "of each trial's best_val_rmse in trials.parquet (no epochs "
                                 "to compare at one budget), over 60 scored trials")
    for evaluator in ("fanova", "ped_anova"):
        shares = printed.split(f"importance ({evaluator}), {basis}:\n")[1].splitlines()[:3]
        assert sorted(line.split()[0] for line in shares) == ["l2", "lr", "steps_per_epoch"]
        assert shares[0].split()[0] == "lr"  # three decades of step size matter most
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "None" not in html and "<th>status</th>" not in html
    assert "<th>scheduler</th>" not in html
    assert ("<th>epochs trained</th><td>240</td>" in html) == with_epochs
    assert "<th>searched</th><td>parameters inferred from" in html
    assert "<th>steps_per_epoch</th>" in html and "PED-ANOVA" in html
    drawn = re.findall(r'src="([^"]+)"', html)
    per_run = ["metric_vs_params.png", "parallel_coordinates.png", "importance.png"]
    assert drawn == (["learning_curves.png", *per_run, "best_so_far.png"] if with_epochs
                     else per_run)
    assert all((out / name).is_file() for name in drawn)


@pytest.mark.parametrize("table,dropped", [("trials", "trial_id"), ("epochs", "val_rmse")])
def test_a_brought_table_without_a_needed_column_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, dropped: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trials, epochs = brought_trials(n=4)
    frames = {"trials": trials, "epochs": epochs}
    for name, frame in frames.items():
        frame.drop(columns=dropped if name == table else []).to_parquet(
            run_dir / f"{name}.parquet")
    (run_dir / "run.json").write_text(json.dumps(BROUGHT_RUN_JSON))
    assert main([str(run_dir), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run_dir / f'{table}.parquet'} has no {dropped} column; add it " \
                  f"(run.json names 'val_rmse' as the metric)\n"
