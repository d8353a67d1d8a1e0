"""The experiment trackers `--log NAME` attaches: Ray Tune's own logger callbacks
for TensorBoard, MLflow and Weights & Biases, each an optional extra of its own
name (`pip install -e ".[mlflow]"`). They run on the driver (W&B's in a logging
actor beside it, on the driver's node) and see what the recorder sees: each
trial's config as it starts, then every result, at step training_iteration (the
epoch). The Parquet files stay the run's record; a tracker is a view of it."""

from __future__ import annotations

import importlib.util
import netrc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence
from urllib.parse import urlparse

from ray import tune

from pipelines.errors import UsageError
from pipelines.records.storage import Location
from pipelines.tuning.resume_checks import TUNE_DIR

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["TRACKERS", "Tracker", "check_trackers", "mlflow_file_store", "tracker_callbacks"]

MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"  # the user's tracking server or database, if set
# MLflow 3 refuses a file store unless this says true ("maintenance mode"); MLflow 2
# does not know it. Set for the default store only, and only if the user has not.
MLFLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
RUN_DIR_TAG = "raysweep.run_dir"  # on each MLflow run: the run directory its trial is of
WANDB_MODE_ENV = "WANDB_MODE"  # online | offline | disabled; unset: online if logged in
WANDB_DIR_ENV = "WANDB_DIR"
WANDB_HOST = "https://api.wandb.ai"  # W&B's own, unless WANDB_BASE_URL names another


@dataclass(frozen=True)
class Tracker:
    """A tracker `--log` may name: what must import for it, how to install it, and
    the Ray Tune callback that feeds it (built on the driver, given the run
    directory and the experiment's name, the sweep's)."""

    name: str  # the --log name, and its extra in pyproject.toml
    title: str  # as its makers write it, in messages
    module: str  # the top-level module that must import
    package: str  # pip's name for it, outside a raysweep checkout
    build: Callable[[Location, str], tune.Callback]
    check: Callable[[Location], None] | None = None  # the storage it can log beside

    def check_installed(self) -> None:
        """A UsageError naming the install command if the tracker's package is missing
        (looked up, not imported: the plan stays fast)."""
        if importlib.util.find_spec(self.module) is None:
            raise UsageError(f"--log {self.name} needs {self.title}, which is not installed: "
                             f"pip install -e \".[{self.name}]\" in the raysweep checkout "
                             f"(or pip install {self.package})")


def check_trackers(names: Sequence[str], *, storage: Location | None = None) -> None:
    """Each name a known tracker whose package is installed, and that can log beside a
    run directory under `storage`; UsageError otherwise. A name given twice counts once."""
    for name in dict.fromkeys(names):
        if name not in TRACKERS:
            hint = "; repeat --log for each tracker" if "," in name else ""
            raise UsageError(f"unknown --log {name!r}; choose one of "
                             f"{', '.join(TRACKERS)}{hint}")
        tracker = TRACKERS[name]
        tracker.check_installed()
        if tracker.check and storage is not None:
            tracker.check(storage)


def tracker_callbacks(names: Sequence[str], run_dir: Location, experiment: str
                      ) -> list[tune.Callback]:
    """The callbacks that log the trials in `run_dir` to the trackers `names` (each
    once), under the experiment name `experiment`; one line each on stderr says where."""
    return [TRACKERS[name].build(run_dir, experiment) for name in dict.fromkeys(names)]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- TensorBoard ------------------------------------------------------------------------

def _tensorboard(run_dir: Location, experiment: str) -> tune.Callback:
    from ray.tune.logger import TBXLoggerCallback

    # Tune's automatic copy of this callback is off (experiment.py); this one writes
    # events.out.tfevents.* into each trial's directory, <run_dir>/tune/<trial_id>/
    _say(f"tensorboard: event files in each trial's directory; view them with "
         f"tensorboard --logdir {run_dir / TUNE_DIR}")
    return TBXLoggerCallback()


# -- MLflow -----------------------------------------------------------------------------

def mlflow_file_store(run_dir: Location) -> str:
    """The MLflow tracking URI a run logs to without MLFLOW_TRACKING_URI: a file store
    in its run directory, file:<run_dir>/mlruns."""
    return Path(run_dir.path, "mlruns").as_uri()


def _check_mlflow(storage: Location) -> None:
    if os.environ.get(MLFLOW_URI_ENV):
        return
    if not storage.is_local:
        raise UsageError(f"--log mlflow logs to a file store in the run directory, which "
                         f"cannot be on {storage.uri}; set {MLFLOW_URI_ENV} to a tracking "
                         f"server (or a database, e.g. sqlite:///$HOME/mlflow.db)")
    if os.environ.get(MLFLOW_FILE_STORE_ENV, "").strip().lower() in ("false", "0"):
        raise UsageError(f"--log mlflow logs to a file store in the run directory, and "
                         f"{MLFLOW_FILE_STORE_ENV}={os.environ[MLFLOW_FILE_STORE_ENV]} refuses "
                         f"it; set {MLFLOW_URI_ENV} (e.g. sqlite:///$HOME/mlflow.db) or unset "
                         f"{MLFLOW_FILE_STORE_ENV}")


def _mlflow(run_dir: Location, experiment: str) -> tune.Callback:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = os.environ.get(MLFLOW_URI_ENV)
    if uri:
        _say(f"mlflow: a run per trial in experiment {experiment!r} at {uri}")
    else:
        uri = mlflow_file_store(run_dir)
        os.environ.setdefault(MLFLOW_FILE_STORE_ENV, "true")
        _say(f"mlflow: a run per trial in experiment {experiment!r} in MLflow's file store "
             f"{uri} (in maintenance mode since MLflow 3; {MLFLOW_URI_ENV} sets a server or "
             f"database instead)")
    tracking_uri = uri

    class MLflowCallback(MLflowLoggerCallback):
        """Ray's, with a trial's run continued on --resume rather than begun again (Ray's
        keeps its trials' runs in memory only), and the driver's environment left as it
        was: MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI, which the driver's
        next experiment (a stage, the confirm phase) would take for the user's own.
        (Defined here: importing Ray's module imports MLflow.)"""

        def setup(self, *args: Any, **kwargs: Any) -> None:
            before = os.environ.get(MLFLOW_URI_ENV)
            try:
                super().setup(*args, **kwargs)
            finally:
                if before is None:
                    os.environ.pop(MLFLOW_URI_ENV, None)
                else:
                    os.environ[MLFLOW_URI_ENV] = before
            self.begun = _mlflow_runs(tracking_uri, str(self.mlflow_util.experiment_id),
                                      run_dir.uri)

        def log_trial_start(self, trial: Trial) -> None:
            if trial not in self._trial_runs and str(trial) in self.begun:  # Ray's table
                self._trial_runs[trial] = self.begun.pop(str(trial))
            super().log_trial_start(trial)

    return MLflowCallback(tracking_uri=uri, experiment_name=experiment,
                          tags={RUN_DIR_TAG: run_dir.uri}, save_artifact=False)


def _mlflow_runs(uri: str, experiment_id: str, run_dir: str) -> dict[str, str]:
    """{trial name: MLflow run id} of the runs the trials of `run_dir` began (before a
    --resume; none in a new run)."""
    from mlflow.tracking import MlflowClient

    if "'" in run_dir:  # no quoting in MLflow's filter; such a run's resumed trials start anew
        return {}
    client, runs, token = MlflowClient(uri), {}, None
    while True:
        page = client.search_runs([experiment_id], f"tags.`{RUN_DIR_TAG}` = '{run_dir}'",
                                  page_token=token)
        runs.update({run.info.run_name: run.info.run_id for run in page})
        token = page.token
        if not token:
            return runs


# -- Weights & Biases -------------------------------------------------------------------

def _wandb_logged_in() -> bool:
    """W&B credentials on this machine (WANDB_API_KEY, or `wandb login`'s .netrc entry),
    looked up without W&B's login, which would write its settings file."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or WANDB_HOST).hostname or ""
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):  # no .netrc, or one W&B did not write
        return False


def _wandb(run_dir: Location, experiment: str) -> tune.Callback:
    from ray.air.integrations.wandb import WandbLoggerCallback

    mode = os.environ.get(WANDB_MODE_ENV)
    why = f"{WANDB_MODE_ENV}={mode}"
    if not mode:
        mode = "online" if _wandb_logged_in() else "offline"
        why = "no W&B login here (WANDB_API_KEY, or wandb login)"
        if mode == "offline":  # Ray's callback asks for an API key unless this says offline
            os.environ[WANDB_MODE_ENV] = mode
    # Ray's logging actor writes into the trial's staging directory on the driver, copied
    # to the run directory at Tune's snapshots, the last one before the actors finish:
    # a local run directory gets W&B's files directly, whole, in <run_dir>/wandb/
    where = os.environ.get(WANDB_DIR_ENV) or (run_dir.path if run_dir.is_local else None)
    if mode in ("offline", "dryrun"):
        runs = f"{where}/wandb" if where else f"{run_dir / TUNE_DIR}/<trial_id>/wandb"
        _say(f"wandb: offline ({why}): a run per trial in {runs}; upload them later with "
             f"wandb sync {runs}/offline-run-*")
    else:
        _say(f"wandb: a run per trial in project {experiment!r}, group {run_dir.name!r}")
    # mode and dir are passed on: the actor's environment is its raylet's, not this one's
    return WandbLoggerCallback(project=experiment, group=run_dir.name, mode=mode, dir=where)


TRACKERS: dict[str, Tracker] = {tracker.name: tracker for tracker in (
    Tracker("tensorboard", "TensorBoard (tensorboardX)", "tensorboardX", "tensorboardX",
            _tensorboard),
    Tracker("mlflow", "MLflow", "mlflow", "mlflow-skinny", _mlflow, check=_check_mlflow),
    Tracker("wandb", "Weights & Biases", "wandb", "wandb", _wandb),
)}
