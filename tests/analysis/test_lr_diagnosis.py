"""The learning-rate diagnosis of a run (pipelines.analysis.lr_diagnosis), its
figure and its report section, on runs whose curves have a known label."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from pipelines.analysis import figures as plots
from pipelines.analysis import lr_diagnosis as lrd
from pipelines.analysis.figures.loss_diagnosis import shown_trials
from pipelines.analysis.report import write_report
from pipelines.analysis.runs import load_run
from pipelines.records.diagnosis import DIAGNOSIS_COLUMNS
from pipelines.records.tables import STEP_COLUMNS
from tests.analysis.diagnosed_runs import kinds_over_lr, make_run, write_run
from tests.analysis.test_figures import MIXED, assert_png, check_self_contained
from tests.analysis.test_figures import make_run as make_run_without_steps

# 16 trials over lr 1e-4..10: too high at the top, slow at the bottom, ok between
CLEAR = ["slow"] * 4 + ["ok"] * 6 + ["unstable", "ok", "unstable", "diverged", "unstable",
                                     "diverged"]


def labelled(labels: Sequence[str | None], lrs: Sequence[float] | np.ndarray | None = None
             ) -> pd.DataFrame:
    """A trials table of these labels, lrs log-spaced 1e-4..10 unless given."""
    lrs = np.geomspace(1e-4, 10, len(labels)) if lrs is None else lrs
    return pd.DataFrame({"trial_id": [f"t{i:02d}" for i in range(len(labels))],
                         "diagnosis": pd.array(labels, dtype="string"),
                         "config/lr": np.asarray(lrs, dtype=float)})


def test_advice_names_a_clear_pattern_at_each_end():
    trials = labelled(CLEAR)
    lrs = trials["config/lr"]
    assert lrd.advice(trials) == [
        f"5 of 6 trials with lr >= {lrs[10]:.3g} were unstable or diverged (against 0 of "
        f"the 10 with a lower lr); the top of the lr domain can come down.",
        f"All 4 trials with lr <= {lrs[3]:.3g} were slow (against 0 of the 12 with a "
        f"higher lr); the bottom of the lr domain can come up.",
    ]
    top = lrd.lr_pattern(trials, lrd.TOO_HIGH, "top")
    assert top is not None and (top.trials, top.hits, top.rest, top.others) == (6, 5, 10, 0)


def test_a_lr_domain_too_high_everywhere_says_so():
    trials = labelled(["unstable"] * 5 + ["diverged"] * 3)
    assert lrd.advice(trials) == [
        "All 8 trials with lr >= 0.0001 were unstable or diverged; the top of the lr domain "
        "can come down."]


@pytest.mark.parametrize("labels", [
    ["ok"] * 10 + ["unstable"] * 3,  # too few at the top
    ["slow"] * 3 + ["ok"] * 10,  # too few at the bottom
    ["ok", "unstable"] * 8,  # labels spread over the whole range: not the lr's doing
    ["slow", "ok", "ok", "slow"] * 4,
    ["ok"] * 8 + ["unstable", "ok"] * 4,  # half of the top: not clear
    ["ok"] * 16,
    [None] * 16,  # nothing judged
    ["unstable", "slow", "ok"],  # three trials: nothing is clear
])
def test_advice_stays_silent_without_a_clear_pattern(labels):
    assert lrd.advice(labelled(labels)) == []


def test_advice_needs_an_lr():
    trials = labelled(CLEAR).drop(columns="config/lr")
    assert lrd.advice(trials) == [] and lrd.label_table(trials).empty
    tied = labelled(["unstable"] * 4 + ["ok"] * 12, lrs=[0.1] * 16)  # one lr: no end to name
    assert lrd.advice(tied) == []


def test_label_table_counts_labels_by_lr_bin_and_by_batch_size(tmp_path):
    run = make_run(tmp_path / "run", kinds_over_lr(["slow", "slow", "ok", "ok", "ok",
                                                   "ok", "unstable", "diverged"]))
    by_lr = lrd.label_table(run.trials, "lr")
    assert list(by_lr.columns) == ["lr", "diverged", "unstable", "slow", "ok", "trials"]
    assert len(by_lr) == lrd.LR_BINS and by_lr["trials"].sum() == 8
    assert by_lr.iloc[0].to_dict() == {"lr": "0.0001-0.001", "diverged": 0, "unstable": 0,
                                       "slow": 2, "ok": 0, "trials": 2}
    assert by_lr.iloc[-1][["unstable", "diverged"]].tolist() == [1, 1]
    by_batch = lrd.label_table(run.trials, "batch_size")
    assert by_batch["batch_size"].tolist() == ["128", "256"]
    assert by_batch["trials"].tolist() == [4, 4]
    assert lrd.label_counts(run.trials) == {"diverged": 1, "unstable": 1, "slow": 2, "ok": 4}


def test_steps_load_with_the_run_and_are_empty_without_the_file(tmp_path):
    records = kinds_over_lr(["slow", "ok", "diverged"])
    run = load_run(write_run(tmp_path / "with", records))
    assert set(run.steps["trial_id"]) == {"t00", "t01", "t02"}
    assert dict(run.steps.dtypes.astype(str)) == STEP_COLUMNS
    assert run.trials.set_index("trial_id")["diagnosis"].to_dict() == {
        "t00": "slow", "t01": "ok", "t02": "diverged"}
    old = load_run(write_run(tmp_path / "without", records, steps=False))
    assert old.steps.empty and list(old.steps.columns) == list(STEP_COLUMNS)


def test_report_shows_the_diagnosis_section_with_figure_tables_and_advice(tmp_path):
    run = make_run(tmp_path / "run", kinds_over_lr(
        ["slow"] * 4 + ["ok"] * 6 + ["unstable", "diverged", "unstable", "diverged"]))
    report = write_report([run], tmp_path / "report")
    text = check_self_contained(report)
    section = html.unescape(text[text.index("<h2>Learning-rate diagnosis</h2>"):
                                 text.index("<h2>Figures</h2>")])
    assert 'src="loss_diagnosis.png"' in section
    assert_png(tmp_path / "report" / "loss_diagnosis.png")
    for sentence in lrd.advice(run.trials):
        assert f"<li>{sentence}</li>" in section
    assert "the top of the lr domain can come down" in section
    assert "the bottom of the lr domain can come up" in section
    assert "Labels by lr (per 256 examples)" in section and "Labels by batch size" in section
    assert "Trials: diverged 2, unstable 2, slow 4, ok 6." in section


def test_report_says_when_no_pattern_is_clear(tmp_path):
    run = make_run(tmp_path / "run", kinds_over_lr(["ok", "slow", "ok"]))
    text = html.unescape(write_report([run], tmp_path / "report").read_text())
    assert "Learning-rate diagnosis" in text and "No clear pattern" in text
    assert "Labels by batch size" in text  # 128 and 256


def test_no_steps_no_diagnosis_section(tmp_path):
    records = kinds_over_lr(["ok", "slow", "unstable"])
    where = write_run(tmp_path / "old", records, steps=False)
    trials = pd.read_parquet(f"{where}/trials.parquet")  # as a run from before the diagnosis
    trials.drop(columns=list(DIAGNOSIS_COLUMNS)).to_parquet(f"{where}/trials.parquet")
    old = load_run(where)
    assert old.trials["diagnosis"].isna().all() and not lrd.has_diagnosis(old.trials)
    for run in (old, make_run_without_steps(tmp_path, MIXED)):  # trials that recorded none
        out = tmp_path / f"report_{run.name}"
        text = write_report([run], out).read_text()
        assert "Learning-rate diagnosis" not in text and "loss_diagnosis" not in text
        assert not (out / "loss_diagnosis.png").exists()


@pytest.mark.parametrize("kinds", [["ok"], ["diverged"], ["slow", "ok", "unstable", "diverged"]])
def test_the_figure_draws_every_kind(tmp_path, kinds):
    run = make_run(tmp_path / "run", kinds_over_lr(kinds))
    assert_png(plots.plot_loss_diagnosis(run.trials, run.steps, run.meta, tmp_path / "d.png"))
    empty = run.steps.iloc[:0]
    assert_png(plots.plot_loss_diagnosis(run.trials, empty, run.meta, tmp_path / "e.png"))


def test_the_figure_of_10000_trials_draws_a_bounded_sample(tmp_path):
    n, windows = 10_000, 20
    rng = np.random.default_rng(0)
    trials = labelled(list(rng.choice(["diverged", "unstable", "slow", "ok"], n)),
                      lrs=10 ** rng.uniform(-4, 1, n))
    ids = np.repeat(trials["trial_id"].to_numpy(), windows)
    step = np.tile(np.arange(1, windows + 1) * 5, n)
    steps = pd.DataFrame({"trial_id": ids, "epoch": (step - 1) // 50 + 1, "step": step,
                          "train_loss": 2.3 * np.exp(-step / 100) + rng.uniform(0, 0.1, len(ids)),
                          "lr": 0.1}).astype(STEP_COLUMNS)
    shown = shown_trials(trials)
    assert all(len(v) == plots.MAX_CURVES_PER_LABEL for v in shown.values())
    lrs = trials.set_index("trial_id")["config/lr"]
    ok = trials[trials["diagnosis"] == "ok"]["config/lr"]
    assert lrs[shown["ok"][0]] == ok.min() and lrs[shown["ok"][-1]] == ok.max()  # spread
    start = time.perf_counter()
    assert_png(plots.plot_loss_diagnosis(trials, steps, {"sweep": "big"}, tmp_path / "big.png"))
    assert time.perf_counter() - start < 15  # ~1-2 s: drawing 80 curves, not 10,000
