"""The searched space of a run whose run.json describes none, as when a user brings
another tool's trials: each parameter's domain inferred from the values in its
`config/` column of trials.parquet, in the form pipelines.search.space.describe
writes (so the leaderboard, importance and figures treat it as a searched one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.analysis.formatting import LABEL_DIGITS, significant
from pipelines.records.tables import CONFIG_PREFIX

MAX_CHOICE_OPTIONS = 5  # a numeric column with at most this many distinct values is a Choice
LOG_SPAN = 100.0  # positive values whose max / min reaches this (two decades): a log domain


def infer_space(trials: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{parameter: domain} for each `config/` column whose values vary, in column order.
    Numbers with more than MAX_CHOICE_OPTIONS distinct values span a range (IntUniform
    if all are integral, LogUniform where positive and spanning LOG_SPAN, else Uniform);
    other values (few numbers, strings, bools) are a Choice, with None among its options
    where some trials lack the parameter."""
    space = {}
    for label in trials.columns:
        column = str(label)
        if column.startswith(CONFIG_PREFIX):
            domain = infer_domain(trials[label])
            if domain is not None:
                space[column.removeprefix(CONFIG_PREFIX)] = domain
    return space


def infer_domain(values: pd.Series) -> dict[str, Any] | None:
    """One column's domain, as infer_space says; None if its values do not vary (not
    searched) or are not numbers, strings or bools."""
    present = [v.item() if isinstance(v, np.generic) else v for v in values.dropna()]
    if not present or not all(isinstance(v, (bool, int, float, str)) for v in present):
        return None
    some_missing = len(present) < len(values)
    distinct = set(present)
    if len(distinct) == 1 and not some_missing:
        return None
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    integral = numeric and all(float(v).is_integer() for v in present)
    if numeric and len(distinct) > MAX_CHOICE_OPTIONS:
        low, high = min(present), max(present)
        log = low > 0 and high / low >= LOG_SPAN
        if integral:
            return {"type": "IntUniform", "low": int(low), "high": int(high), "log": log}
        return {"type": "LogUniform" if log else "Uniform", "low": float(low),
                "high": float(high)}
    options = sorted({int(v) if integral else v for v in distinct},
                     key=lambda v: (isinstance(v, str), v))  # numbers, then strings
    return {"type": "Choice", "options": [None, *options] if some_missing else options}


def inferred_space_note(space: dict[str, dict[str, Any]], trials: pd.DataFrame) -> str:
    """'parameters inferred from trials.parquet's config/ columns: lr (log 0.0001..0.1),
    ...': what infer_space found, and the config/ columns it left out."""
    found = ", ".join(f"{name} ({domain_summary(spec)})" for name, spec in space.items())
    note = f"parameters inferred from trials.parquet's config/ columns: {found or 'none'}"
    left_out = [c.removeprefix(CONFIG_PREFIX) for c in map(str, trials.columns)
                if c.startswith(CONFIG_PREFIX) and c.removeprefix(CONFIG_PREFIX) not in space]
    if left_out:
        note += f"; left out (one value in every trial, or not a number, string or bool): " \
                f"{', '.join(left_out)}"
    return note


def domain_summary(spec: dict[str, Any]) -> str:
    """'log 0.0001..0.1', 'int 1..8', 'choice of sgd, adam': a domain in a few words."""
    if spec["type"] == "Choice":
        return "choice of " + ", ".join(str(o) for o in spec["options"])
    if spec["type"] == "IntUniform":
        return f"int{' log' if spec.get('log') else ''} {spec['low']}..{spec['high']}"
    bounds = f"{significant(spec['low'], LABEL_DIGITS)}..{significant(spec['high'], LABEL_DIGITS)}"
    return f"log {bounds}" if spec["type"] == "LogUniform" else bounds
