"""What the figures share to look alike: colours, names as written, units and
titles, and the stop-reason legend."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from matplotlib.lines import Line2D

from pipelines.analysis.formatting import comma_list
from pipelines.analysis.ranking import RUNNING
from pipelines.records.tables import STOP_REASONS

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies
STOP_COLORS = {"completed": "#0072B2", "early_stopped": "#E69F00",
               "no_improvement": "#56B4E9", "diverged": "#D55E00", "error": "#CC79A7",
               "infeasible": "#7F7F7F", RUNNING: "#009E73"}
# a curve's diagnosis (pipelines.records.diagnosis.LABELS): warm for a too-high lr, cool for
# too low, green for ok
DIAGNOSIS_COLORS = {"diverged": "#D55E00", "unstable": "#E69F00", "slow": "#56B4E9",
                    "ok": "#009E73"}
EVALUATOR_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}
METRIC_LABELS = {"val_acc": "validation accuracy (fraction)",
                 "val_loss": "validation loss (cross-entropy)"}
# the cost columns (pipelines.records.tables.COST_COLUMNS) as an axis names them
COST_LABELS = {"params": "trainable parameters", "peak_mem_mb": "peak memory (MB)",
               "latency_ms": "latency per image (ms)", "train_s": "training time (s)"}
# units of the built-in trainers' config keys, as pipelines/training/config.py gives them
CONFIG_UNITS = {"lr": "per 256 examples", "batch_size": "examples", "warmup_epochs": "epochs",
                "epochs": "epochs", "width": "channels", "crop_padding": "pixels",
                "flip_prob": "probability"}
SCATTER_MARKERS = {"infeasible": "x"}  # a scatter plot's marker by stop reason; else "o"
MAX_LABEL = 14  # characters of a tick label before it is cut


def run_title(meta: dict) -> str:
    """'cifar_sweep (optuna, asha)': the sweep with its algorithm and scheduler."""
    parts = [meta.get("algorithm"), meta.get("scheduler")]
    return f"{meta.get('sweep', 'run')} ({comma_list(p for p in parts if p)})"


def metric_label(metric: str) -> str:
    """An axis label for the metric, with what it measures where that is known."""
    return f"{metric}: {METRIC_LABELS[metric]}" if metric in METRIC_LABELS else metric


def objective_label(metric: str, mode: str) -> str:
    """An axis label for an objective: a cost by what it measures, a metric as its
    trial's best; with which way is better."""
    what = COST_LABELS.get(metric, f"best {metric}")
    return f"{what}, {'higher' if mode == 'max' else 'lower'} is better"


def stop_reason_handles(reasons: dict[str, str], shown: Iterable[object],
                        marker: bool = False) -> list[Line2D]:
    """Legend entries for the stop reasons of the trials shown, with their counts:
    lines (a cross for diverged), or dots when `marker` (for scatter plots; a cross
    for infeasible)."""
    counts = pd.Series([reasons.get(str(t), RUNNING) for t in shown]).value_counts()
    return [_handle(r, f"{r.replace('_', ' ')} ({counts[r]})", marker)
            for r in (*STOP_REASONS, RUNNING) if r in counts]


def _handle(reason: str, label: str, marker: bool) -> Line2D:
    if marker:
        return Line2D([], [], color=STOP_COLORS[reason], label=label, linestyle="none",
                      marker=SCATTER_MARKERS.get(reason, "o"))
    return Line2D([], [], color=STOP_COLORS[reason], label=label, linewidth=2,
                  marker="x" if reason == "diverged" else None)
