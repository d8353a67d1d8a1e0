"""The learning-rate diagnosis of a run: how its trials' curve labels
(trials.parquet's `diagnosis`, pipelines.records.diagnosis) fall against the lr
and the batch size, and a sentence of advice where a pattern is clear.

A pattern is clear at an end of the lr range when, among the trials with the
highest (lowest) lr, at least ADVICE_MIN_TRIALS were judged, at least
ADVICE_MIN_SHARE of them got a too-high label (too-low label), and of the trials
below (above) them at most ADVICE_MAX_SHARE_ELSEWHERE did: labels spread over
the whole range point at a cause other than the lr. A group may be every judged
trial (none below or above it): then the whole lr domain is too high (too low),
and the advice says so without a comparison. The group named is the largest
that passes whose innermost trial has the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.analysis.formatting import LABEL_DIGITS, significant
from pipelines.records import diagnosis
from pipelines.records.tables import CONFIG_PREFIX

__all__ = [
    "ADVICE_MAX_SHARE_ELSEWHERE", "ADVICE_MIN_SHARE", "ADVICE_MIN_TRIALS", "LR_BINS",
    "TOO_HIGH", "TOO_LOW", "Pattern", "advice", "diagnosed", "has_diagnosis",
    "label_counts", "label_table", "lr_pattern", "rule_summary",
]

TOO_HIGH = ("diverged", "unstable")  # the labels that say the lr is too high
TOO_LOW = ("slow",)  # ... too low
ADVICE_MIN_TRIALS = 4  # judged trials at an end of the lr range before a pattern is named
ADVICE_MIN_SHARE = 0.75  # share of them with the label
ADVICE_MAX_SHARE_ELSEWHERE = 0.25  # share of the other judged trials that may have it
LR_BINS = 5  # log-spaced lr bins of the label table (fewer distinct values: one row each)
BIN_DIGITS = 2  # significant digits of a bin's edges
LABELS = diagnosis.LABELS
LR = CONFIG_PREFIX + "lr"


@dataclass(frozen=True)
class Pattern:
    """Trials at one end of the lr range, most of them with labels in `labels`:
    `hits` of `trials` trials with lr at or beyond `lr` (>= at the top, <= at the
    bottom); `others` of the `rest` judged trials beyond them had such labels."""

    end: str  # "top" or "bottom"
    labels: tuple[str, ...]
    lr: float
    trials: int
    hits: int
    rest: int
    others: int


def has_diagnosis(trials: pd.DataFrame) -> bool:
    """Whether any trial's curve was labelled (a run with steps.parquet)."""
    return "diagnosis" in trials and bool(trials["diagnosis"].notna().any())


def diagnosed(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with a label."""
    if "diagnosis" not in trials:
        return trials.iloc[:0]
    return trials[trials["diagnosis"].notna()]


def label_counts(trials: pd.DataFrame) -> dict[str, int]:
    """{label: trials} in LABELS' order, labels no trial got left out."""
    counts = diagnosed(trials)["diagnosis"].astype(str).value_counts()
    return {label: int(counts[label]) for label in LABELS if label in counts}


def label_table(trials: pd.DataFrame, key: str = "lr", bins: int = LR_BINS) -> pd.DataFrame:
    """Trials per label (columns in LABELS' order, and `trials`) for each value of the
    config key `key`, or for `bins` log-spaced ranges of it where it takes more
    values than that (all positive); empty where no labelled trial has the key."""
    column = CONFIG_PREFIX + key
    judged = diagnosed(trials)
    if column not in judged:
        return pd.DataFrame(columns=[key, *LABELS, "trials"])
    judged = judged[judged[column].notna()]
    values = pd.to_numeric(judged[column], errors="coerce")
    numeric = bool(len(judged)) and bool(values.notna().all())
    if numeric and values.nunique() > bins and bool((values > 0).all()):
        groups = _log_bins(values, bins)
    elif numeric:
        groups = values.map(lambda v: significant(float(v), LABEL_DIGITS))
        groups = pd.Categorical(groups, categories=[significant(float(v), LABEL_DIGITS)
                                                    for v in sorted(values.unique())])
    else:
        groups = judged[column].astype(str)
    counts = pd.crosstab(pd.Series(groups, index=judged.index, name=key),
                         judged["diagnosis"].astype(str))
    table = counts.reindex(columns=list(LABELS), fill_value=0)
    table["trials"] = table.sum(axis=1)
    return table[table["trials"] > 0].reset_index().rename_axis(columns=None)


def _log_bins(values: pd.Series, bins: int) -> pd.Categorical:
    """Each value's range of `bins` log-spaced ones over the values' span, written
    '0.0012-0.013' (edges to BIN_DIGITS; the top range closed)."""
    edges = np.geomspace(float(values.min()), float(values.max()), bins + 1)
    names = [f"{significant(lo, BIN_DIGITS)}-{significant(hi, BIN_DIGITS)}"
             for lo, hi in zip(edges[:-1], edges[1:])]
    index = np.clip(np.searchsorted(edges, values.to_numpy(float), side="right") - 1,
                    0, bins - 1)
    return pd.Categorical([names[i] for i in index], categories=names)


def lr_pattern(trials: pd.DataFrame, labels: Sequence[str], end: str) -> Pattern | None:
    """The largest group of trials at the `end` ("top" or "bottom") of the lr range
    whose labels are clearly `labels` (see the module's doc), or None."""
    judged = diagnosed(trials)
    if LR not in judged:
        return None
    lrs = pd.to_numeric(judged[LR], errors="coerce")
    keep = np.isfinite(lrs) & (lrs > 0)
    lr = lrs[keep].to_numpy(float)
    hit = judged.loc[keep, "diagnosis"].astype(str).isin(labels).to_numpy()
    order = np.argsort(-lr if end == "top" else lr, kind="stable")
    lr, hit = lr[order], hit[order]
    n = len(lr)
    if n < ADVICE_MIN_TRIALS:
        return None
    hits = np.cumsum(hit)  # hits[k - 1]: among the k trials nearest the end
    best = None
    for k in range(ADVICE_MIN_TRIALS, n + 1):
        if not hit[k - 1] or (k < n and lr[k] == lr[k - 1]):
            continue  # a group ends at a trial with the label, and between two lrs
        rest, others = n - k, int(hits[-1] - hits[k - 1])
        if (hits[k - 1] >= ADVICE_MIN_SHARE * k
                and others <= ADVICE_MAX_SHARE_ELSEWHERE * rest):
            best = Pattern(end, tuple(labels), float(lr[k - 1]), k, int(hits[k - 1]), rest,
                           others)
    return best


def advice(trials: pd.DataFrame) -> list[str]:
    """One sentence per clear pattern of labels against the lr: too-high labels at
    the top of its range, slow ones at the bottom; none where the data do not
    show one (see the module's doc)."""
    sentences = []
    top = lr_pattern(trials, TOO_HIGH, "top")
    if top is not None:
        sentences.append(f"{_share(top)} trials with lr >= {_lr(top.lr)} were "
                         f"{_labels_of(trials, top)}{_elsewhere(top)}; the top of the lr "
                         f"domain can come down.")
    bottom = lr_pattern(trials, TOO_LOW, "bottom")
    if bottom is not None:
        sentences.append(f"{_share(bottom)} trials with lr <= {_lr(bottom.lr)} were slow"
                         f"{_elsewhere(bottom)}; the bottom of the lr domain can come up.")
    return sentences


def _share(pattern: Pattern) -> str:
    if pattern.hits == pattern.trials:
        return f"All {pattern.trials}"
    return f"{pattern.hits} of {pattern.trials}"


def _lr(value: float) -> str:
    return significant(value, LABEL_DIGITS) if math.isfinite(value) else str(value)


def _labels_of(trials: pd.DataFrame, pattern: Pattern) -> str:
    """'unstable or diverged': the too-high labels the group's trials got."""
    judged = diagnosed(trials)
    lrs = pd.to_numeric(judged[LR], errors="coerce")
    beyond = lrs >= pattern.lr if pattern.end == "top" else lrs <= pattern.lr
    seen = set(judged.loc[beyond, "diagnosis"].astype(str))
    return " or ".join(label for label in pattern.labels[::-1] if label in seen)


def _elsewhere(pattern: Pattern) -> str:
    """' (against 1 of the 9 with a lower lr)'; '' where the group is every trial."""
    if not pattern.rest:
        return ""
    side = "lower" if pattern.end == "top" else "higher"
    return f" (against {pattern.others} of the {pattern.rest} with a {side} lr)"


def rule_summary() -> str:
    """The diagnosis rule in one paragraph, with its thresholds."""
    d = diagnosis
    return (f"Each trial's training-loss curve (its step windows, about ten an epoch) gets "
            f"the first of these labels whose test it meets: diverged, a NaN or infinite "
            f"loss, or one above {d.DIVERGED_RATIO:g} times its first window; unstable (lr "
            f"too high), a climb above an earlier low by more than {d.UNSTABLE_RISE:.0%} of "
            f"the start (or {d.UNSTABLE_RISE_WHEN_FLAT:.0%} for a curve that makes no "
            f"progress), or a window-to-window wiggle above {d.UNSTABLE_JITTER:.0%}; slow (lr "
            f"too low), less than {d.SLOW_FIRST_EPOCH_DROP:.0%} below the start after the "
            f"first epoch, or falling less than {d.SLOW_DROP_PER_EPOCH:.0%} of it per epoch "
            f"over the first {d.SLOPE_EPOCHS} epochs; ok otherwise. Trials with fewer than "
            f"{d.MIN_WINDOWS} windows are not judged.")
