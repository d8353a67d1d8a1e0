"""A run's record: where it is stored (local paths and s3:// / gs:// URIs, atomic
writes), the Parquet schema of its tables, and its run directory and run.json
(with the run's status)."""

from pipelines.records.run_record import RunStatus, create_run_dir, read_run_json, run_status
from pipelines.records.storage import Location, check_writable, default_storage, resolve
from pipelines.records.tables import (
    CONFIG_PREFIX,
    STOP_REASONS,
    TrialRecord,
    epochs_frame,
    read_parquet,
    trials_frame,
    write_parquet,
)

__all__ = [
    "CONFIG_PREFIX", "STOP_REASONS", "Location", "RunStatus", "TrialRecord", "check_writable",
    "create_run_dir", "default_storage", "epochs_frame", "read_parquet", "read_run_json",
    "resolve", "run_status", "trials_frame", "write_parquet",
]
