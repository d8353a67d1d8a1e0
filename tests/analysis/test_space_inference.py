"""Inferring a run's searched space from its trials' config/ columns, column by column."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipelines.analysis.space_inference import (
    domain_summary,
    infer_domain,
    infer_space,
    inferred_space_note,
)


@pytest.mark.parametrize("values,domain", [
    ([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2], {"type": "LogUniform", "low": 1e-4, "high": 2e-2}),
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.9], {"type": "Uniform", "low": 0.1, "high": 0.9}),
    ([-1.0, 0.5, 1.0, 2.0, 3.0, 99.0], {"type": "Uniform", "low": -1.0, "high": 99.0}),
    ([16, 32, 64, 128, 256, 2048], {"type": "IntUniform", "low": 16, "high": 2048, "log": True}),
    ([2.0, 3.0, 4.0, 5.0, 6.0, None, 7.0], {"type": "IntUniform", "low": 2, "high": 7,
                                            "log": False}),  # ints, NaN where one lacks it
    ([0.9, 0.99, 0.9, 0.99], {"type": "Choice", "options": [0.9, 0.99]}),  # few: a Choice
    ([4.0, None, 2.0, 4.0], {"type": "Choice", "options": [None, 2, 4]}),
    (["sgd", "adam", "sgd"], {"type": "Choice", "options": ["adam", "sgd"]}),
    ([True, False, True], {"type": "Choice", "options": [False, True]}),
    ([0.5, None], {"type": "Choice", "options": [None, 0.5]}),  # set in some trials only
    ([3, 3, 3], None),  # the same in every trial: not searched
    ([None, None], None),
    ([[1, 2], [3]], None),  # lists: no domain for them
])
def test_each_column_gets_the_domain_its_values_suggest(values: list[Any],
                                                        domain: dict | None) -> None:
    assert infer_domain(pd.Series(values)) == domain


def test_the_space_keeps_column_order_and_the_note_names_what_it_left_out() -> None:
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d", "e", "f"],
                           "config/opt": ["sgd", "adam"] * 3, "config/epochs": [4] * 6,
                           "config/lr": [1e-4, 1e-3, 1e-2, 1e-1, 5e-2, 5e-3]})
    space = infer_space(trials)
    assert list(space) == ["opt", "lr"]
    assert inferred_space_note(space, trials) == (
        "parameters inferred from trials.parquet's config/ columns: opt (choice of adam, "
        "sgd), lr (log 0.0001..0.1); left out (one value in every trial, or not a number, "
        "string or bool): epochs")
    assert domain_summary({"type": "IntUniform", "low": 1, "high": 512, "log": True}) \
        == "int log 1..512"
