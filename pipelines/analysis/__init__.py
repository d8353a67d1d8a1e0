"""Analyse runs from their Parquet files alone: load runs, rank trials (feasible ones
only), take the best configuration, find the Pareto front of several objectives,
summarise the retrains that confirm the top configurations, estimate hyperparameter
importance, trace the best score against the budget, infer the searched space of
trials brought from another tool, and read the learning rate off the trials'
training-loss curves (labels against the lr, and advice on its domain). The figures
(`pipelines.analysis.figures`), the HTML report (`pipelines.analysis.report`) and
its captions are imported on their own: they need matplotlib, which nothing else
here does."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.analysis.anova import IMPORTANCE_EVALUATORS, importance, scores_at_budget
    from pipelines.analysis.confirmation import (
        CONFIDENCE,
        CONFIRM_COLUMNS,
        CONFIRM_FILE,
        confirmed_summary,
        confirmed_winner,
        summarise,
        verdict,
    )
    from pipelines.analysis.curves import best_so_far, compare_runs
    from pipelines.analysis.formatting import LABEL_DIGITS, significant
    from pipelines.analysis.lr_diagnosis import (
        advice,
        has_diagnosis,
        label_counts,
        label_table,
        lr_pattern,
    )
    from pipelines.analysis.objectives import (
        constraint_names,
        constraints_of,
        objective_columns,
        objective_names,
        objectives_of,
    )
    from pipelines.analysis.pareto import front_of, non_dominated, pareto_front
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
    "CONFIDENCE", "CONFIRM_COLUMNS", "CONFIRM_FILE", "IMPORTANCE_EVALUATORS", "LABEL_DIGITS",
    "Run", "advice", "best_config", "best_so_far", "compare_runs", "config_of",
    "confirmed_summary", "confirmed_winner", "constraint_names", "constraints_of", "feasible",
    "format_table", "front_of", "has_diagnosis", "importance", "infer_space",
    "inferred_space_note", "int_config_keys", "label_counts", "label_table", "leaderboard",
    "leaderboard_table", "load_run", "load_runs", "lr_pattern", "non_dominated",
    "objective_columns", "objective_names", "objectives_of", "pareto_front", "run_names",
    "scored_epochs", "scores_at_budget", "significant", "sort_order", "stage_table",
    "stop_reason_summary", "stop_reasons", "summarise", "verdict",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
