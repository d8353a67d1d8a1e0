"""The run directory and its `run.json`: where a run's results go, and what
produced them (sweep, algorithm, space, command line, versions, commit, times)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pipelines.errors import UsageError

PACKAGES = ("ray", "torch", "torchvision", "optuna", "hyperopt", "pyarrow", "pandas", "numpy")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_storage_writable(storage: Path) -> None:
    """Fail early, before anything is created, if results could not be written."""
    existing = storage
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--storage {storage}: {existing} is a file, not a directory; "
                         f"choose another --storage")
    try:  # a real write: permission bits do not tell for root or read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"--storage {storage}: {existing} is not writable ({e.strerror}); "
                         f"choose a writable --storage directory") from None


def create_run_dir(storage: Path, sweep: str, name: str | None, algo: str) -> Path:
    """A new directory `<storage>/<sweep>/<name>`; an earlier run is never reused."""
    parent = storage / sweep
    parent.mkdir(parents=True, exist_ok=True)
    if name:
        run_dir = parent / name
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise UsageError(f"{run_dir} already exists and results are never overwritten; "
                             f"choose another --name") from None
        return run_dir
    stamp = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{algo}"
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        try:
            (parent / (stamp + suffix)).mkdir()
            return parent / (stamp + suffix)
        except FileExistsError:
            continue
    raise UsageError(f"could not create a new run directory under {parent}; pass --name")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> list[str]:
    return [sys.executable, *sys.argv]
