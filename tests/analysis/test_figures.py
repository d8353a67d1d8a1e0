"""Figures and the HTML report, on runs built in memory in the real Parquet
schema (pipelines.records.tables): no Ray, no run directory on disk."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipelines.analysis import figures as plots
from pipelines.analysis.curves import best_so_far
from pipelines.analysis.ranking import leaderboard
from pipelines.analysis.report import REPORT_NAME, write_report
from pipelines.analysis.runs import Run
from pipelines.records.storage import resolve
from pipelines.records.tables import TrialRecord, epochs_frame, trial_columns, trials_frame
from tests.records.digits_runs import SPACE as DIGITS_SPACE
from tests.records.digits_runs import user_records

REPO = Path(__file__).resolve().parents[2]
SPACE = {
    "lr": {"type": "LogUniform", "low": 1e-3, "high": 1.0},
    "batch_size": {"type": "Choice", "options": [64, 128, 256]},
    "optimizer": {"type": "Choice", "options": ["sgd", "adam", "adamw"]},
    "dropout": {"type": "Uniform", "low": 0.0, "high": 0.5},
    "crop_padding": {"type": "IntUniform", "low": 0, "high": 4, "log": False},
}
MAX_EPOCHS = 4


def _meta(space=SPACE, metric="val_acc", mode="max", scheduler="asha") -> dict:
    return {"sweep": "toy_sweep", "algorithm": "optuna", "scheduler": scheduler,
            "metric": metric, "mode": mode, "space": space, "status": "running",
            "budget": {"num_samples": 8, "max_epochs": MAX_EPOCHS, "grace_period": 1,
                       "reduction_factor": 2},
            "fixed": {"model": "simple_cnn"}, "start_time": "2026-11-29T10:00:00+00:00",
            "end_time": None}


def _record(i: int, kind: str, space=SPACE) -> TrialRecord:
    """A trial of the given kind: completed, early_stopped, diverged, error, running."""
    lr = 10 ** (-3 + 0.4 * i)
    config = {"lr": lr, "batch_size": (64, 128, 256)[i % 3],
              "optimizer": ("sgd", "adam", "adamw")[i % 3], "dropout": 0.05 * i,
              "crop_padding": i % 5, "model": "simple_cnn"}
    config = {k: v for k, v in config.items() if k in space or k == "model"}
    record = TrialRecord(f"t{i:02d}", config, started=1000.0 + i)
    n_epochs = {"completed": MAX_EPOCHS, "early_stopped": 1, "diverged": 2, "error": 0,
                "running": 2}[kind]
    for epoch in range(1, n_epochs + 1):
        blown = kind == "diverged" and epoch == n_epochs
        record.add_epoch({
            "epoch": epoch, "val_acc": 0.2 + 0.05 * epoch + 0.01 * i,
            "train_loss": math.nan if blown else 2.0 / epoch,
            "val_loss": 3e7 if blown else 2.2 / epoch + 0.01 * i,
            "lr": 0.1 * (lr if "lr" in config else 0.1) * (MAX_EPOCHS + 1 - epoch),
            "epoch_s": 2.0,
            "images_per_s": 1000.0, "diverged": blown,
        })
    record.error = kind == "error"
    if kind != "running":
        record.ended, record.status = 1100.0 + i, "ERROR" if kind == "error" else "TERMINATED"
    return record


def make_run(tmp_path: Path, kinds: list[str], name: str = "toy", **meta_kw) -> Run:
    meta = _meta(**meta_kw)
    records = [_record(i, kind, meta["space"]) for i, kind in enumerate(kinds)]
    trials = trials_frame(records, metric=meta["metric"], mode=meta["mode"],
                          max_epochs=MAX_EPOCHS, now=2000.0)
    return Run(resolve(str(tmp_path / name)), trials, epochs_frame(records), meta)


def user_run(tmp_path: Path, n: int = 12) -> Run:
    """A run of a user's own trainer minimising val_rmse, as pipelines.run records it."""
    records = user_records(n=n)
    meta = {**_meta(space=DIGITS_SPACE, metric="val_rmse", mode="min", scheduler="none"),
            "sweep": "digits_regression", "task": "function", "fixed": {}}
    trials = trials_frame(records, metric="val_rmse", mode="min", max_epochs=MAX_EPOCHS,
                          now=2000.0)
    return Run(resolve(str(tmp_path / "digits")), trials,
               epochs_frame(records, metrics=("val_rmse",)), meta)


def empty_run(tmp_path: Path) -> Run:
    """As pipelines.analysis.load_run returns a run before any trial reported."""
    trials = pd.DataFrame(columns=list(trial_columns("val_acc")))
    return Run(resolve(str(tmp_path / "empty")), trials, epochs_frame([]), _meta())


MIXED = ["completed", "early_stopped", "completed", "diverged", "error", "running",
         "early_stopped", "completed"]
CASES = {
    "mixed": lambda p: make_run(p, MIXED),
    "single_trial": lambda p: make_run(p, ["completed"]),
    "in_progress": lambda p: make_run(p, ["running", "running"]),
    "error_only": lambda p: make_run(p, ["error"]),
    "one_parameter": lambda p: make_run(p, MIXED, space={"lr": SPACE["lr"]}),
    "loss_metric": lambda p: make_run(p, MIXED, metric="val_loss", mode="min",
                                      scheduler="hyperband"),
    "no_epochs": empty_run,
    "users_own_metric": user_run,
}
IMPORTANCES = {"fanova": pd.Series({"lr": 0.7, "dropout": 0.2, "batch_size": 0.1}),
               "ped_anova": pd.Series({"dropout": 0.5, "lr": 0.5})}


def draw_all(run: Run, out: Path) -> list[Path]:
    t, e, meta = run.trials, run.epochs, run.meta
    return [
        plots.plot_learning_curves(t, e, meta, out / "lc.png"),
        plots.plot_metric_vs_params(t, meta, out / "scatter.png"),
        plots.plot_parallel_coordinates(t, meta, out / "parallel.png"),
        plots.plot_importances(IMPORTANCES, run.metric, out / "importance.png"),
        plots.plot_importances({"fanova": pd.Series(dtype=float)}, run.metric,
                               out / "no_importance.png"),
        plots.plot_lr_schedule(t, e, meta, out / "lr.png"),
        plots.plot_best_so_far(best_so_far(t, e, run.metric, run.mode), run.metric,
                               out / "best.png"),
    ]


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200, (path, image.size)


@pytest.mark.parametrize("case", list(CASES))
def test_every_figure_is_a_png(tmp_path, case):
    run = CASES[case](tmp_path)
    paths = draw_all(run, tmp_path)
    for path in paths:
        assert_png(path)
    # atomic writes leave no temp files behind
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_best_so_far_of_several_runs(tmp_path):
    runs = [make_run(tmp_path, MIXED, name="a"), make_run(tmp_path, ["completed"], name="b")]
    trials = pd.concat([r.trials.assign(run=r.name) for r in runs], ignore_index=True)
    epochs = pd.concat([r.epochs.assign(run=r.name) for r in runs], ignore_index=True)
    curves = best_so_far(trials, epochs, "val_acc", "max")
    assert_png(plots.plot_best_so_far(curves, "val_acc", tmp_path / "best.png"))


@pytest.mark.parametrize("scheduler, budget, rungs", [
    ("asha", (1, 2, 8), [1, 2, 4]),
    ("asha", (3, 3, 30), [3, 9, 27]),
    ("asha", (1, 2, 1), []),
    ("hyperband", (3, 3, 30), [1, 3, 9, 27]),  # Ray's HyperBand: max_t / rf^s, no grace
    ("median", (1, 2, 8), []),
    ("none", (1, 2, 8), []),
])
def test_rung_epochs(scheduler, budget, rungs):
    grace, rf, max_epochs = budget
    meta = {"scheduler": scheduler, "budget": {"grace_period": grace, "reduction_factor": rf,
                                               "max_epochs": max_epochs}}
    assert plots.rung_epochs(meta) == rungs


def test_best_trial_id_follows_the_mode(tmp_path):
    run = make_run(tmp_path, MIXED)
    assert plots.best_trial_id(run.trials, run.meta) == leaderboard(
        run.trials, "val_acc", "max", n=1)["trial_id"].iloc[0]
    assert plots.best_trial_id(empty_run(tmp_path).trials, _meta()) is None


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]


def check_self_contained(report: Path) -> str:
    text = report.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert parser.links, "the report shows no figures"
    for link in parser.links:
        assert "://" not in link and not link.startswith(("/", "\\")), link
        assert (report.parent / link).is_file(), link
    assert "script" not in parser.tags and "link" not in parser.tags
    assert not re.search(r"https?://", text)
    return text


@pytest.mark.parametrize("case", ["mixed", "in_progress", "no_epochs"])
def test_report_is_self_contained(tmp_path, case):
    run = CASES[case](tmp_path)
    final = {"test_acc": 0.61234, "test_loss": 1.1, "config": {"lr": 0.02, "optimizer": "adam"},
             "train_size": 50000, "epochs": 30}
    report = write_report([run], tmp_path / "report", importances=IMPORTANCES, final=final)
    text = check_self_contained(report)
    assert report.name == REPORT_NAME
    top = leaderboard(run.trials, run.metric, run.mode, n=1)
    if len(top):
        assert top["trial_id"].iloc[0] in text
    assert "Final test score" in text and "0.6123" in text
    assert "config/" not in text  # config columns lose their prefix


def test_report_compares_several_runs(tmp_path):
    runs = [make_run(tmp_path, MIXED, name="optuna"), make_run(tmp_path, ["completed"] * 2,
                                                               name="random")]
    text = check_self_contained(write_report(runs, tmp_path / "report"))
    assert "Runs compared" in text and ">random<" in text and ">optuna<" in text
    assert 'src="best_so_far.png"' in text and "importance.png" not in text


def test_report_escapes_what_it_shows(tmp_path):
    run = make_run(tmp_path, ["completed"], name="<b>run</b>")
    run.meta["sweep"] = "<script>x</script>"
    text = write_report([run], tmp_path / "report").read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_drawing_touches_no_global_matplotlib_state(tmp_path):
    # reading rcParams["backend"] would itself resolve a backend through pyplot
    code = f"""
import sys, matplotlib
settings = lambda: {{k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}}
before = settings()
import pandas as pd, pipelines.analysis.figures, pipelines.analysis.report
pipelines.analysis.figures.plot_importances({{"fanova": pd.Series({{"lr": 1.0}})}}, "val_acc",
                                 {str(tmp_path / "x.png")!r})
assert "matplotlib.pyplot" not in sys.modules
assert matplotlib.rcParams._get_backend_or_none() is None and settings() == before
"""
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_a_report_of_a_minimised_users_metric(tmp_path):
    run = user_run(tmp_path)
    text = check_self_contained(write_report([run], tmp_path / "report"))
    assert "val_rmse (lower is better)" in text
    ranked = leaderboard(run.trials, "val_rmse", "min", n=10)["trial_id"].tolist()
    board = text[text.index("Leaderboard"):text.index("Best configuration")]
    assert [t for t in re.findall(r"<td>(u\d\d)</td>", board)] == ranked  # lowest first
    best = ranked[0]
    assert f"Trial {best}: best val_rmse" in text
    # no lr reported: no learning-rate figure; no built-in trainer: no lr-per-256 notes
    assert "lr_schedule.png" not in text and "per 256 examples" not in text
    assert "learning_curves.png" in text and "best_so_far.png" in text
