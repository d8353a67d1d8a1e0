"""Shared fixtures: real CIFAR-10 from the data directory (RAYSWEEP_DATA_DIR,
default ../shared/data), decoded once into the per-machine cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.data.cache import DATA_DIR_ENV
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
