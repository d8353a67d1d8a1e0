"""Start (or join) Ray for a run, and stop what this run started; check first
that a cluster the run would join is there."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from typing import Iterator

from pipelines.errors import UsageError

# An embedded Ray has no dashboard, so nothing reads its task events or metrics;
# recording them cost its driver and daemons ~1.2 CPU-s per minute of sweep, taken
# from the trials on a machine whose cores all train (bench/overhead.py).
EMBEDDED_RAY_CONFIG = {"task_events_report_interval_ms": 0, "enable_metrics_collection": False}
# An embedded Ray listens on loopback only. Ray's servers bind every interface unless
# their node's IP is a loopback one: the C++ GrpcServer (GCS, raylet, each worker) binds
# 127.0.0.1 when its node_ip_address is 127.0.0.1 (`listen_to_localhost_only`), the
# dashboard agent, runtime-env agent and autoscaler metrics server when
# `is_localhost(node_ip)`. ray.init(_node_ip_address="127.0.0.1") does not get there: it
# swaps a loopback address for the machine's (services.resolve_ip_for_localhost). What
# does is the switch Ray itself flips on macOS and Windows, where it is off by default
# to avoid firewall prompts: with `ray_constants.ENABLE_RAY_CLUSTER` (env
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER) off, services.get_node_ip_address() is 127.0.0.1.
# It is read once at import, so a process that imported Ray already needs the constant
# itself set; the environment variable carries it to the GCS, raylet and agents.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# How long the head node's GCS port may take to accept a TCP connection, in seconds: one
# on the network answers in milliseconds. Without this probe, ray.init retries an address
# where nothing listens for minutes, printing GCS warnings.
CONNECT_TIMEOUT_S = 5.0


def joins_cluster(address: str | None) -> bool:
    """Whether a run with `--address address` joins a running cluster (also when
    RAY_ADDRESS names one) rather than starting an embedded local Ray."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def check_cluster(address: str | None) -> None:
    """A UsageError if the cluster a run would join (`--address address`, else
    RAY_ADDRESS) is unusable: Ray Client (ray://), or nothing accepting connections
    at its host:port. "auto" is left to ray.init, which finds it or says it cannot."""
    given = address or os.environ.get("RAY_ADDRESS") or ""
    flag, drop = _named(address)
    if given.startswith("ray://"):
        raise UsageError(f"{flag} {given}: Ray Client (ray://) is not supported, the driver "
                         f"must run in the cluster; use `ray job submit ... -- python -m "
                         f"pipelines.run ... --address auto`")
    if given in ("", "auto", "local"):
        return
    host, _, port = given.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"{flag} {given!r}: give the head node's host:port (Ray's port is "
                         f"6379 unless `ray start --port` chose another) or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)),  # [::1]:6379 is IPv6
                                 timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:  # refused, timed out, unknown host
        raise UsageError(f"no Ray cluster at {given} ({e.strerror or e}); start one with "
                         f"`ray start --head` or {drop}") from None


def _named(address: str | None) -> tuple[str, str]:
    """Where the address came from, and how to do without it, for a message."""
    return ("--address", "drop --address") if address else ("RAY_ADDRESS", "unset RAY_ADDRESS")


def start_ray(address: str | None = None, gpus_per_trial: float = 0.0) -> bool:
    """Start or join Ray; True if this call started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from sweeps
    embedded = not joins_cluster(address)  # asked before `address` becomes "local" below
    if embedded:
        # Ray starts workers at nice 15, so with every core running a trial the driver
        # and Ray's own daemons win each contention: trials trained 12-17% slower than
        # outside Ray (bench/overhead.py). Our embedded Ray runs nothing but the sweep.
        os.environ.setdefault("RAY_worker_niceness", "0")
    # "local": a new Ray for this run. ray.init() without an address would attach to
    # any cluster `ray start` left on this machine (/tmp/ray/ray_current_cluster).
    flag, drop = _named(address)
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    try:
        with loopback_node() if embedded else contextlib.nullcontext():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=True,
                     _system_config=EMBEDDED_RAY_CONFIG if embedded else None)
    except ConnectionError as e:  # "auto", and no cluster on this machine
        reason = str(e).split(". ")[0]  # Ray's first sentence; the rest names its flags
        raise UsageError(f"no Ray cluster for {flag} {address} ({reason}); start one with "
                         f"`ray start --head` or {drop}") from None
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_trial > gpus:
        # An autoscaling cluster starts GPU nodes once trials ask for them (cluster.yaml
        # has min_workers: 0), so a cluster without GPUs yet is not an error.
        print(f"the Ray cluster has {gpus:g} GPUs now; trials wait until the autoscaler "
              f"adds GPU nodes ({gpus_per_trial:g} per trial)", file=sys.stderr)
    return True


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """While Ray starts a node in this process, its IP is 127.0.0.1 (see LOOPBACK_ENV);
    the setting is restored afterwards, so a later run in the process may join a cluster."""
    from ray._private import ray_constants

    saved_constant, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[LOOPBACK_ENV] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


def stop_ray(started_ray: bool) -> None:
    """Shut Ray down if `start_ray` started it (a joined cluster keeps running)."""
    if started_ray:
        import ray

        ray.shutdown()
