"""What `--resume` checks before it touches a run: that the directory is a
run this version can continue, that the run is unfinished, that no driver
is still running it, and that Tune saved a state to continue from."""

from __future__ import annotations

import socket
from pathlib import Path

import pyarrow.fs as pafs

from pipelines.errors import UsageError
from pipelines.records.run_record import read_run_json
from pipelines.records.storage import Location, first_line

TUNE_DIR = "tune"  # Ray Tune's experiment directory inside a run directory
TUNE_STATE_PREFIX = "experiment_state-"  # Tune's snapshot files: experiment_state-<time>.json


def read_run_metadata(run_dir: Location) -> dict:
    """run.json of a run that --resume can continue; a UsageError otherwise."""
    metadata = read_run_json(run_dir)
    if not isinstance(metadata.get("options"), dict) or "status" not in metadata:
        raise UsageError(f"{run_dir / 'run.json'} has no run options to resume from (written "
                         f"by a raysweep without --resume, or edited); start a new run")
    return metadata


def stored_options(metadata: dict, known: set[str], run_dir: Location) -> dict:
    """The options a run was started with; a UsageError if this version does not
    know them all."""
    options = metadata["options"]
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"{run_dir}/run.json has options this raysweep does not know "
                         f"({', '.join(unknown)}); resume it with the version that started it")
    return options


def check_no_live_driver(metadata: dict, run_dir: Location) -> None:
    """A UsageError if run.json's driver (pipelines.records.run_record.driver_record)
    is still running the run on this machine."""
    driver = metadata.get("driver") or {}
    if metadata["status"] != "running" or driver.get("host") != socket.gethostname():
        return  # another host's driver cannot be checked; its run.json says "running"
    pid = driver.get("pid")
    if isinstance(pid, int) and _is_our_driver(pid):
        raise UsageError(f"{run_dir} is still being run by process {pid} on this machine; "
                         f"stop it (Ctrl-C) or wait for it before --resume")


def _is_our_driver(pid: int) -> bool:
    """Alive and a pipelines.run process: a pid reused after a reboot is not ours."""
    try:
        return b"pipelines" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def has_tune_state(run_dir: Location) -> bool:
    """Whether Tune saved a state to continue from (it does at its first step); a
    UsageError if the storage cannot be listed (that is not "no state")."""
    tune_dir = run_dir / TUNE_DIR
    try:
        names = [Path(i.path).name for i in tune_dir.fs.get_file_info(
            pafs.FileSelector(tune_dir.path, allow_not_found=True))]
    except OSError as e:
        raise UsageError(f"cannot list {tune_dir} ({first_line(e)})") from None
    return "tuner.pkl" in names and any(n.startswith(TUNE_STATE_PREFIX) for n in names)


def check_tune_state(run_dir: Location) -> None:
    """A driver stopped before the first trial started leaves nothing to resume
    (and Tune would silently start an empty trial)."""
    if not has_tune_state(run_dir):
        raise UsageError(f"{run_dir} has no saved Ray Tune state (its driver stopped before "
                         f"the first trial started); start a new run instead")


def storage_root(run_dir: Location) -> str:
    """The --storage a run directory <storage>/<sweep>/<run> was created under."""
    if run_dir.is_local:
        return str(Path(run_dir.path).parent.parent)
    base, sep, query = run_dir.uri.partition("?")
    return base.rstrip("/").rsplit("/", 2)[0] + sep + query
