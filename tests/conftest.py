"""Shared fixtures: real CIFAR-10 from the data directory (RAYSWEEP_DATA_DIR,
default ../shared/data), decoded once into a per-session cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.data.cache import DATA_DIR_ENV
from pipelines.data.cifar10 import (
    OFFLINE_ENV,
    CachedSplit,
    DataSpec,
    TrainValData,
    ensure_cache,
    open_split,
)

REPO = Path(__file__).resolve().parents[1]
# Tests talk to loopback only: no dataset downloads, no Ray usage statistics.
os.environ[OFFLINE_ENV] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def cifar_cache() -> tuple[CachedSplit, str]:
    if not any(data_dir().rglob("train-*.parquet")):
        pytest.fail(f"CIFAR-10 not found under {data_dir()}; set {DATA_DIR_ENV}")
    return ensure_cache(data_dir())


@pytest.fixture(scope="session")
def tiny_data(cifar_cache: tuple[CachedSplit, str]) -> TrainValData:
    """500 training and 200 validation images of real CIFAR-10."""
    cache, source = cifar_cache
    return open_split(DataSpec(cache, 500, 200, 0, source))
