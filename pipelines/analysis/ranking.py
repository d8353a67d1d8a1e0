"""Trials ranked by their best score, and the tables a terminal shows of them
(the leaderboard, a staged run's per-stage table)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from pipelines.analysis.formatting import LABEL_DIGITS, format_value, table_number
from pipelines.records import tables as res

RUNNING = "running"  # how a trial without a stop reason yet is shown
# leaderboard columns a table brought from another tool may not record: shown where it does
OPTIONAL_COLUMNS = ("best_epoch", "epochs", "wall_s")


def format_table(frame: pd.DataFrame) -> str:
    """A table as the CLIs print it: no index, floats to 4 significant digits."""
    return frame.to_string(index=False, float_format=table_number)


def stop_reasons(trials: pd.DataFrame) -> pd.Series:
    """Each trial's stop reason, RUNNING for a trial that has none yet."""
    return trials["stop_reason"].astype(object).fillna(RUNNING)


def stop_reason_summary(trials: pd.DataFrame) -> str:
    """'completed 5, early_stopped 7': the trials per stop reason (a trial still
    going counts as running), by reason; '' when there are none."""
    counts = stop_reasons(trials).value_counts().to_dict()
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))


def leaderboard(trials: pd.DataFrame, metric: str, mode: str, n: int = 5) -> pd.DataFrame:
    """The top `n` trials by their best score (trials without one last)."""
    return trials.sort_values(f"best_{metric}", ascending=mode == "min", kind="stable",
                              na_position="last").head(n)


def leaderboard_table(top: pd.DataFrame, metric: str,
                      config_keys: Iterable[str]) -> pd.DataFrame:
    """The leaderboard as shown on a terminal: id, score, epochs, stop reason and the
    given config keys (those present), without the `config/` prefix."""
    shown = ["trial_id", f"best_{metric}", "best_epoch", "epochs", "stop_reason"]
    shown += [res.CONFIG_PREFIX + k for k in config_keys]
    shown = recorded(top, shown)  # no config columns before any trial ran
    return top[shown].rename(columns=lambda c: c.removeprefix(res.CONFIG_PREFIX))


def recorded(top: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The `columns` that `top` has, less the OPTIONAL_COLUMNS none of its rows has a
    value in."""
    return [c for c in columns if c in top
            and (c not in OPTIONAL_COLUMNS or bool(top[c].notna().any()))]


def stage_table(summaries: list[dict], metric: str) -> pd.DataFrame:
    """A staged run's per-stage table (run.json's `stage_results`): its trials and
    epochs, the best score in the stage and so far, and what the stage changed."""
    rows = [{"stage": f"{s['stage']} {s['name']}", "trials": s["trials"],
             "epochs": s["epochs"], f"best {metric} (stage)": s["best_in_stage"],
             f"best {metric} so far": s["best_so_far"],
             "changed": _changes(s["changed"])} for s in summaries]
    return pd.DataFrame(rows)


def _changes(changed: dict[str, Sequence[object]]) -> str:
    """'lr 0.1 -> 0.0123, optimizer sgd -> adam' from {name: [old, new]}."""
    if not changed:
        return "kept"
    return ", ".join(f"{name} {format_value(old, LABEL_DIGITS)} -> "
                     f"{format_value(new, LABEL_DIGITS)}"
                     for name, (old, new) in changed.items())
