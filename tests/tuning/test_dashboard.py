"""A run's Optuna study in its journal, watched through the real optuna-dashboard
server on loopback while the run goes and after it finished: the server's API
shows the trials and the best value trials.parquet has. The sweep is a user's own
file outside this repository, training on scikit-learn's digits (not CIFAR-10);
--algo optuna keeps the searcher's own study, --algo random a mirror of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from pipelines.tuning.study_journal import JOURNAL_FILE
from tests.processes import free_port, run_to_completion, start, stop, wait_for
from tests.user_sweeps import write_function_sweep

pytestmark = pytest.mark.integration

STATES = {"completed": "Complete", "early_stopped": "Pruned", "no_improvement": "Pruned",
          "error": "Fail", "diverged": "Fail", "infeasible": "Fail"}


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


class Dashboard:
    """The real optuna-dashboard server on 127.0.0.1, on one journal file."""

    def __init__(self, journal: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("optuna-dashboard")
        self.process = start([str(exe), str(journal), "--host", "127.0.0.1",
                              "--port", str(self.port)], _env(), log)
        wait_for(self._up, 60, f"optuna-dashboard on {self.url} ({log})")

    def _up(self) -> bool:
        try:
            _get(self.url + "/api/studies")
            return True
        except OSError:
            return False

    def study(self) -> dict:
        """The one study's detail (its trials), as the dashboard serves it."""
        studies = _get(self.url + "/api/studies")["study_summaries"]
        assert len(studies) == 1, studies
        return _get(f"{self.url}/api/studies/{studies[0]['study_id']}")

    def stop(self) -> None:
        stop(self.process)


def _by_trial(detail: dict) -> dict[str, dict]:
    trials = {}
    for t in detail["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        trials[attrs["trial_id"]] = t
    assert len(trials) == len(detail["trials"]), "a trial is in the study twice"
    return trials


def _check_matches(detail: dict, run_dir: Path, metric: str, *, pruned: bool) -> None:
    """The dashboard's trials are trials.parquet's: the same ids, states and best value."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    shown = _by_trial(detail)
    assert set(shown) == set(trials["trial_id"])
    for trial_id, reason, best in zip(trials["trial_id"], trials["stop_reason"],
                                      trials[f"best_{metric}"]):
        t = shown[str(trial_id)]
        want = STATES[str(reason)] if pruned else "Complete"
        assert t["state"] == want, (trial_id, reason, t["state"])
        assert float(t["values"][0]) == pytest.approx(best)
    best = float(detail["best_trials"][0]["values"][0])
    ranked = trials if not pruned else trials[trials["stop_reason"] == "completed"]
    assert best == pytest.approx(ranked[f"best_{metric}"].min())


def _screenshot(url: str, out: Path) -> None:
    """The dashboard's page in headless Chromium, where Chromium is installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--virtual-time-budget=8000", "--window-size=1400,900",
                    f"--screenshot={out}", url], timeout=90, capture_output=True)
    assert out.is_file() and out.stat().st_size > 10_000, "Chromium took no screenshot"


def test_dashboard_shows_a_running_optuna_sweep_live_and_its_end(tmp_path):
    sweep = write_function_sweep(tmp_path / "elsewhere", sleep_s=0.4)
    run_dir = tmp_path / "results" / "digits_loop" / "live"
    driver = start([sys.executable, "-m", "pipelines.run", str(sweep), "--quick",
                    "--algo", "optuna", "--storage", str(tmp_path / "results"),
                    "--name", "live"], _env(), tmp_path / "driver.log")
    dashboard = None
    try:
        wait_for(lambda: (run_dir / JOURNAL_FILE).is_file() or driver.poll() is not None,
                 120, "the run's journal")
        dashboard = Dashboard(run_dir / JOURNAL_FILE, tmp_path / "dashboard.log")
        live = wait_for(lambda: [t for t in dashboard.study()["trials"]
                                 if t["state"] == "Complete"] or driver.poll() is not None,
                        120, "a finished trial on the dashboard")
        # seen while the run still goes: a trial finished, and not all of them
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-2000:]
        assert isinstance(live, list) and 1 <= len(live) < 6
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
        detail = dashboard.study()
        _check_matches(detail, run_dir, "val_nll", pruned=False)
        _screenshot(dashboard.url + "/dashboard", tmp_path / "dashboard.png")
    finally:
        if dashboard is not None:
            dashboard.stop()
        stop(driver)


def test_dashboard_shows_a_random_search_mirrored_with_stopped_trials_pruned(tmp_path):
    sweep = write_function_sweep(tmp_path / "elsewhere")
    run_to_completion([sys.executable, "-m", "pipelines.run", str(sweep), "--quick",
                       "--algo", "random", "--storage", str(tmp_path / "results"),
                       "--name", "done"], _env(), tmp_path / "driver.log")
    run_dir = tmp_path / "results" / "digits_loop" / "done"
    dashboard = Dashboard(run_dir / JOURNAL_FILE, tmp_path / "dashboard.log")
    try:
        detail = dashboard.study()
        _check_matches(detail, run_dir, "val_nll", pruned=True)
        steps = pd.read_parquet(run_dir / "epochs.parquet")
        for trial_id, t in _by_trial(detail).items():  # each epoch's score
            mine = steps[steps["trial_id"] == trial_id]
            assert [v["value"] for v in t["intermediate_values"]] == \
                pytest.approx(mine.sort_values("epoch")["val_nll"].tolist())
    finally:
        dashboard.stop()
