"""Start (or join) Ray for a run, and stop what this run started."""

from __future__ import annotations

import logging
import os
import sys

# An embedded Ray has no dashboard, so nothing reads its task events or metrics;
# recording them cost its driver and daemons ~1.2 CPU-s per minute of sweep, taken
# from the trials on a machine whose cores all train (bench/overhead.py).
EMBEDDED_RAY_CONFIG = {"task_events_report_interval_ms": 0, "enable_metrics_collection": False}


def joins_cluster(address: str | None) -> bool:
    """Whether a run with `--address address` joins a running cluster (also when
    RAY_ADDRESS names one) rather than starting an embedded local Ray."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


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
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=True,
             _system_config=EMBEDDED_RAY_CONFIG if embedded else None)
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_trial > gpus:
        # An autoscaling cluster starts GPU nodes once trials ask for them (cluster.yaml
        # has min_workers: 0), so a cluster without GPUs yet is not an error.
        print(f"the Ray cluster has {gpus:g} GPUs now; trials wait until the autoscaler "
              f"adds GPU nodes ({gpus_per_trial:g} per trial)", file=sys.stderr)
    return True


def stop_ray(started_ray: bool) -> None:
    """Shut Ray down if `start_ray` started it (a joined cluster keeps running)."""
    if started_ray:
        import ray

        ray.shutdown()
