"""The run directory and its `run.json`: where a run's results go, what
produced them (sweep, algorithm, space, command line, versions, commit, times),
and the run's status ("running", then "finished", "interrupted" or "failed")."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from pipelines.errors import RunInterrupted, UsageError
from pipelines.records.storage import Location, first_line
from pipelines.records.tables import write_json

PACKAGES = ("ray", "torch", "torchvision", "optuna", "hyperopt", "pyarrow", "pandas", "numpy")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def driver_record() -> dict[str, Any]:
    """Who runs the run now; --resume reads it back (a live driver is not resumed)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class RunStatus:
    """What the body of `run_status` hands back: the final status it reached, and
    run.json's fields as they are now."""

    run_dir: Location
    metadata: dict[str, Any]
    status: str = "failed"  # until the body says otherwise: a crash leaves "failed"

    def update(self, **fields: Any) -> None:
        """Put `fields` into run.json now, mid-run (e.g. a staged run's stage results)."""
        self.metadata = {**self.metadata, **fields}
        write_json(self.metadata, self.run_dir / "run.json")


@contextmanager
def run_status(metadata: dict[str, Any], run_dir: Location, *,
               flush: Callable[[], None] | None = None) -> Iterator[RunStatus]:
    """run.json says "running" (and which driver runs it) while the body runs, then
    its end time and the status the body set; a Ctrl-C (KeyboardInterrupt or
    RunInterrupted) makes it "interrupted" and leaves as RunInterrupted(run_dir).
    `flush` writes the body's last results first, however the body ended."""
    record = RunStatus(run_dir, {**metadata, "status": "running", "end_time": None,
                                 "driver": driver_record()})
    write_json(record.metadata, run_dir / "run.json")
    try:
        yield record
    except (RunInterrupted, KeyboardInterrupt):
        record.status = "interrupted"
        raise RunInterrupted(run_dir) from None
    finally:
        try:
            if flush:
                flush()
        finally:  # run.json must not say "running" after this driver is gone
            write_json({**record.metadata, "end_time": now_iso(), "status": record.status},
                       run_dir / "run.json")


def check_new_run_dir(storage: Location, sweep: str, name: str | None) -> None:
    """A UsageError now, before any work, if `--name` names an existing run."""
    if name and (storage / sweep / name).exists():
        _taken(storage / sweep / name)


def _taken(run_dir: Location) -> None:
    raise UsageError(f"{run_dir} already exists and results are never overwritten; "
                     f"choose another --name")


def create_run_dir(storage: Location, sweep: str, name: str | None, algo: str) -> Location:
    """A new directory `<storage>/<sweep>/<name>`; an earlier run is never reused."""
    parent = storage / sweep
    parent.fs.create_dir(parent.path, recursive=True)
    if name:
        run_dir = parent / name
        if not run_dir.make_new_dir():  # also if another driver took the name since
            _taken(run_dir)
        return run_dir
    stamp = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{algo}"
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        if (parent / (stamp + suffix)).make_new_dir():
            return parent / (stamp + suffix)
    raise UsageError(f"could not create a new run directory under {parent}; pass --name")


def read_run_json(run_dir: Location) -> dict:
    """A run directory's run.json; a UsageError if `run_dir` is not a readable run."""
    where = run_dir / "run.json"
    try:
        if not where.is_file():
            raise UsageError(f"{run_dir} is not a results directory (no run.json); pass "
                             f"<storage>/<sweep>/<run>, as printed by the run")
        metadata = json.loads(where.read_bytes())
    except (OSError, ValueError) as e:  # unreachable storage, corrupt JSON
        raise UsageError(f"cannot read {where} ({first_line(e)}); check the path and "
                         f"credentials") from None
    if not isinstance(metadata, dict) or not {"metric", "mode"} <= set(metadata):
        raise UsageError(f"{where} is not a raysweep run record (no metric and mode)")
    return metadata


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
