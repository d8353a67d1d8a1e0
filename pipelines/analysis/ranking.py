"""Trials ranked by their best score (or any column), feasible ones only, and the
tables a terminal shows of them (the leaderboard, a staged run's per-stage table)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from pipelines.analysis.formatting import LABEL_DIGITS, format_value, table_number
from pipelines.analysis.objectives import MODES, Objective
from pipelines.errors import UsageError
from pipelines.records import tables as res

RUNNING = "running"  # how a trial without a stop reason yet is shown
INFEASIBLE = "infeasible"  # the stop reason of a trial that broke a constraint at its start
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


def feasible(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that broke no constraint: all but those whose `feasible` is False or
    whose stop reason is infeasible (a table without the column: all of them)."""
    keep = pd.Series(True, index=trials.index)
    if "feasible" in trials:
        keep &= trials["feasible"].astype("boolean").fillna(True).astype(bool)
    if "stop_reason" in trials:
        keep &= trials["stop_reason"].astype(object) != INFEASIBLE
    return trials[keep]


def leaderboard(trials: pd.DataFrame, metric: str, mode: str, n: int = 5, *,
                by: str | None = None) -> pd.DataFrame:
    """The top `n` feasible trials by their best score, or by the column `by`, best
    first by `mode` ("min": smallest first); trials without a value last."""
    column = by or res.objective_column(metric)
    return feasible(trials).sort_values(column, ascending=mode == "min", kind="stable",
                                        na_position="last").head(n)


def sort_order(trials: pd.DataFrame, objectives: Sequence[Objective],
               spec: str) -> tuple[str, str]:
    """(column, mode) that a sort spec names: 'NAME' or 'NAME:min' / 'NAME:max'
    (smallest / largest first). NAME: a trials column, an objective's metric (its
    column, by default in its mode) or a config key; other columns go smallest first
    by default. A UsageError naming the columns there are for any other NAME."""
    name, _, direction = spec.partition(":")
    if direction and direction not in MODES:
        raise UsageError(f"sort {spec!r}: the direction after ':' is 'min' (smallest first) "
                         f"or 'max' (largest first), not {direction!r}")
    modes = {res.objective_column(m): m_mode for m, m_mode in objectives}
    for column in (name, res.objective_column(name), res.CONFIG_PREFIX + name):
        if column in trials:
            return column, direction or modes.get(column, "min")
    sortable = [m for m, _ in objectives] + [str(c) for c in trials.columns]
    raise UsageError(f"no column {name!r} to sort the trials by; sort by one of: "
                     f"{', '.join(dict.fromkeys(sortable))}")


def leaderboard_table(top: pd.DataFrame, metric: str, config_keys: Iterable[str], *,
                      columns: Iterable[str] = ()) -> pd.DataFrame:
    """The leaderboard as shown on a terminal: id, score, the other `columns` (further
    objectives, a sort column), epochs, stop reason and the given config keys (those
    present), without the `config/` prefix."""
    score = res.objective_column(metric)
    shown = ["trial_id", score, *(c for c in columns if c != score), "best_epoch", "epochs",
             "stop_reason"]
    shown += [res.CONFIG_PREFIX + k for k in config_keys]
    shown = list(dict.fromkeys(shown))  # a sort column may be a config key
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
