"""Soak: the cluster fault tests in a loop. One long sweep runs on a loopback Ray
cluster (a head with no CPUs and two worker nodes of one CPU each, started with
`ray start` and token authentication), submitted as `python -m pipelines.run
<file> --address <head>`. In each round the bench does one fault, in a seeded
random order that cycles through all three:

- kill -9 a trial's worker process (the pid of a running trial's last report);
- stop a worker node (its whole session: raylet and workers) and start it again;
- kill -9 the driver and continue the run with `--resume`.

    OMP_NUM_THREADS=1 python -m bench.soak [--rounds 10] [--minutes 30] [--seed 0]

The sweep is a small file the bench writes: a linear model on scikit-learn's
handwritten digits whose epochs also sleep EPOCH_S, so that two trials at once
cost little CPU and live long enough to be hit. `--minutes` sizes the sweep
(its number of trials); round i fires once i / (rounds + 1) of the trials have
finished, so every fault lands mid-sweep however fast this machine is. At the
end: every trial is in trials.parquet once, completed; every (trial_id, epoch)
in epochs.parquet once, each trial's epochs 1..max_epochs; run.json says
finished. Prints the rounds and the check; exits 1 if the check fails (the run
directory is then kept for a look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
READY_LINE = "will now block forever"  # what `ray start --block` prints once the node is up
TRIAL_WORKER = b"ray::ImplicitFunc"  # the process title of a function trainable's actor
OBJECT_STORE_BYTES = str(200 * 1024**2)  # small: three nodes share this machine's /dev/shm
WORKERS = ("worker1", "worker2")  # one CPU each: two trials at once
MAX_EPOCHS = 4
EPOCH_S = 1.0  # seconds each epoch sleeps, beside ~10 ms of training
TRIAL_S = MAX_EPOCHS * EPOCH_S + 2.0  # estimated wall seconds per trial, Tune's overhead in
FAULT_S = 15.0  # estimated seconds a fault costs the sweep (3-7 s measured, + margin)
FINAL_STATUSES = ("TERMINATED", "ERROR")
T = TypeVar("T")

SWEEP_FILE = '''
"""The soak bench's sweep: a linear model on scikit-learn's digits."""
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from pipelines import Budget, LogUniform, Sweep


def train(config, report, resume_state=None):
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    train_x, train_y, val_x, val_y = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(config["seed"])
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["opt"])
        start = resume_state["epoch"]
    for epoch in range(start + 1, config["epochs"] + 1):
        for batch in torch.randperm(len(train_x)).split(100):
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            nll = F.cross_entropy(model(val_x), val_y).item()
        time.sleep(EPOCH_S)
        report({"val_nll": nll},
               state={"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch})


SWEEP = Sweep(
    description="soak bench: a linear model on digits (val_nll, lower is better)",
    trainable=train,
    metric="val_nll",
    mode="min",
    space={"lr": LogUniform(0.01, 0.5)},
    quick=Budget(num_samples=4, max_epochs=4, grace_period=1, reduction_factor=2),
)
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10, help="faults, one per round")
    p.add_argument("--minutes", type=float, default=30,
                   help="the soak's budget: sizes the sweep's number of trials")
    p.add_argument("--seed", type=int, default=0, help="seeds the faults' order and targets")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.minutes <= 0:
        p.error("--rounds must be >= 1 and --minutes > 0")
    return args


# --- processes, each in a session of its own (as tests/processes.py starts them) ---
# Everything a node or driver spawns inherits its session, so killing the session
# stops exactly what the bench started, never another Ray on this machine.

def live_session_pids(session: int) -> list[int]:
    """The session's processes that are not zombies."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if os.getsid(int(entry)) == session and state != "Z":
                pids.append(int(entry))
        except OSError:  # exited meanwhile
            continue
    return pids


def kill_session(session: int, grace_s: float = 5.0, give_up_s: float = 30.0) -> None:
    """SIGTERM the session; after `grace_s`, SIGKILL what is left until none is."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, give_up_s)):
        deadline = time.time() + wait_s
        while live_session_pids(session) and time.time() < deadline:
            for pid in live_session_pids(session):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a command in a session of its own, output to `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and its session; only while unreaped, its pid is still its session's."""
    if process.returncode is None:
        kill_session(process.pid)
        process.wait(timeout=30)


def wait_for(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """`condition()` once it is truthy; a TimeoutError after `timeout_s`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the cluster ---

@dataclass
class Node:
    process: subprocess.Popen[bytes]
    temp_dir: Path


class Cluster:
    """A head without CPUs (so every trial runs on a worker node) and the worker nodes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        token = tmp / "auth_token"  # its own token: ~/.ray/auth_token is neither read nor written
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head = self._start_node("head", [
            "--head", "--port", str(self.port), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
            "--num-cpus", "0"])
        self.workers = {name: self.start_worker(name) for name in WORKERS}

    def _start_node(self, name: str, args: list[str]) -> Node:
        """`ray start ... --block`, waiting until it is up. Each node has its own temp
        dir (short, in /tmp: Ray's socket paths must stay under 108 bytes)."""
        temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
        log = self.tmp / f"{name}.log"
        node = Node(start([RAY, "start", *args, "--node-ip-address", "127.0.0.1",
                           "--object-store-memory", OBJECT_STORE_BYTES, "--block",
                           "--disable-usage-stats", "--temp-dir", str(temp_dir)],
                          self.env, log), temp_dir)

        def up() -> bool:
            if node.process.poll() is not None:
                raise RuntimeError(f"ray start ({name}) exited {node.process.returncode}:\n"
                                   f"{log.read_text()[-3000:]}")
            return READY_LINE in log.read_text()

        try:
            wait_for(up, 90, f"node {name}")
        except BaseException:
            self.stop_node(node)
            raise
        return node

    def start_worker(self, name: str) -> Node:
        """A worker node of one CPU, joined to the head."""
        return self._start_node(name, ["--address", self.address, "--num-cpus", "1"])

    @staticmethod
    def stop_node(node: Node) -> None:
        stop(node.process)
        shutil.rmtree(node.temp_dir, ignore_errors=True)

    def worker_pids(self) -> set[int]:
        return {pid for node in self.workers.values()
                for pid in live_session_pids(node.process.pid)}

    def close(self) -> None:
        for node in [*self.workers.values(), self.head]:
            self.stop_node(node)


# --- the sweep and its driver ---

class SoakRun:
    """The sweep file, its driver (started, killed, resumed) and its results."""

    def __init__(self, tmp: Path, cluster: Cluster, num_samples: int, max_failures: int) -> None:
        self.tmp, self.cluster, self.num_samples = tmp, cluster, num_samples
        sweep_file = tmp / "soak_sweep.py"
        sweep_file.write_text(textwrap.dedent(SWEEP_FILE).replace("EPOCH_S", repr(EPOCH_S)))
        self.run_dir = tmp / "results" / "soak_sweep" / "soak"
        self.drivers = 0
        self.driver = self._start_driver([
            str(sweep_file), "--quick", "--algo", "random", "--scheduler", "none",
            "--num-samples", str(num_samples), "--max-epochs", str(MAX_EPOCHS),
            "--max-failures", str(max_failures), "--storage", str(tmp / "results"),
            "--name", "soak"])

    def _start_driver(self, args: list[str]) -> subprocess.Popen[bytes]:
        self.drivers += 1
        return start([sys.executable, "-m", "pipelines.run", *args, "--address",
                      self.cluster.address], self.cluster.env,
                     self.tmp / f"driver{self.drivers}.log")

    def kill_and_resume(self) -> int:
        """kill -9 the driver, then `--resume` the run; returns the killed pid."""
        pid = self.driver.pid
        os.kill(pid, signal.SIGKILL)
        kill_session(pid)  # whatever it started (its pid is its session's until reaped)
        self.driver.wait(timeout=30)
        self.driver = self._start_driver(["--resume", str(self.run_dir)])
        return pid

    def driver_log(self) -> str:
        return (self.tmp / f"driver{self.drivers}.log").read_text()

    def trials_done(self) -> int:
        """Trials with a final status in trials.parquet now (0 before it exists)."""
        try:
            trials = pd.read_parquet(self.run_dir / "trials.parquet")
        except (OSError, ValueError):  # not written yet
            return 0
        return int(trials["status"].isin(FINAL_STATUSES).sum())

    def wait_until_done(self, trials: int, give_up: float) -> None:
        """Wait until `trials` have finished; a RuntimeError if the driver exits first,
        a TimeoutError at time `give_up`."""
        def done() -> bool:
            if self.trials_done() >= trials:
                return True
            if self.driver.poll() is not None:
                raise RuntimeError(f"the driver exited {self.driver.returncode} with "
                                   f"{self.trials_done()} trials done, {trials} awaited:\n"
                                   f"{self.driver_log()[-3000:]}")
            return False

        wait_for(done, give_up - time.time(), f"{trials} finished trials")

    def running_trial_pids(self) -> list[int]:
        """Worker pids of the trials running now: the pid of each unfinished trial's last
        report in Tune's result.json, if that process is still a trial worker on a node."""
        on_nodes, pids = self.cluster.worker_pids(), []
        for log in (self.run_dir / "tune").glob("*/result.json"):
            lines = log.read_text().splitlines()
            try:
                last = json.loads(lines[-1]) if lines else None
            except json.JSONDecodeError:  # a line being written
                continue
            if last and last["epoch"] < MAX_EPOCHS and last["pid"] in on_nodes:
                try:
                    if Path(f"/proc/{last['pid']}/cmdline").read_bytes().startswith(TRIAL_WORKER):
                        pids.append(last["pid"])
                except OSError:  # exited meanwhile
                    continue
        return pids


# --- the faults: each does its fault and returns what it hit ---

def kill_trial_worker(sweep: SoakRun, rng: random.Random) -> str:
    """kill -9 the worker process of a running trial: Tune retries it from its checkpoint."""
    pid = rng.choice(wait_for(sweep.running_trial_pids, 120, "a running trial's worker"))
    os.kill(pid, signal.SIGKILL)
    return f"pid {pid}"


def restart_worker_node(sweep: SoakRun, rng: random.Random) -> str:
    """Stop a worker node with the trial on it, then start it again."""
    cluster = sweep.cluster
    name = rng.choice(sorted(cluster.workers))
    cluster.stop_node(cluster.workers[name])
    cluster.workers[name] = cluster.start_worker(name)
    return name


def kill_driver_and_resume(sweep: SoakRun, rng: random.Random) -> str:
    """kill -9 the driver, then continue the run with `--resume`."""
    return f"pid {sweep.kill_and_resume()}"


FAULTS: dict[str, Callable[[SoakRun, random.Random], str]] = {
    "kill trial worker": kill_trial_worker,
    "restart worker node": restart_worker_node,
    "kill driver, resume": kill_driver_and_resume,
}


def fault_order(rounds: int, rng: random.Random) -> list[str]:
    """`rounds` faults, each kind as often as the others (+-1), in random order."""
    names = (list(FAULTS) * (rounds // len(FAULTS) + 1))[:rounds]
    rng.shuffle(names)
    return names


# --- the check ---

def check(run_dir: Path, num_samples: int) -> list[str]:
    """What is wrong with the finished run's records (nothing: [])."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    problems = []
    if len(trials) != num_samples or not trials["trial_id"].is_unique:
        problems.append(f"trials.parquet has {len(trials)} rows for "
                        f"{trials['trial_id'].nunique()} trials; {num_samples} expected, once each")
    unfinished = trials[(trials["status"] != "TERMINATED") | (trials["stop_reason"] != "completed")]
    if len(unfinished):
        problems.append(f"{len(unfinished)} trials not completed: "
                        f"{unfinished[['trial_id', 'status', 'stop_reason']].values.tolist()[:5]}")
    doubled = epochs[epochs.duplicated(["trial_id", "epoch"], keep=False)]
    if len(doubled):
        problems.append(f"{len(doubled)} epochs.parquet rows repeat a (trial_id, epoch): "
                        f"{doubled[['trial_id', 'epoch']].values.tolist()[:5]}")
    by_trial = epochs.groupby("trial_id")["epoch"].apply(sorted).to_dict()
    want = list(range(1, MAX_EPOCHS + 1))
    gaps = {t: by_trial.get(t, []) for t in trials["trial_id"] if by_trial.get(t, []) != want}
    if gaps:
        problems.append(f"{len(gaps)} trials' epochs are not 1..{MAX_EPOCHS}: "
                        f"{list(gaps.items())[:5]}")
    strays = {str(t) for t in by_trial} - set(trials["trial_id"])
    if strays:
        problems.append(f"epochs.parquet has trials that trials.parquet lacks: "
                        f"{sorted(strays)[:5]}")
    status = json.loads((run_dir / "run.json").read_text()).get("status")
    if status != "finished":
        problems.append(f"run.json's status is {status!r}, not 'finished'")
    return problems


def soak(args: argparse.Namespace, tmp: Path) -> list[str]:
    """Run the sweep through the rounds of faults; the check's problems."""
    rng = random.Random(args.seed)
    budget_s = args.minutes * 60
    # two trials at once; what the faults cost comes off the budget
    num_samples = max(2 * (args.rounds + 1),
                      int(max(budget_s - args.rounds * FAULT_S, budget_s / 2) * 2 / TRIAL_S))
    faults = fault_order(args.rounds, rng)
    give_up = time.time() + 2 * budget_s + 300  # a hang, not a slow machine
    print(f"{num_samples} trials x {MAX_EPOCHS} epochs ({EPOCH_S:g} s each) on 2 worker nodes "
          f"of 1 CPU; {args.rounds} faults: {', '.join(faults)}", flush=True)
    cluster = Cluster(tmp)
    try:
        sweep = SoakRun(tmp, cluster, num_samples, max_failures=args.rounds)
        t0 = time.time()
        print(f"{'round':>5}  {'at s':>6}  {'fault':20}  {'hit':12}  {'took s':>6}  "
              f"{'trials done':>11}  {'next trial done s':>17}", flush=True)
        try:
            for i, fault in enumerate(faults, 1):
                due = i * num_samples // (args.rounds + 1)
                sweep.wait_until_done(due, give_up)
                done, start_s = sweep.trials_done(), time.time()
                hit = FAULTS[fault](sweep, rng)
                took_s = time.time() - start_s
                # the sweep goes on: time from the fault to the next finished trial
                sweep.wait_until_done(min(done + 1, num_samples), give_up)
                print(f"{i:5d}  {start_s - t0:6.0f}  {fault:20}  {hit:12}  {took_s:6.1f}  "
                      f"{done:5d}/{num_samples}  {time.time() - start_s:17.1f}", flush=True)
            code = sweep.driver.wait(timeout=max(1.0, give_up - time.time()))
            if code != 0:
                return [f"the driver exited {code}:\n{sweep.driver_log()[-3000:]}"]
        finally:
            stop(sweep.driver)
        print(f"sweep finished after {time.time() - t0:.0f} s (budget {budget_s:.0f} s)")
        trials = pd.read_parquet(sweep.run_dir / "trials.parquet")
        print(f"faults felt: {int((trials['failures'] > 0).sum())} trials retried, "
              f"{int(trials['failures'].sum())} failures in all; {sweep.drivers} drivers")
        return check(sweep.run_dir, num_samples)
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # `ray start --head` records its address for later ray.init() calls on this machine:
    # put back what was there, so no one is pointed at a cluster that is gone
    address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    before = address_file.read_text() if address_file.exists() else None
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        problems = soak(args, tmp)
    except (RuntimeError, TimeoutError) as e:
        problems = [str(e)]
    finally:
        ours = address_file.exists() and before != address_file.read_text()
        if ours and before is not None:
            address_file.write_text(before)
        elif ours:
            address_file.unlink()
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        print(f"run kept for a look: {tmp}")
        return 1
    print("PASS: every trial once and completed, every (trial_id, epoch) once, "
          f"epochs 1..{MAX_EPOCHS} each, run finished")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
