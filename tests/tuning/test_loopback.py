"""A local run opens nothing to the network (ray_session.loopback_node): a real
sweep, run as a user runs it (`python -m pipelines.run` on a sweep file in their own
repository, on scikit-learn's digits written as an image folder, not CIFAR-10), is
watched from outside while it runs. Every TCP port of its Ray (GCS, raylet, agents,
each trial worker, the driver) is read from /proc; each must be on loopback and
refuse the machine's own address, no Prometheus /metrics may answer but the two Ray
starts regardless (on loopback too), and its GCS must refuse a request without the
token."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import socket
import subprocess
import sys
import time
from typing import Iterable, Iterator

import grpc
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.digits import write_digits_folder
from tests.listeners import Listener, accepts, listeners, machine_addresses
from tests.user_sweeps import write_data_sweep

# The processes whose Prometheus exporter Ray starts on every head node (where
# prometheus_client is installed, as ray[default] installs it), with no ray.init
# setting to stop it: ray/dashboard/head.py `_setup_metrics` (port 44227) and
# ray/autoscaler/_private/monitor.py (port 44217).
RAY_METRICS_EXPORTERS = ("dashboard.py", "monitor.py")


def metrics_answer(listener: Listener, timeout_s: float = 5) -> str | None:
    """What `listener` answers to Prometheus's scrape, `GET /metrics`, if that is a 200
    (None: another status, a protocol it does not speak, e.g. gRPC's HTTP/2, or none)."""
    connection = http.client.HTTPConnection(listener.host,
                                            listener.port, timeout=timeout_s)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        if response.status == 200:
            return f"{listener}: GET /metrics 200 {response.read(60)!r}"
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()
    return None


def trial_workers(seen: Iterable[Listener], driver: int) -> list[Listener]:
    """The listeners of Ray's worker processes (ray::IDLE, ray::ImplicitFunc, ...: not
    its ray::...Agent daemons), the driver's aside."""
    return [x for x in seen if x.program.startswith("ray::") and x.pid != driver
            and not x.program.endswith("Agent")]


def gcs_node_info(port: int, token: str | None) -> tuple[grpc.StatusCode, list]:
    """The GCS's GetAllNodeInfo over plain gRPC on loopback, with `token` as Ray's
    clients send it (or no authorization at all): its status and the nodes."""
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            request = gcs_service_pb2.GetAllNodeInfoRequest(limit=10)  # type: ignore[attr-defined]
            reply = stub.GetAllNodeInfo(request, metadata=metadata, timeout=10)
        except grpc.RpcError as e:
            return e.code(), []
        return grpc.StatusCode.OK, list(reply.node_info_list)


@contextlib.contextmanager
def prometheus_endpoint() -> Iterator[int]:
    """A real Prometheus exporter on loopback (prometheus_client, as Ray's use), its port."""
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    Counter("scrapes", "a metric to serve", registry=registry).inc()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()


def test_the_listener_reader_tells_loopback_from_every_interface():
    # real sockets of this process: the reader must see both, and tell them apart
    with socket.socket() as everywhere, socket.socket() as local, \
            socket.socket(socket.AF_INET6) as local6:
        everywhere.bind(("0.0.0.0", 0))
        local.bind(("127.0.0.1", 0))
        local6.bind(("::1", 0))
        for s in (everywhere, local, local6):
            s.listen()
        found = {(x.port, x.address, x.loopback) for x in listeners(os.getpid())}
        assert (everywhere.getsockname()[1], "0.0.0.0", False) in found
        assert (local.getsockname()[1], "127.0.0.1", True) in found
        assert (local6.getsockname()[1], "::1", True) in found
        # and the scrape check knows a Prometheus endpoint from a port that is none
        for address in machine_addresses():  # from outside loopback, only the wildcard
            assert accepts(address, everywhere.getsockname()[1])
            assert not accepts(address, local.getsockname()[1])
        silent = local.getsockname()[1]  # accepts connections, never answers
        with prometheus_endpoint() as port:
            served = {x.port: metrics_answer(x, timeout_s=0.5)
                      for x in listeners(os.getpid()) if x.port in (port, silent)}
        assert "GET /metrics 200 b'# HELP" in str(served[port])
        assert served[silent] is None
    assert not Listener(1, "::", 0, "").loopback  # a wildcard: every interface
    assert not Listener(1, "192.0.2.2", 0, "").loopback
    assert Listener(1, "::ffff:127.0.0.1", 0, "").loopback
    assert Listener(1, "::ffff:127.0.0.1", 0, "").host == Listener(1, "::", 0, "").host \
        == "127.0.0.1"  # where the scrape and the GCS request connect
    python = "/venv/bin/python -u /venv/lib/ray/autoscaler/_private/monitor.py --logs-dir=x"
    assert Listener(1, "::", 0, python).program == "monitor.py"
    assert Listener(1, "::", 0, "/venv/lib/ray/core/gcs_server --log_dir=x").program == "gcs_server"
    assert Listener(1, "::", 0, "ray::IDLE").program == "ray::IDLE"


@pytest.mark.integration
def test_a_local_sweep_listens_on_loopback_only_and_needs_the_token(tmp_path):
    images = write_digits_folder(tmp_path / "data" / "digits", n=300)
    sweep_file = write_data_sweep(tmp_path / "my_project", f"ImageFolder({str(images)!r})")
    assert not sweep_file.is_relative_to(REPO)
    token = tmp_path / "auth_token"  # the run's own, so ~/.ray is left alone
    secret = secrets.token_hex(32)
    token.write_text(secret)
    token.chmod(0o600)
    # RAY_AUTH_MODE unset: token authentication is the embedded Ray's default
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["RAY_AUTH_TOKEN_PATH"] = str(token)
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", str(sweep_file), "--quick", "--algo",
         "random", "--num-samples", "2", "--max-epochs", "2", "--storage",
         str(tmp_path / "results"), "--name", "run"],
        cwd=sweep_file.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    outside = machine_addresses()  # where another machine would connect to this one
    seen: set[Listener] = set()
    metrics: dict[Listener, str] = {}  # what answered a scrape
    reachable: list[str] = []  # ports accepting connections on an address in `outside`
    gcs: dict[str, tuple[grpc.StatusCode, list]] = {}
    deadline = time.monotonic() + 400
    try:
        while driver.poll() is None and time.monotonic() < deadline:
            for listener in listeners(driver.pid) - seen:
                seen.add(listener)
                # each port once, while it is open: does it serve Prometheus metrics?
                if answer := metrics_answer(listener):
                    metrics[listener] = answer
                reachable += [f"{listener}: accepts on {address}" for address in outside
                              if accepts(address, listener.port)]
            gcs_ports = [x.port for x in seen if x.program == "gcs_server"]
            if gcs_ports and not gcs.get("token", (None, []))[1]:
                # who is in the cluster, asked until the node has registered with the GCS
                gcs["none"] = gcs_node_info(gcs_ports[0], None)
                gcs["wrong"] = gcs_node_info(gcs_ports[0], "0" * 64)
                gcs["token"] = gcs_node_info(gcs_ports[0], secret)
            time.sleep(0.2)
    finally:
        if driver.poll() is None:
            driver.kill()
        out, err = driver.communicate()
    assert driver.returncode == 0, err[-3000:]

    listening = sorted(seen)
    programs = {x.program for x in listening}
    # the scan saw the whole Ray of the run, trial workers included
    assert {"gcs_server", "raylet", "ray::DashboardAgent"} <= programs, programs
    assert trial_workers(listening, driver.pid), programs
    exposed = [str(x) for x in listening if not x.loopback]
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)
    assert not reachable, "\n".join(reachable)
    # Prometheus exporters: only the two Ray 2.60 starts with no switch to stop them
    # (the dashboard head's and the autoscaler's, README "Security"), and on loopback
    unexpected = [answer for listener, answer in metrics.items()
                  if listener.program not in RAY_METRICS_EXPORTERS
                  or "/ray/" not in listener.command]
    assert not unexpected, "\n".join(unexpected)
    assert all(listener.loopback for listener in metrics)

    assert gcs["none"][0] == grpc.StatusCode.UNAUTHENTICATED, gcs["none"]
    assert gcs["wrong"][0] == grpc.StatusCode.UNAUTHENTICATED, gcs["wrong"]
    status, nodes = gcs["token"]
    assert status == grpc.StatusCode.OK
    assert [n.node_manager_address for n in nodes] == ["127.0.0.1"], gcs["token"]

    trials = pd.read_parquet(tmp_path / "results" / "digits_sweep" / "run" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert set(trials["node_ip"]) == {"127.0.0.1"}  # where Tune says each trial ran
    assert token.read_text() == secret  # the run's token was used, not replaced
