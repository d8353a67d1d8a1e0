"""A run's record: where it is stored (local paths and s3:// / gs:// URIs, atomic
writes), the Parquet schema of its tables, and its run directory and run.json
(with the run's status)."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.records.diagnosis import DIAGNOSIS_COLUMNS, LABELS, diagnose
    from pipelines.records.result_log import STEPS_FILE, ResultLog, Written
    from pipelines.records.run_record import (
        RunStatus,
        check_new_run_dir,
        command_line,
        create_run_dir,
        git_commit,
        now_iso,
        package_versions,
        read_run_json,
        run_status,
    )
    from pipelines.records.storage import (
        DEFAULT_STORAGE,
        STORAGE_ENV,
        Location,
        check_writable,
        default_storage,
        first_line,
        resolve,
    )
    from pipelines.records.tables import (
        CHECKPOINT_RANK_KEY,
        CONFIG_PREFIX,
        COST_COLUMNS,
        INFEASIBLE_KEY,
        LR_CURVE_COLUMNS,
        NO_IMPROVEMENT_KEY,
        NOT_EPOCH_METRICS,
        START_CONSTRAINTS,
        STEP_COLUMNS,
        STEPS_KEY,
        STOP_REASONS,
        TUNE_RESULT_KEYS,
        TrialRecord,
        epochs_frame,
        objective_column,
        read_parquet,
        steps_frame,
        trials_frame,
        violations,
        write_parquet,
    )

__all__ = [
    "CHECKPOINT_RANK_KEY", "DIAGNOSIS_COLUMNS", "LABELS", "NO_IMPROVEMENT_KEY", "NOT_EPOCH_METRICS",
    "STEPS_FILE",
    "STEPS_KEY", "STEP_COLUMNS", "diagnose", "steps_frame",
    "DEFAULT_STORAGE", "LR_CURVE_COLUMNS", "STORAGE_ENV", "command_line", "first_line",
    "git_commit", "now_iso", "package_versions",
    "CONFIG_PREFIX", "COST_COLUMNS", "INFEASIBLE_KEY", "START_CONSTRAINTS", "STOP_REASONS",
    "TUNE_RESULT_KEYS", "objective_column", "violations",
    "Location", "ResultLog", "RunStatus", "TrialRecord", "Written", "check_new_run_dir",
    "check_writable",
    "create_run_dir", "default_storage", "epochs_frame", "read_parquet", "read_run_json",
    "resolve", "run_status", "trials_frame", "write_parquet",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
