"""Figures of a sweep's results, one module per figure, drawn from the Parquet
tables (see pipelines.records.tables) and run.json's metadata, never from paths.

Each plot_* function saves one PNG atomically (temp file and rename, through
pipelines.records.storage) and returns its path. Figures are built on
`matplotlib.figure.Figure` with an Agg canvas (`canvas`), never through pyplot,
so importing or calling this package changes no global matplotlib state.
"""

from pipelines.analysis.figures.best_so_far import plot_best_so_far
from pipelines.analysis.figures.learning_curves import plot_learning_curves
from pipelines.analysis.figures.loss_diagnosis import MAX_CURVES_PER_LABEL, plot_loss_diagnosis
from pipelines.analysis.figures.lr_schedule import plot_lr_schedule
from pipelines.analysis.figures.metric_vs_params import plot_metric_vs_params
from pipelines.analysis.figures.parallel_coordinates import plot_parallel_coordinates
from pipelines.analysis.figures.param_importances import plot_importances
from pipelines.analysis.figures.pareto_front import plot_pareto_front
from pipelines.analysis.figures.style import DIAGNOSIS_COLORS, EVALUATOR_NAMES, STOP_COLORS
from pipelines.analysis.figures.trials import RUNG_SCHEDULERS, best_trial_id, rung_epochs

__all__ = [
    "DIAGNOSIS_COLORS", "EVALUATOR_NAMES", "MAX_CURVES_PER_LABEL", "RUNG_SCHEDULERS",
    "STOP_COLORS", "best_trial_id", "plot_best_so_far", "plot_importances",
    "plot_learning_curves", "plot_loss_diagnosis", "plot_lr_schedule", "plot_metric_vs_params",
    "plot_parallel_coordinates", "plot_pareto_front", "rung_epochs",
]
