"""`python -m pipelines.analyze` and the report on a run with two objectives and
constraints, as pipelines.run writes one for a sweep file outside the repository on
digits (tests/analysis/objective_runs.py), into tmp_path: the leaderboard of feasible
trials with every objective, --sort, the Pareto front's size and section, its scatter
figure, and the confirmation of the top configurations where confirm.parquet exists."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipelines.analysis import figures as plots
from pipelines.analysis.confirmation import summarise, verdict
from pipelines.analysis.pareto import pareto_front
from pipelines.analysis.ranking import leaderboard
from pipelines.analysis.runs import load_run
from pipelines.analyze import main
from tests.analysis import objective_runs as digits


@pytest.fixture
def digits_run(tmp_path) -> str:
    return digits.write_run(tmp_path / "digits", digits.records(n=24))


def printed_ids(text: str) -> list[str]:
    return re.findall(r"^\s*(d\d\d) ", text, flags=re.MULTILINE)


def test_analyze_prints_feasible_trials_the_front_and_the_confirmation(
        digits_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = load_run(digits_run)
    top3 = leaderboard(run.trials, run.metric, run.mode, n=3)
    confirm = digits.write_confirm(digits_run, top3, seeds=3)
    out = tmp_path / "report"
    assert main([digits_run, "--out", str(out), "--top", "5"]) == 0
    printed = capsys.readouterr().out
    trials = pd.read_parquet(Path(digits_run) / "trials.parquet")
    broke = int((~trials["feasible"]).sum())
    board = printed.split(f"top 5 of 24 trials by val_rmse ({broke} broke a constraint, "
                          f"not ranked):\n")[1]
    assert board.splitlines()[0].split()[:3] == ["trial_id", "best_val_rmse", "params"]
    feasible = trials[trials["feasible"]]
    assert printed_ids(board)[:5] == feasible.nsmallest(5, "best_val_rmse")["trial_id"].tolist()
    front = pareto_front(run)
    scored = int(feasible["best_val_rmse"].notna().sum())
    assert (f"pareto front on val_rmse (lower is better), params (lower is better): "
            f"{len(front)} of {scored} feasible scored trials") in printed
    assert 1 < len(front) < scored  # a trade-off: fewer pixels, worse rmse
    summary = summarise(confirm, "min")
    assert verdict(summary, "min") in printed and "confirmation (confirm.parquet)" in printed

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<th>objectives</th><td>val_rmse (lower is better), params (lower is better)" in html
    assert "params &lt;= 48, latency_ms &lt;= 0.04" in html
    section = html[html.index("Pareto front:"):html.index("Best configuration")]
    assert set(re.findall(r"<td>(d\d\d)</td>", section)) == set(front["trial_id"])
    assert f"{broke} trial(s) broke a constraint" in html
    confirmation = html[html.index("Confirmation: the top 3 configuration(s)"):]
    assert re.findall(r"<td>(d\d\d)</td>", confirmation)[:3] == summary["trial_id"].tolist()
    assert 'src="pareto_front.png"' in html
    with Image.open(out / "pareto_front.png") as image:
        image.verify()


def test_sort_ranks_the_printed_leaderboard_by_any_column(
        digits_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    trials = pd.read_parquet(Path(digits_run) / "trials.parquet")
    feasible = trials[trials["feasible"]]
    for spec, column, largest in (("params", "params", False), ("features:max",
                                                                "config/features", True)):
        assert main([digits_run, "--no-report", "--top", "4", "--sort", spec]) == 0
        printed = capsys.readouterr().out
        by = f"{column}, {'largest' if largest else 'smallest'} first"
        assert f"top 4 of 24 trials by {by} (" in printed
        board = printed.split(f"by {by}")[1]
        expected = feasible.sort_values(column, ascending=not largest, kind="stable")
        assert printed_ids(board)[:4] == expected["trial_id"].head(4).tolist()


@pytest.mark.parametrize("spec,message", [
    ("nope", "error: no column 'nope' to sort the trials by; sort by one of: val_rmse, "
             "params, trial_id, "),
    ("params:up", "error: sort 'params:up': the direction after ':' is 'min'"),
])
def test_a_bad_sort_is_one_line_exit_2_and_writes_nothing(
        digits_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str,
        message: str) -> None:
    before = sorted(p.name for p in Path(digits_run).iterdir())
    assert main([digits_run, "--sort", spec]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1
    assert captured.out == "" and sorted(p.name for p in Path(digits_run).iterdir()) == before


@pytest.mark.parametrize("objectives", [
    digits.OBJECTIVES,
    (("val_rmse", "min"), ("params", "min"), ("latency_ms", "min")),
    (("val_rmse", "min"),),
], ids=["two", "three", "one"])
def test_the_pareto_figure_is_a_png(tmp_path: Path, objectives) -> None:
    run = load_run(digits.write_run(tmp_path / "run", digits.records(n=12),
                                    objectives=objectives))
    path = plots.plot_pareto_front(run.trials, run.meta, tmp_path / "pareto.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200
    empty = run.trials.iloc[:0]
    assert plots.plot_pareto_front(empty, run.meta, tmp_path / "empty.png").is_file()
