"""Analyse runs from their Parquet files alone: load runs, rank trials, take the
best configuration, estimate hyperparameter importance, trace the best score
against the budget, infer the searched space of trials brought from another tool.
The figures (`pipelines.analysis.figures`), the HTML report
(`pipelines.analysis.report`) and its captions are imported on their own: they
need matplotlib, which nothing else here does."""

from pipelines.analysis.anova import IMPORTANCE_EVALUATORS, importance, scores_at_budget
from pipelines.analysis.curves import best_so_far, compare_runs
from pipelines.analysis.formatting import LABEL_DIGITS, significant
from pipelines.analysis.ranking import (
    format_table,
    leaderboard,
    leaderboard_table,
    stage_table,
    stop_reason_summary,
    stop_reasons,
)
from pipelines.analysis.runs import (
    Run,
    best_config,
    config_of,
    int_config_keys,
    load_run,
    load_runs,
    run_names,
    scored_epochs,
)
from pipelines.analysis.space_inference import infer_space, inferred_space_note

__all__ = [
    "IMPORTANCE_EVALUATORS", "LABEL_DIGITS", "Run", "best_config", "best_so_far", "compare_runs",
    "config_of", "format_table", "importance", "infer_space", "inferred_space_note",
    "int_config_keys", "leaderboard", "leaderboard_table", "load_run", "load_runs", "run_names",
    "scores_at_budget", "scored_epochs", "significant", "stage_table", "stop_reason_summary",
    "stop_reasons",
]
