"""CLI: `python -m pipelines.analyze <run dir> [<more run dirs>]`.

Prints the leaderboard and the hyperparameter importances of the first run
(and a comparison when several are given), and writes `report.html` with its
PNG figures into the first run's directory (or --out). Bad input is one line
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipelines.analysis.anova import IMPORTANCE_EVALUATORS, importance
from pipelines.analysis.curves import compare_runs
from pipelines.analysis.ranking import (
    format_table,
    leaderboard,
    leaderboard_table,
    stage_table,
    stop_reason_summary,
    stop_reasons,
)
from pipelines.analysis.runs import Run, load_run
from pipelines.analysis.space_inference import inferred_space_note
from pipelines.cli import EXIT_USAGE, OneLineParser, exit_with
from pipelines.errors import UsageError

SHOWN_CONFIG_COLUMNS = 8


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m pipelines.analyze",
                      description="Leaderboard, hyperparameter importance and an HTML report of "
                                  "sweep runs, from their Parquet files.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="results directories (<storage>/<sweep>/<run>); the first is reported, "
                        "the others are compared with it")
    p.add_argument("--top", type=int, default=10, help="leaderboard rows (default 10)")
    p.add_argument("--out", help="where report.html and its PNGs go (default: the first run's "
                                 "directory; required for runs on object stores)")
    p.add_argument("--no-report", action="store_true", help="print only; write no files")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return analyze(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def analyze(args: argparse.Namespace) -> int:
    """Print the run's leaderboard, stages, importances and final score (and the
    comparison of several runs); write the report unless --no-report."""
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    runs = [load_run(path) for path in args.runs]
    if len({r.metric for r in runs}) > 1:
        raise UsageError("the runs optimise different metrics; compare runs of one sweep")
    out = _output_dir(runs[0], args)
    run = runs[0]
    print(_summary_line(run))
    if run.space_inferred:
        print(inferred_space_note(run.space, run.trials))
    print(_leaderboard_text(leaderboard(run.trials, run.metric, run.mode, args.top), run))
    if run.meta.get("stage_results"):
        print("\nstages:\n" + format_table(stage_table(run.meta["stage_results"], run.metric)))
    importances = {name: importance(run, name) for name in IMPORTANCE_EVALUATORS}
    for name, scores in importances.items():
        if not len(scores):
            why = "needs at least 4 scored trials" if run.space else "no searched hyperparameters"
            print(f"\nimportance ({name}): {why}")
            continue
        print(f"\nimportance ({name}), {_importance_basis(scores, run.metric)}:")
        for param, share in scores.items():
            print(f"  {param:20s} {share:6.3f}")
    final = run.meta.get("final")
    if final:
        print(f"\nfinal test score: test_acc {final['test_acc']:.4f} (trial {final['trial_id']}, "
              f"{final['epochs']} epochs on {final['train_size']} training images)")
    if len(runs) > 1:
        print("\n" + compare_runs(runs).to_string(index=False))
    if out is not None:
        from pipelines.analysis import report as html_report

        try:
            report = html_report.write_report(runs, out, importances=importances,
                                              final=final)
        except OSError as e:
            raise UsageError(f"cannot write the report to {out} ({e.strerror or e}); pass "
                             f"--out DIR, a writable directory") from None
        print(f"\nreport: {report}")
    return 0


def _output_dir(run: Run, args: argparse.Namespace) -> Path | None:
    if args.no_report:
        return None
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--out {out}: cannot create it ({e.strerror or e}); pass a "
                             f"writable directory") from None
        return out
    if not run.location.is_local:
        raise UsageError(f"{run.location} is on an object store; pass --out DIR for the report")
    return Path(run.location.path)


def _summary_line(run: Run) -> str:
    """'sweep / run: random search, asha scheduler, status finished; 12 trials (...)',
    leaving out what run.json does not say (a run brought from another tool)."""
    reasons = stop_reason_summary(run.trials) or "no trial ended yet"
    meta = run.meta
    said = [f"{meta['algorithm']} search" if meta.get("algorithm") else "",
            f"{meta['scheduler']} scheduler" if meta.get("scheduler") else "",
            f"status {meta['status']}" if meta.get("status") else ""]
    about = ", ".join(part for part in said if part)
    about += "; " if about else ""
    name = f"{meta['sweep']} / {run.name}" if meta.get("sweep") else run.name
    return f"{name}: {about}{len(run.trials)} trials ({reasons})"


def _importance_basis(scores: pd.Series, metric: str) -> str:
    """What the importances were computed on: one budget's scores, or (no epochs)
    each trial's best."""
    if scores.attrs["epoch"] is None:
        return (f"of each trial's best_{metric} in trials.parquet (no epochs to compare "
                f"at one budget), over {scores.attrs['trials']} scored trials")
    return (f"of the best {metric} up to epoch {scores.attrs['epoch']}, over the "
            f"{scores.attrs['trials']} trials that got there")


def _leaderboard_text(top: pd.DataFrame, run: Run) -> str:
    metric = run.metric
    table = leaderboard_table(top, metric, list(run.space)[:SHOWN_CONFIG_COLUMNS])
    if "stop_reason" in table:  # no reason yet: still running
        table["stop_reason"] = stop_reasons(table)
    title = f"\ntop {len(top)} of {len(run.trials)} trials by {metric}:"
    if table.empty:
        return title + "\n  (no trial has reported yet)"
    return title + "\n" + format_table(table)


if __name__ == "__main__":
    exit_with(main)
