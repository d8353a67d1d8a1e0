"""callback_telemetry: with Ray's usage statistics off, a run does not import the
tracker integrations (mlflow, wandb) that Tune's callback tag would load, and with
them on, Tune's own tag is kept. The run is a user's own loop on scikit-learn's
digits, from a sweep file outside this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ray.air._internal import usage as air_usage

from pipelines.tuning.callback_telemetry import skipped_when_usage_stats_off
from tests.conftest import REPO
from tests.user_sweeps import write_function_sweep

RUN_AND_LIST_MODULES = """
import json, sys
from pipelines.run import main
code = main([sys.argv[1], "--quick", "--algo", "random", "--num-samples", "1",
             "--max-epochs", "1", "--storage", sys.argv[2], "--name", "run"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("enabled", ["0", "1"])
def test_the_tag_is_skipped_only_while_usage_stats_are_off(monkeypatch, enabled):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", enabled)
    original = air_usage.tag_callbacks
    with skipped_when_usage_stats_off() as skipped:
        assert skipped == (enabled == "0")
        assert (air_usage.tag_callbacks is original) == (enabled == "1")
    assert air_usage.tag_callbacks is original


@pytest.mark.integration
def test_a_run_without_trackers_imports_none_of_them(tmp_path):
    sweep_file = write_function_sweep(tmp_path / "my_project")
    assert not sweep_file.is_relative_to(REPO)
    out = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, str(sweep_file), str(tmp_path / "res")],
        cwd=sweep_file.parent, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert (tmp_path / "res" / "digits_loop" / "run" / "trials.parquet").is_file()
    modules = set(result["modules"])
    assert "ray.tune" in modules  # Tune ran in this process
    assert not modules & {"mlflow", "wandb", "ray.air.integrations.mlflow",
                          "ray.air.integrations.wandb"}, sorted(modules & {"mlflow", "wandb"})
