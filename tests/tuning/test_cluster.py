"""A real multi-node Ray cluster on loopback, started with `ray start` and token
authentication: the sweep submitted as a Ray job runs on both nodes, the Jobs
API refuses requests without the token, and losing a node mid-sweep costs
nothing but a retry."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import processes as proc
from tests.conftest import REPO, data_dir
from tests.digits import write_digits_folder
from tests.user_sweeps import write_data_sweep

pytestmark = pytest.mark.integration
OBJECT_STORE_BYTES = str(200 * 1024**2)  # small: two nodes share this machine's /dev/shm
SWEEP = ["cifar_sweep", "--quick", "--algo", "random", "--scheduler", "none",
         "--val-size", "300", "--data-dir", str(data_dir())]


class Cluster:
    def __init__(self, tmp):
        self.tmp = tmp
        self.env = proc.cluster_env(tmp)
        self.token = (tmp / "auth_token").read_text()
        self.gcs_port, dashboard_port = proc.free_port(), proc.free_port()
        self.dashboard = f"http://127.0.0.1:{dashboard_port}"
        self.head = proc.start_node(
            ["--head", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
             "--port", str(self.gcs_port), "--dashboard-port", str(dashboard_port),
             "--ray-client-server-port", str(proc.free_port()), "--num-cpus", "1",
             "--object-store-memory", OBJECT_STORE_BYTES], self.env, tmp / "head.log")
        try:
            self.head_id = proc.wait_for(lambda: self.alive_nodes(), 60, "the head node").pop()
        except BaseException:
            self.head.stop()
            raise

    def alive_nodes(self) -> set[str]:
        return proc.alive_node_ids(self.dashboard, self.token)

    def add_worker(self, name: str) -> tuple[proc.RayNode, str]:
        """A second node of one CPU; returns it and its Ray node id."""
        before = self.alive_nodes()
        node = proc.start_node(
            ["--address", f"127.0.0.1:{self.gcs_port}", "--node-ip-address", "127.0.0.1",
             "--num-cpus", "1", "--object-store-memory", OBJECT_STORE_BYTES],
            self.env, self.tmp / f"{name}.log")
        try:
            new = proc.wait_for(lambda: self.alive_nodes() - before, 60, f"node {name}")
        except BaseException:
            node.stop()
            raise
        return node, new.pop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # `ray start --head` records its address for later ray.init() calls on this machine;
    # put back what was there, so no one is pointed at a cluster that is gone.
    address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    before = address_file.read_text() if address_file.exists() else None
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.head.stop()
    ours = address_file.exists() and str(c.gcs_port) in address_file.read_text()
    if ours and before is not None:
        address_file.write_text(before)
    elif ours:
        address_file.unlink()


@pytest.fixture
def worker(cluster):
    node, node_id = cluster.add_worker("worker")
    yield node_id
    node.stop()


def test_jobs_api_needs_the_token(cluster):
    jobs = f"{cluster.dashboard}/api/jobs/"
    assert proc.http_get(jobs)[0] == 401
    assert proc.http_get(jobs, token="0" * 64)[0] == 403
    assert proc.http_get(jobs, token=cluster.token)[0] == 200


NO_AGENT_YET = "No available agent to submit job, please try again later"


def test_a_users_sweep_submitted_as_a_job_runs_on_both_nodes(cluster, worker, tmp_path):
    # the user's project, outside this package: a sweep file with its own model,
    # on digits as an image folder (not CIFAR-10); the job ships it as its working dir
    data = write_digits_folder(tmp_path / "data" / "digits")
    project = tmp_path / "my_project"
    write_data_sweep(project, f"ImageFolder({str(data)!r})")
    assert not project.is_relative_to(REPO)
    for _ in range(12):  # the head's job agent can register after the node is up
        submit = subprocess.run(
            [proc.RAY, "job", "submit", "--address", cluster.dashboard, "--working-dir",
             str(project), "--", sys.executable, "-m", "pipelines.run", "digits_sweep.py",
             "--quick", "--algo", "random", "--scheduler", "none", "--max-epochs", "2",
             "--address", "auto", "--storage", str(tmp_path / "results"), "--name", "job"],
            cwd=project, env=cluster.env, capture_output=True, text=True, timeout=400)
        if NO_AGENT_YET not in submit.stderr:
            break
        time.sleep(5)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    assert "succeeded" in submit.stdout + submit.stderr
    run_dir = tmp_path / "results" / "digits_sweep" / "job"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 4 and (trials["stop_reason"] == "completed").all()
    # the model registered in the sweep file was built on both nodes
    assert set(trials["node_id"]) == {cluster.head_id, worker}
    assert (trials["config/model"] == "tiny_digits_net").all()
    assert len(epochs) == 8 and not epochs.duplicated(["trial_id", "epoch"]).any()
    assert trials["best_val_acc"].max() > 0.5  # it learned: chance is 0.1


def _reported(run_dir):
    """{trial: [(epoch, node_id), ...]} from Ray Tune's own per-trial logs."""
    out = {}
    for log in (run_dir / "tune").glob("*/result.json"):
        out[log.parent.name] = [(r["epoch"], r["node_id"]) for r in
                                map(json.loads, log.read_text().splitlines())]
    return out


def test_sweep_finishes_when_a_node_leaves(cluster, tmp_path):
    node, node_id = cluster.add_worker("leaving")
    run_dir = tmp_path / "cifar_sweep" / "loss"
    driver = proc.start(
        [sys.executable, "-m", "pipelines.run", *SWEEP, "--num-samples", "3",
         "--max-epochs", "4", "--train-size", "3000", "--storage", str(tmp_path),
         "--name", "loss", "--address", f"127.0.0.1:{cluster.gcs_port}"],
        cluster.env, tmp_path / "driver.log")
    try:
        proc.wait_for(lambda: any(n == node_id for rs in _reported(run_dir).values()
                                  for _, n in rs), 180, "an epoch on the second node")
        node.stop()  # the whole node: raylet, its workers and the trial on it
        assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        node.stop()
        proc.stop(driver)
    trials = pd.read_parquet(run_dir / "trials.parquet").set_index("trial_id")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    assert len(trials) == 3 and (trials["stop_reason"] == "completed").all()
    assert len(epochs) == 12 and not epochs.duplicated(["trial_id", "epoch"]).any()
    retried = trials.index[trials["failures"] > 0]
    assert len(retried) >= 1, "no trial was running on the node that left"
    reported = _reported(run_dir)
    for trial in retried:  # continued from its checkpoint on the head
        epochs_seen = [e for e, _ in reported[trial]]
        assert epochs_seen == sorted(set(epochs_seen)), f"{trial} repeated epochs"
        assert reported[trial][-1][1] == trials.loc[trial, "node_id"] == cluster.head_id
    assert any({n for _, n in reported[t]} == {node_id, cluster.head_id} for t in retried)
