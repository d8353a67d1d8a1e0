"""A run's objectives and constraints as run.json names them, and the trials.parquet
columns that hold them (pipelines.records.tables.objective_column): a cost column as
it is, an epoch metric as the trial's best of it.

run.json's `metric` and `mode` are the primary objective; `objectives` lists every
objective as [metric, mode] pairs, the primary first, and `constraints` gives
{cost column: limit}. Runs written before either existed (or brought from another
tool) have the primary objective alone and no constraint.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from pipelines.records import tables as res

MODES = ("min", "max")
Objective = tuple[str, str]  # (metric, mode)


def objectives_of(meta: dict) -> list[Objective]:
    """[(metric, mode), ...] of a run's run.json (checked by objectives_problem)."""
    listed = meta.get("objectives")
    if not listed:
        return [(meta["metric"], meta["mode"])]
    return [(str(metric), str(mode)) for metric, mode in listed]


def constraints_of(meta: dict) -> dict[str, float]:
    """{column: limit} of a run's run.json; {} where it has none."""
    return dict(meta.get("constraints") or {})


def objective_columns(objectives: Sequence[Objective]) -> list[str]:
    """The trials.parquet column of each objective, in order."""
    return [res.objective_column(metric) for metric, _ in objectives]


def objectives_problem(meta: dict) -> str | None:
    """What is wrong with run.json's `objectives` and `constraints` (None: nothing),
    as the end of a one-line message."""
    listed = meta.get("objectives")
    if listed is not None and not (
            isinstance(listed, list) and listed and all(
                isinstance(o, list) and len(o) == 2 and isinstance(o[0], str)
                and o[1] in MODES for o in listed)):
        return ("'objectives' is not a list of [metric, 'min' | 'max'] pairs as "
                "pipelines.run writes it")
    constraints = meta.get("constraints")
    if constraints is not None and not (
            isinstance(constraints, dict) and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                for v in constraints.values())):
        return "'constraints' is not a {column: limit} mapping of numbers"
    return None


def better(mode: str) -> str:
    """'higher is better' or 'lower is better'."""
    return f"{'higher' if mode == 'max' else 'lower'} is better"


def objective_names(objectives: Sequence[Objective]) -> str:
    """'val_acc (higher is better), params (lower is better)'."""
    return ", ".join(f"{metric} ({better(mode)})" for metric, mode in objectives)


def constraint_names(constraints: dict[str, float]) -> str:
    """'params <= 1,000,000, peak_mem_mb <= 2,048'."""
    return ", ".join(f"{column} <= {limit:,.6g}" for column, limit in constraints.items())

