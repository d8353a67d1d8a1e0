"""Shared fixtures: real CIFAR-10 from the data directory (RAYSWEEP_DATA_DIR,
default ../shared/data), decoded once into the per-machine cache."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.data.cache import CACHE_DIR_ENV, DATA_DIR_ENV
from pipelines.data.cifar10 import OFFLINE_ENV
from pipelines.data.images import DataSpec, TrainValData, open_split, prepare

REPO = Path(__file__).resolve().parents[1]
# Tests talk to loopback only: no dataset downloads, no Ray usage statistics.
os.environ[OFFLINE_ENV] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def cifar_cache() -> DataSpec:
    """CIFAR-10's training pool, decoded (once per machine): every image, 10% held out."""
    if not any(data_dir().rglob("train-*.parquet")):
        pytest.fail(f"CIFAR-10 not found under {data_dir()}; set {DATA_DIR_ENV}")
    return prepare(str(data_dir()), None, None, None, 0)


@pytest.fixture(scope="session")
def tiny_data(cifar_cache: DataSpec) -> TrainValData:
    """500 training and 200 validation images of real CIFAR-10."""
    return open_split(prepare(str(data_dir()), None, 500, 200, 0))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One Ray for a module's in-process runs, which join it instead of starting
    their own ("local": a Ray of its own, whatever else runs on this machine), on
    loopback as a run's own Ray is."""
    import ray

    from pipelines.tuning.ray_session import loopback_node

    with loopback_node():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@dataclass(frozen=True)
class CliSweep:
    """A finished CLI sweep: the process (its exit code, stdout and stderr), its
    --storage, the run directory its last line names, its data cache, and what that
    cache held right after the sweep (before any test read more data through it)."""

    out: subprocess.CompletedProcess
    storage: Path
    run_dir: Path
    cache: Path
    decoded: tuple[str, ...]


@pytest.fixture(scope="session")
def cli_sweep(tmp_path_factory) -> CliSweep:
    """One real quick sweep, run as a user runs it: `python -m pipelines.run cifar_sweep
    --quick ...` in a process of its own, on real CIFAR-10, the run named by the CLI
    (no --name), with a data cache of its own (to see which splits it decoded). A
    sweep costs ~30 s, so the tests that only read one share this one: test_cli's
    end-to-end checks of the process's output, test_analyze's of the analysis CLI
    and --final (which add report.html and final.parquet to it, nothing else)."""
    storage, cache = tmp_path_factory.mktemp("cli_sweep"), tmp_path_factory.mktemp("cache")
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "cifar_sweep", "--quick", "--algo", "random",
         "--num-samples", "6", "--max-epochs", "3", "--grace-period", "1", "--train-size",
         "1000", "--val-size", "300", "--storage", str(storage), "--data-dir", str(data_dir())],
        cwd=REPO, env={**os.environ, CACHE_DIR_ENV: str(cache)}, capture_output=True,
        text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("results: "), out.stdout[-3000:]
    run_dir = Path(last.removeprefix("results: "))
    return CliSweep(out, storage, run_dir, cache, tuple(sorted(p.name for p in cache.iterdir())))
