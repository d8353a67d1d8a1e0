"""Data start-up and memory: how long a trial takes to get its data once the
per-machine cache exists, and how much memory N concurrent trials' data take.

    python -m bench.data_startup [--train-size 45000] [--val-size 5000] [--trials 1 2 4]

Start-up is timed in fresh processes (as a new trial worker would be), from
"open the split" to "first batch in hand", with the imports done before the
clock starts; the median of 5 is reported. For memory, N processes each open
the split and read every training image once; the proportional set size (PSS)
of the cache file's mapping, summed over the N processes, is the memory their
data really takes (pages shared by k processes count 1/k in each).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from pipelines.data.images import DataSpec

STARTUP_RUNS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.data_startup",
                                description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=45_000)
    p.add_argument("--val-size", type=int, default=5_000)
    p.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    return p.parse_args(argv)


def _startup(spec: DataSpec, out: Queue[tuple[float, int]]) -> None:
    import numpy as np
    import torch  # noqa: F401  (a trial worker has it imported already)

    from pipelines.data.images import open_split

    start = time.perf_counter()
    data = open_split(spec)
    rows = np.sort(data.train_idx[:256])
    batch = np.asarray(data.images[rows])
    out.put((time.perf_counter() - start, batch.shape[0]))


def _mapped_pss_kib(path: str) -> int:
    """PSS of this process's mappings of `path`, in KiB (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5:  # a mapping's header
            inside = line.rstrip().endswith(path)
        elif inside and line.startswith("Pss:"):
            total += int(line.split()[1])
    return total


def _read_all(spec: DataSpec, ready: Barrier, done: Barrier, out: Queue[int]) -> None:
    import numpy as np

    from pipelines.data.images import open_split

    data = open_split(spec)
    total = 0
    for i in range(0, len(data.train_idx), 4096):
        total += int(np.asarray(data.images[np.sort(data.train_idx[i:i + 4096])]).sum() > 0)
    ready.wait()  # every process has read its data: now the pages are shared
    out.put(_mapped_pss_kib(_images_file(spec)))
    done.wait()


def _images_file(spec: DataSpec) -> str:
    return os.path.join(spec.cache, "images.npy")  # the cache entry's layout (image_cache)


def memory(spec: DataSpec, n: int) -> float:
    """MiB of the image cache's mapping, summed (PSS) over n processes."""
    ctx = mp.get_context("spawn")
    ready, done, out = ctx.Barrier(n + 1), ctx.Barrier(n + 1), ctx.Queue()
    procs = [ctx.Process(target=_read_all, args=(spec, ready, done, out)) for _ in range(n)]
    for p in procs:
        p.start()
    ready.wait()
    pss = [out.get(timeout=300) for _ in range(n)]
    done.wait()
    for p in procs:
        p.join()
    return sum(pss) / 1024


def main(argv: list[str] | None = None) -> None:
    from pipelines.data.images import prepare

    args = parse_args(argv)
    spec = prepare(args.data_dir, None, args.train_size, args.val_size, 0)
    ctx = mp.get_context("spawn")
    times = []
    for _ in range(STARTUP_RUNS):
        out = ctx.Queue()
        p = ctx.Process(target=_startup, args=(spec, out))
        p.start()
        seconds, _ = out.get(timeout=300)
        p.join()
        times.append(seconds)
    pool_mib = os.path.getsize(_images_file(spec)) / 2 ** 20
    print(f"data start-up ({args.train_size} / {args.val_size} split of the cached pool): "
          f"median {statistics.median(times):.3f} s of {STARTUP_RUNS} fresh processes "
          f"(min {min(times):.3f}, max {max(times):.3f})")
    print(f"image cache file: {pool_mib:.0f} MiB (the training images are "
          f"{args.train_size * 3072 / 2 ** 20:.0f} MiB of it)")
    for n in args.trials:
        total = memory(spec, n)
        print(f"{n} concurrent trial(s): {total:.0f} MiB of image data in memory (PSS, summed), "
              f"{total / n:.0f} MiB per trial")


if __name__ == "__main__":
    main()
