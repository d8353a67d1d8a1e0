"""`--log tensorboard|mlflow|wandb`: Ray Tune's logger callbacks, for real. Bad
input is one line and exit 2 with nothing written; a missing package names its
install command; MLflow continues a trial's run on --resume; and one quick sweep
from a file outside the repository, on scikit-learn's digits, logs every trial to
all three at once (MLflow's file store, TensorBoard event files, W&B offline) with
the same params and per-epoch metrics as its Parquet record."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from pipelines.errors import UsageError
from pipelines.records.storage import Location, resolve
from pipelines.tuning.trackers import (
    TRACKERS,
    Tracker,
    check_trackers,
    mlflow_file_store,
    tracker_callbacks,
)
from tests import processes as proc
from tests.conftest import REPO
from tests.user_sweeps import write_function_sweep


def object_store() -> Location:
    """An S3 bucket's Location, never touched: the trackers ask only where it is."""
    return Location(pafs.S3FileSystem(anonymous=True, region="us-east-1"), "sweeps/results",
                    "s3://sweeps/results")


@pytest.fixture
def mlflow_store(monkeypatch):
    """MLflow to read file stores back with: no tracking URI of the user's, file stores
    allowed (MLflow 3 refuses them otherwise), and MLflow's global URI reset after."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    yield mlflow
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: unset, MLflow's own way


def no_callback(run_dir: Location, experiment: str):
    raise AssertionError("not built")


@pytest.mark.parametrize("name", list(TRACKERS))
def test_every_tracker_is_installed_with_the_dev_extra(name):
    TRACKERS[name].check_installed()  # pyproject's dev extra has each tracker's extra


def test_a_missing_package_names_its_install_command():
    absent = Tracker("fancy", "Fancy Tracker", "raysweep_no_such_tracker_module", "fancy-sdk",
                     no_callback)
    with pytest.raises(UsageError) as raised:
        absent.check_installed()
    assert str(raised.value) == (
        '--log fancy needs Fancy Tracker, which is not installed: pip install -e ".[fancy]" '
        'in the raysweep checkout (or pip install fancy-sdk)')


@pytest.mark.parametrize("name, hint", [("nope", ""), ("MLflow", ""),
                                        ("mlflow,wandb", "; repeat --log for each tracker")])
def test_an_unknown_tracker_lists_the_known_ones(name, hint):
    with pytest.raises(UsageError) as raised:
        check_trackers(["tensorboard", name])
    assert str(raised.value) == \
        f"unknown --log {name!r}; choose one of tensorboard, mlflow, wandb{hint}"


def test_a_tracker_named_twice_counts_once(tmp_path):
    check_trackers(["tensorboard", "tensorboard"], storage=resolve(str(tmp_path)))
    callbacks = tracker_callbacks(["tensorboard", "tensorboard"], resolve(str(tmp_path)), "s")
    assert len(callbacks) == 1


def test_mlflow_beside_an_object_store_needs_a_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UsageError, match="set MLFLOW_TRACKING_URI to a tracking server"):
        check_trackers(["mlflow"], storage=object_store())
    check_trackers(["tensorboard", "wandb"], storage=object_store())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    check_trackers(["mlflow"], storage=object_store())


def test_mlflow_file_store_refused_by_the_user_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")
    with pytest.raises(UsageError, match="MLFLOW_ALLOW_FILE_STORE=false refuses it"):
        check_trackers(["mlflow"], storage=resolve(str(tmp_path)))


@pytest.mark.parametrize("log", [["nope"], ["mlflow", "tensorboard,wandb"]])
def test_cli_unknown_tracker_is_one_line_exit_2_nothing_written(tmp_path, capsys, log):
    from pipelines.run import main

    sweep = write_function_sweep(tmp_path / "elsewhere")
    storage = tmp_path / "results"
    capsys.readouterr()
    code = main([str(sweep), "--quick", "--storage", str(storage),
                 *[arg for name in log for arg in ("--log", name)]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: unknown --log {log[-1]!r}")
    assert not storage.exists()


def test_mlflow_continues_a_trials_run_after_a_resume(tmp_path, mlflow_store):
    """Two drivers of one run directory (the second a --resume): a trial the first began
    goes on in its MLflow run; the driver's environment is left as it was."""
    from mlflow.tracking import MlflowClient
    from ray.tune.experiment import Trial

    run_dir = resolve(str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    config = {"lr": 0.05, "hidden": 8}

    def driver(epochs, end):
        (callback,) = tracker_callbacks(["mlflow"], run_dir, "digits_loop")
        callback.setup()
        assert "MLFLOW_TRACKING_URI" not in os.environ
        trial = Trial("run_trial", config=config, trial_id="0123abcd", stub=True)
        callback.on_trial_start(0, [trial], trial)
        for epoch in epochs:
            callback.on_trial_result(0, [trial], trial,
                                     {"training_iteration": epoch, "val_nll": 1 / epoch})
        if end:
            callback.on_trial_complete(0, [trial], trial)

    driver([1, 2], end=False)  # then the driver died
    driver([3], end=True)
    uri = mlflow_file_store(run_dir)
    assert uri == f"file://{tmp_path}/run/mlruns"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("digits_loop")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "val_nll")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.05", "hidden": "8"}
    assert run.data.tags["raysweep.run_dir"] == run_dir.uri


def test_wandb_runs_offline_without_a_login(tmp_path, monkeypatch):
    from ray.air.integrations.wandb import WandbLoggerCallback

    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_DIR",
                 "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org login me password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    run_dir = resolve(str(tmp_path))
    (offline,) = tracker_callbacks(["wandb"], run_dir, "digits_loop")
    assert isinstance(offline, WandbLoggerCallback)
    assert offline.kwargs == {"mode": "offline", "dir": str(tmp_path)}
    assert os.environ["WANDB_MODE"] == "offline"  # what Ray's setup asks for, to ask no key
    assert (offline.project, offline.group) == ("digits_loop", tmp_path.name)
    monkeypatch.delenv("WANDB_MODE")
    netrc.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    (online,) = tracker_callbacks(["wandb"], run_dir, "digits_loop")  # `wandb login` did
    assert isinstance(online, WandbLoggerCallback)
    assert online.kwargs["mode"] == "online" and "WANDB_MODE" not in os.environ


def event_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of a TensorBoard event file, read record by record (TFRecord:
    length, its CRC, the Event proto, its CRC) with tensorboardX's own protos."""
    from tensorboardX.proto.event_pb2 import Event  # type: ignore[import-untyped]

    data, at = path.read_bytes(), 0
    scalars: dict[str, list[tuple[int, float]]] = {}
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.mark.integration
def test_quick_sweep_logs_every_trial_to_all_three_trackers(tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    sweep = write_function_sweep(tmp_path / "elsewhere")
    assert not sweep.is_relative_to(REPO)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "WANDB_"))}  # MLflow's default: the file store
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONFIG_DIR=str(tmp_path / "w"),
               WANDB_CACHE_DIR=str(tmp_path / "w"), WANDB_DATA_DIR=str(tmp_path / "w"))
    proc.run_to_completion(
        [sys.executable, "-m", "pipelines.run", str(sweep), "--quick", "--num-samples", "3",
         "--max-epochs", "3", "--storage", str(tmp_path / "results"), "--name", "run",
         "--log", "mlflow", "--log", "tensorboard", "--log", "wandb"],
        env, tmp_path / "driver.log", timeout_s=300)
    run_dir = tmp_path / "results" / "digits_loop" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet").set_index("trial_id")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    nll = {str(t): list(group.sort_values("epoch")["val_nll"]) for t, group in
           epochs.groupby("trial_id")}
    assert len(trials) == 3 and sorted(nll) == sorted(trials.index)
    assert trials["epochs"].min() < 3  # ASHA stopped one: its history is shorter

    # MLflow: a run per trial in the run directory's file store, params and every epoch
    uri = f"file:{run_dir}/mlruns"
    mlflow_store.set_tracking_uri(uri)
    runs = mlflow_store.search_runs(experiment_names=["digits_loop"])
    # Tune names a trial <trainable>_<trial_id>
    runs["trial_id"] = runs["tags.trial_name"].str.rsplit("_", n=1).str[-1]
    assert sorted(runs["trial_id"]) == sorted(trials.index)
    assert set(runs["status"]) == {"FINISHED"}
    for run in runs.to_dict("records"):
        trial = trials.loc[run["trial_id"]]
        assert float(run["params.lr"]) == trial["config/lr"]
        assert int(run["params.hidden"]) == trial["config/hidden"]
        history = MlflowClient(uri).get_metric_history(run["run_id"], "val_nll")
        assert [m.step for m in history] == list(range(1, trial["epochs"] + 1))
        assert [m.value for m in history] == nll[run["trial_id"]]

    for trial_id, trial in trials.iterrows():
        # TensorBoard: the trial's event file, in its directory, has every epoch's val_nll
        (events,) = (run_dir / "tune" / str(trial_id)).glob("events.out.tfevents.*")
        logged = event_scalars(events)["ray/tune/val_nll"]
        assert [step for step, _ in logged] == list(range(1, trial["epochs"] + 1))
        assert [v for _, v in logged] == pytest.approx(nll[str(trial_id)], rel=1e-6)
        # W&B: an offline run per trial in <run_dir>/wandb, for `wandb sync` later
        (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{trial_id}")
        assert b"val_nll" in (offline / f"run-{trial_id}.wandb").read_bytes()
