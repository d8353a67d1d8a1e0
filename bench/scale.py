"""What a long sweep costs the driver: 10,000 trials of a trivial user trainable
(three reports each, a sweep file outside this repository) and 1,000 trials of
the built-in trainer, each run as a user runs it (`python -m pipelines.run`, an
embedded Ray at the machine's concurrency, no early stopping).

Printed, per workload: wall time against the theoretical minimum (the trials' own
busy seconds spread over the concurrency, plus Ray's start-up), the overhead per
trial, the driver's resident memory and the run directory's size at every 1,000
finished trials (every tenth of a shorter run; checkpoints apart), and the time the
driver spent writing the results (run.json's "result_writes"). Ray's own release
test, for comparison: 10,000 one-second trials on 16 CPUs in 715 s against 625 s
(1.14x).

    python -m bench.scale                      # both workloads (~15 min on 2 cores)
    python -m bench.scale --trivial 2000 --builtin 0
    python -m bench.scale --smoke-test         # 200 trivial trials, 50 built-in
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

TRIVIAL_SWEEP = '''
"""A trivial user trainable: three reports, each saying how long the trial has
been busy so far outside report(), which waits for the driver (bench/scale.py's
theoretical minimum)."""
import time

from pipelines import Budget, LogUniform, Sweep


def train(config, report, resume_state=None):
    busy, start = 0.0, time.perf_counter()
    for step in range(3):
        busy += time.perf_counter() - start
        report({"loss": config["lr"] * (3 - step), "busy_s": busy})
        start = time.perf_counter()


SWEEP = Sweep(
    description="bench/scale.py: a trivial trainable",
    trainable=train, metric="loss", mode="min",
    space={"lr": LogUniform(1e-4, 1.0)},
    quick=Budget(num_samples=10, max_epochs=3),
    full=Budget(num_samples=10, max_epochs=3),
)
'''
PROGRESS = re.compile(r"trials: (\d+)/(\d+) done")
EVERY = 1000  # trials between samples (a tenth of a shorter run's)


@dataclass
class Sample:
    trials: int
    at_s: float
    rss_mb: float
    run_dir_mb: float
    checkpoint_mb: float


@dataclass
class Outcome:
    name: str
    trials: int
    concurrency: int
    wall_s: float = 0.0
    minimum_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    writes: dict[str, float] = field(default_factory=dict)
    tune_state_mb: float = 0.0
    returncode: int = 0

    @property
    def overhead_per_trial_s(self) -> float:
        return (self.wall_s - self.minimum_s) / self.trials

    @property
    def rss_growth_mb_per_1000(self) -> float:
        """The slope of the driver's RSS after the first sample past the start (Ray's
        and the first trials' warm-up)."""
        points = [s for s in self.samples if s.trials > 0 and s.rss_mb == s.rss_mb]
        if len(points) < 2 or points[-1].trials == points[0].trials:
            return float("nan")
        first, last = points[0], points[-1]
        return (last.rss_mb - first.rss_mb) / (last.trials - first.trials) * 1000


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sizes_mb(root: Path) -> tuple[float, float]:
    """The directory's bytes in all, and those under checkpoint_* directories."""
    total = checkpoints = 0
    for path, _, files in os.walk(root):
        size = sum(_size(Path(path) / f) for f in files)
        total += size
        if "/checkpoint_" in path + "/":
            checkpoints += size
    return total / 2**20, checkpoints / 2**20


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # written and deleted while we walked
        return 0


def run(name: str, sweep: str, trials: int, args: list[str], storage: Path,
        concurrency: int) -> Outcome:
    """One workload's sweep as a subprocess, sampled as it runs."""
    outcome = Outcome(name, trials, concurrency)
    run_dir = storage / Path(sweep).stem / name
    cmd = [sys.executable, "-m", "pipelines.run", sweep, "--algo", "random",
           "--scheduler", "none", "--num-samples", str(trials), "--storage", str(storage),
           "--name", name, *args]
    print(f"{name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = [0]
    tail: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if match := PROGRESS.search(line):
                done[0] = int(match.group(1))
            else:
                tail.append(line)
                del tail[:-20]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    every = min(EVERY, max(1, trials // 10))
    next_sample = every
    while proc.poll() is None:
        time.sleep(0.2)
        if done[0] >= next_sample or (done[0] == 0 and not outcome.samples):
            total, checkpoints = sizes_mb(run_dir) if run_dir.exists() else (0.0, 0.0)
            outcome.samples.append(Sample(done[0], time.monotonic() - start, rss_mb(proc.pid),
                                          total, checkpoints))
            print(f"  {done[0]:6d} trials  {time.monotonic() - start:7.1f} s  driver "
                  f"{outcome.samples[-1].rss_mb:6.0f} MB  run dir {total:7.1f} MB "
                  f"(checkpoints {checkpoints:.1f})", file=sys.stderr, flush=True)
            while next_sample <= done[0]:
                next_sample += every
    outcome.wall_s = time.monotonic() - start
    reader.join(timeout=5)
    outcome.returncode = proc.returncode
    if proc.returncode != 0:
        print("".join(tail), file=sys.stderr)
        return outcome
    total, checkpoints = sizes_mb(run_dir)
    outcome.samples.append(Sample(done[0], outcome.wall_s, float("nan"), total, checkpoints))
    outcome.writes = json.loads((run_dir / "run.json").read_text()).get("result_writes", {})
    outcome.tune_state_mb = sum(p.stat().st_size for p in (run_dir / "tune").glob(
        "experiment_state-*.json")) / 2**20
    outcome.minimum_s = _minimum(run_dir, concurrency) + ray_start_s()
    return outcome


def _minimum(run_dir: Path, concurrency: int) -> float:
    """The trials' own busy seconds over the concurrency: a trivial trial's
    `busy_s` at its last report, a built-in one's epochs' epoch_s."""
    epochs = pd.read_parquet(run_dir / "epochs.parquet")
    if "busy_s" in epochs:
        busy = epochs.groupby("trial_id")["busy_s"].max().sum()
    else:
        busy = epochs["epoch_s"].sum()
    return float(busy) / concurrency


def ray_start_s() -> float:
    """An embedded Ray's start-up and shutdown, measured once here."""
    if not hasattr(ray_start_s, "value"):
        code = "import time,ray;t=time.monotonic();ray.init(include_dashboard=False);" \
               "ray.shutdown();print(time.monotonic()-t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        ray_start_s.value = float(out.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    return float(ray_start_s.value)  # type: ignore[attr-defined]


def report(outcomes: list[Outcome]) -> str:
    """A markdown table of the workloads, then each one's samples."""
    lines = ["| workload | trials | wall s | minimum s | ratio | overhead per trial s | "
             "driver RSS growth MB per 1,000 | run dir MB (checkpoints) | Tune state MB | "
             "result writes (s in all, longest) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        if o.returncode:
            lines.append(f"| {o.name} | {o.trials} | failed (exit {o.returncode}) |"
                         + " |" * 7)
            continue
        last = o.samples[-1]
        w = o.writes
        lines.append(
            f"| {o.name} | {o.trials:,} | {o.wall_s:.0f} | {o.minimum_s:.0f} | "
            f"{o.wall_s / o.minimum_s:.2f}x | {o.overhead_per_trial_s:.3f} | "
            f"{o.rss_growth_mb_per_1000:.1f} | {last.run_dir_mb:.0f} ({last.checkpoint_mb:.1f}) | "
            f"{o.tune_state_mb:.1f} | {w.get('writes', 0):.0f} ({w.get('write_s', 0):.1f} s, "
            f"{w.get('max_write_s', 0):.3f} s) |")
    for o in outcomes:
        lines += ["", f"{o.name}: trials done, seconds, driver RSS MB, run dir MB (checkpoints)"]
        lines += [f"  {s.trials:6d} {s.at_s:7.1f} {s.rss_mb:7.0f} {s.run_dir_mb:8.1f} "
                  f"({s.checkpoint_mb:.1f})" for s in o.samples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial", type=int, default=10_000, help="trivial trials")
    parser.add_argument("--builtin", type=int, default=1_000, help="built-in trainer trials")
    parser.add_argument("--storage", default=None, help="results root (default: a temp dir)")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke_test:
        args.trivial, args.builtin = 200, 50
    concurrency = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="raysweep-scale-") as tmp:
        storage = Path(args.storage or tmp)
        sweep = Path(tmp) / "trivial_sweep.py"  # a sweep file outside this repository
        sweep.write_text(textwrap.dedent(TRIVIAL_SWEEP))
        outcomes = []
        if args.trivial:
            outcomes.append(run("trivial", str(sweep), args.trivial, [], storage, concurrency))
        if args.builtin:
            outcomes.append(run("builtin", "cifar_sweep", args.builtin,
                                ["--quick", "--max-epochs", "1", "--train-size", "300",
                                 "--val-size", "100"], storage, concurrency))
        print(report(outcomes))
    return max((o.returncode for o in outcomes), default=0)


if __name__ == "__main__":
    sys.exit(main())
