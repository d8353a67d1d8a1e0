"""CLI: `python -m pipelines.analyze <run dir> [<more run dirs>]`.

Prints the leaderboard (feasible trials only, sorted by the primary objective or
--sort), the Pareto front of a run with several objectives, the confirmation of
its top configurations where it has one, the hyperparameter importances of the
first run, what its training-loss curves say of the learning rate (where it
recorded them), and a comparison when several runs are given, and writes
`report.html` with its PNG figures into the first run's directory (or --out).
Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipelines.analysis.anova import IMPORTANCE_EVALUATORS, importance
from pipelines.analysis.confirmation import CONFIRM_FILE, confirmed_summary, verdict
from pipelines.analysis.curves import compare_runs
from pipelines.analysis.lr_diagnosis import advice, has_diagnosis, label_counts
from pipelines.analysis.objectives import objective_columns, objective_names
from pipelines.analysis.pareto import pareto_front
from pipelines.analysis.ranking import (
    feasible,
    format_table,
    leaderboard,
    leaderboard_table,
    sort_order,
    stage_table,
    stop_reason_summary,
    stop_reasons,
)
from pipelines.analysis.runs import Run, load_run
from pipelines.analysis.space_inference import inferred_space_note
from pipelines.cli import EXIT_USAGE, OneLineParser, exit_with
from pipelines.errors import UsageError
from pipelines.records.storage import first_line
from pipelines.records.tables import CONFIG_PREFIX

SHOWN_CONFIG_COLUMNS = 8


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m pipelines.analyze",
                      description="Leaderboard, hyperparameter importance and an HTML report of "
                                  "sweep runs, from their Parquet files.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="results directories (<storage>/<sweep>/<run>); the first is reported, "
                        "the others are compared with it")
    p.add_argument("--top", type=int, default=10, help="leaderboard rows (default 10)")
    p.add_argument("--sort", metavar="COLUMN[:min|max]",
                   help="rank the printed leaderboard by COLUMN instead of the primary "
                        "objective: any objective (by its metric's name), trials.parquet "
                        "column or config key; :min / :max for smallest / largest first "
                        "(default: an objective's own mode, else smallest first)")
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
    """Print the run's leaderboard, stages, importances, learning-rate diagnosis and
    final score (and the comparison of several runs); write the report unless
    --no-report."""
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    runs = [load_run(path) for path in args.runs]
    if len({r.metric for r in runs}) > 1:
        raise UsageError("the runs optimise different metrics; compare runs of one sweep")
    run = runs[0]
    order = sort_order(run.trials, run.objectives, args.sort) if args.sort else None
    confirmation = _confirmation(run)
    out = _output_dir(runs[0], args)
    print(_summary_line(run))
    if run.space_inferred:
        print(inferred_space_note(run.space, run.trials))
    print(_leaderboard_text(run, args.top, order))
    if len(run.objectives) > 1:
        print(_front_text(run, args.top))
    if confirmation is not None:
        print(f"\nconfirmation ({CONFIRM_FILE}): {run.metric} over fresh seeds per "
              f"configuration, best mean first:\n"
              f"{format_table(_without_prefix(confirmation))}\n"
              f"{verdict(confirmation, run.mode)}")
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
    if has_diagnosis(run.trials):
        print("\n" + _diagnosis_text(run))
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
                                              final=final, confirmation=confirmation)
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


def _leaderboard_text(run: Run, n: int, order: tuple[str, str] | None) -> str:
    """The top `n` feasible trials by the primary objective, or by `order` (column,
    mode); a run with several objectives shows them all."""
    metric = run.metric
    column, mode = order or (None, run.mode)
    top = leaderboard(run.trials, metric, mode, n, by=column)
    shown = [*objective_columns(run.objectives), *([column] if column else [])]
    table = leaderboard_table(top, metric, list(run.space)[:SHOWN_CONFIG_COLUMNS],
                              columns=shown)
    if "stop_reason" in table:  # no reason yet: still running
        table["stop_reason"] = stop_reasons(table)
    by = metric if column is None else (
        f"{column}, {'largest' if mode == 'max' else 'smallest'} first")
    broke = len(run.trials) - len(feasible(run.trials))
    unranked = f" ({broke} broke a constraint, not ranked)" if broke else ""
    title = f"\ntop {len(top)} of {len(run.trials)} trials by {by}{unranked}:"
    if table.empty:
        return title + "\n  (no trial has reported yet)"
    return title + "\n" + format_table(table)


def _front_text(run: Run, n: int) -> str:
    """The size of the run's Pareto front, and its first `n` trials."""
    front = pareto_front(run)
    scored = int(feasible(run.trials)[objective_columns(run.objectives)]
                 .notna().all(axis=1).sum())
    title = (f"\npareto front on {objective_names(run.objectives)}: {len(front)} of {scored} "
             f"feasible scored trials")
    if front.empty:
        return title
    shown = f", the first {n}" if len(front) > n else ""
    table = leaderboard_table(front.head(n), run.metric, list(run.space)[:SHOWN_CONFIG_COLUMNS],
                              columns=objective_columns(run.objectives))
    return f"{title}{shown}:\n{format_table(table)}"


def _diagnosis_text(run: Run) -> str:
    """The trials per curve label, then each sentence of advice on the lr domain."""
    counts = ", ".join(f"{label} {n}" for label, n in label_counts(run.trials).items())
    sentences = advice(run.trials) or ["no clear pattern of labels against the lr"]
    return (f"learning-rate diagnosis of the training-loss curves: {counts}\n"
            + "\n".join(f"  {s}" for s in sentences))


def _confirmation(run: Run) -> pd.DataFrame | None:
    """The run's confirmation summary (pipelines.analysis.confirmation.summarise), None
    where it has no confirm.parquet."""
    try:
        return confirmed_summary(run.location)
    except (OSError, ValueError, KeyError) as e:  # pyarrow's errors; a column it lacks
        raise UsageError(f"cannot read {run.location / CONFIRM_FILE} ({first_line(e)}); "
                         f"rerun --confirm or remove the file") from None


def _without_prefix(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns=lambda c: str(c).removeprefix(CONFIG_PREFIX))


if __name__ == "__main__":
    exit_with(main)
