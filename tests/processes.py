"""Processes the tests start, and stop again by their own handles.

Each Ray node or CLI run starts in a new session (`start_new_session=True`).
Everything it spawns (GCS, raylet, workers) inherits that session, even the
workers Ray puts in process groups of their own; so killing the session stops
exactly what the test started, and never another Ray running on the same
machine (no `ray stop`, no `pkill`). Ray starts job drivers in sessions of
their own; it stops them itself when their job supervisor (a worker in the
node's session) dies.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from tests.conftest import REPO

RAY = str(Path(sys.executable).with_name("ray"))
READY_LINE = "will now block forever"
T = TypeVar("T")


def session_pids(session: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    pids.append(int(entry))
            except OSError:  # exited meanwhile
                continue
    return pids


def live_session_pids(session: int) -> list[int]:
    """Session members that are not zombies (a zombie is dead, awaiting its parent)."""
    live = []
    for pid in session_pids(session):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.append(pid)
    return live


def kill_session(session: int, grace_s: float = 5.0, give_up_s: float = 30.0) -> None:
    """SIGTERM every process of the session; after `grace_s`, SIGKILL whatever is
    left, again and again (a dying parent may still fork), until none is."""
    _signal_all(session, signal.SIGTERM)
    deadline = time.time() + grace_s
    while live_session_pids(session) and time.time() < deadline:
        time.sleep(0.2)
    deadline = time.time() + give_up_s
    while live_session_pids(session) and time.time() < deadline:
        _signal_all(session, signal.SIGKILL)
        time.sleep(0.2)


def _signal_all(session: int, sig: int) -> None:
    for pid in live_session_pids(session):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def start(args: list[str], env: dict, log: Path, **kwargs: Any) -> subprocess.Popen:
    """Start a command in a session of its own, output to `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)


def stop(process: subprocess.Popen) -> None:
    """Stop the process and its session, once: after it was reaped, its pid (and so
    its session id) may belong to someone else."""
    if process.returncode is not None and not live_session_pids(process.pid):
        return
    kill_session(process.pid)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_to_completion(args: list[str], env: dict, log: Path, timeout_s: float = 400) -> None:
    """Run a command in its own session and assert it exits 0 (its log tail if not);
    whatever it leaves running is stopped, pass or fail."""
    process = start(args, env, log)
    try:
        assert process.wait(timeout=timeout_s) == 0, log.read_text()[-3000:]
    finally:
        stop(process)


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str,
             poll_s: float = 0.3) -> T:
    """`condition()` once it is truthy; a TimeoutError after `timeout_s`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(tmp: Path) -> dict:
    """Environment for every process of a token-authenticated test cluster: its
    own token file, so the user's ~/.ray/auth_token is neither read nor written."""
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0", "RAYSWEEP_OFFLINE": "1"}


@dataclass
class RayNode:
    process: subprocess.Popen
    log: Path
    temp_dir: Path

    def stop(self) -> None:
        stop(self.process)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_node(args: list[str], env: dict, log: Path, timeout_s: float = 90) -> RayNode:
    """`ray start ... --block`, waiting until the node is up. Each node gets its own
    temp dir: nodes sharing one would share runtime-env directories, and one node
    cleaning up a job's working_dir would pull it from under the other's driver.
    (Short, in /tmp: Ray's socket paths must stay under 108 bytes.)"""
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
    node = RayNode(start([RAY, "start", *args, "--block", "--disable-usage-stats",
                          "--temp-dir", str(temp_dir)], env, log), log, temp_dir)

    def ready() -> bool:
        if node.process.poll() is not None:
            raise RuntimeError(f"ray start exited {node.process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        return READY_LINE in log.read_text()

    try:
        wait_for(ready, timeout_s, f"ray start ({log})")
    except BaseException:
        node.stop()
        raise
    return node


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # not listening yet, or too busy to answer in time
        return 0, str(e)


def alive_node_ids(dashboard: str, token: str) -> set[str]:
    status, body = http_get(f"{dashboard}/api/v0/nodes?limit=100", token)
    if status != 200:
        return set()
    nodes = json.loads(body)["data"]["result"]["result"]
    return {n["node_id"] for n in nodes if n["state"] == "ALIVE"}


def ctrl_c_after_first_result(driver: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C (SIGINT to the driver alone) once a trial has reported; its output."""
    assert driver.stderr is not None, "start the driver with stderr=subprocess.PIPE"
    for line in driver.stderr:
        if "best val_acc" in line:
            break
    driver.send_signal(signal.SIGINT)
    return driver.communicate(timeout=120)
