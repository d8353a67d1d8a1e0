"""Trainer throughput: our trainer against a minimal hand-written PyTorch loop
on the same model, batch size and data, and against the usual torchvision
pipeline (a CIFAR10-style Dataset of PIL images + transforms + DataLoader).

    python -m bench.throughput [--model simple_cnn] [--batch-size 256] [--train-size 5000]
                               [--rounds 30] [--threads 2] [--workers 2] [--recording]

All three train the same model from the same seed with SGD at the same
learning rate, with random crop (padding 4) and horizontal flip. They run in
lockstep, one epoch each per round (the order rotating), so that the speed of
this VM, which drifts 10-20% over a minute, is the same for the epochs a
round compares. Images/s counts training steps only; the first round is
warm-up. Our trainer runs whole (`pipelines.training.classify.train`, validation and
all) in a thread that pauses at each epoch's report. On a GPU the trainer
keeps the data on the device (its own choice, not set here).

--recording measures what recording the training loss per step window
(steps.parquet) costs instead: our trainer as it runs against the same
trainer recording no windows. Two trainer instances in lockstep differ by
themselves (two identical ones measured 1.15 apart here: where each one's
model and buffers landed), so each round trains a fresh pair instead, one
with windows and one without, in alternating order, and compares their
epochs after the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import statistics
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from pipelines.data.images import ImageInfo, TrainValData, open_split, prepare
from pipelines.training.augmentation import augment
from pipelines.training.classify import train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import LOSS_WINDOWS, Metrics, State, default_device

Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # one epoch, on the device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default="simple_cnn")
    p.add_argument("--width", type=int, default=16, help="the model's width")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-size", type=int, default=5_000)
    p.add_argument("--rounds", type=int, default=30,
                   help="epochs of each, in lockstep, after one warm-up round")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="DataLoader workers for the torchvision pipeline")
    p.add_argument("--recording", action="store_true",
                   help="compare our trainer with and without its step-window recording")
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    return p.parse_args(argv)


def ours(cfg: TrainConfig, data: TrainValData, loss_windows: int = LOSS_WINDOWS
         ) -> Iterator[float]:
    """Images/s of each epoch of our `train`, which runs in a thread that waits at
    each report until the next epoch is asked for."""
    rates: queue.Queue[float | BaseException] = queue.Queue()
    go = threading.Semaphore(0)

    def report(metrics: Metrics, state: State) -> None:
        rates.put(metrics["images_per_s"])
        go.acquire()

    def run() -> None:
        try:
            train(cfg, data, report=report, loss_windows=loss_windows)
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            rates.put(e)

    threading.Thread(target=run, daemon=True).start()
    for _ in range(cfg.epochs):
        rate = rates.get()
        if isinstance(rate, BaseException):
            raise rate
        yield rate
        go.release()


def _model(cfg: TrainConfig, info: ImageInfo,
           device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes=info.num_classes, width=cfg.width,
                        depth=cfg.depth, dropout=cfg.dropout, in_channels=info.channels,
                        image_size=info.image_size).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _epoch_rates(model: torch.nn.Module, opt: torch.optim.Optimizer, epochs: int,
                 batches: Batches) -> Iterator[float]:
    """Train `epochs` passes over `batches()` (each yields (x, y) on the device);
    yield each epoch's images/s, training steps only."""
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for x, y in batches():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        loss.item()
        yield seen / (time.perf_counter() - start)


def minimal_loop(cfg: TrainConfig, data: TrainValData,
                 device: torch.device) -> Iterator[float]:
    """The loop one writes by hand: the split in memory as tensors, index, augment, step."""
    model, opt = _model(cfg, data.info, device)
    images = torch.from_numpy(np.asarray(data.images[data.train_idx])).to(device)
    labels = torch.from_numpy(np.asarray(data.labels[data.train_idx])).to(device)
    mean = torch.tensor(data.info.mean, device=device)[None, :, None, None]
    std = torch.tensor(data.info.std, device=device)[None, :, None, None]
    generator = torch.Generator().manual_seed(cfg.seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(images), generator=generator).to(device)
        for i in range(0, len(images), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = (images[idx].permute(0, 3, 1, 2).float().div_(255) - mean) / std
            yield augment(x, crop_padding=4, flip_prob=0.5, generator=generator), labels[idx]

    return _epoch_rates(model, opt, cfg.epochs, batches)


class PilCifar(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image through transforms
    (the on-disk format differs: ours is Parquet, so it reads our decoded arrays)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 transform: Callable[[Any], torch.Tensor]) -> None:  # a PIL image in
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def torchvision_pipeline(cfg: TrainConfig, data: TrainValData, device: torch.device,
                         workers: int) -> Iterator[float]:
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(data.info.mean, data.info.std)])
    dataset = PilCifar(np.asarray(data.images[data.train_idx]),
                       np.asarray(data.labels[data.train_idx]), transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         pin_memory=device.type == "cuda")
    model, opt = _model(cfg, data.info, device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return _epoch_rates(model, opt, cfg.epochs, batches)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = default_device()
    data = open_split(prepare(args.data_dir, None, args.train_size, 1000, 0))
    cfg = TrainConfig(model=args.model, width=args.width, batch_size=args.batch_size,
                      epochs=args.rounds + 1,
                      optimizer="sgd", lr=0.05 * 256 / args.batch_size, weight_decay=0.0,
                      schedule="constant", crop_padding=4, flip_prob=0.5)
    if args.recording:
        _recording_cost(args, dataclasses.replace(cfg, epochs=RECORDING_EPOCHS), data, device)
        return
    methods = {"ours": ours(cfg, data), "minimal loop": minimal_loop(cfg, data, device),
               "torchvision + DataLoader": torchvision_pipeline(cfg, data, device,
                                                                args.workers)}
    runs = _compare(args, device, methods)
    speedups = [a / b for a, b in zip(runs["ours"], runs["torchvision + DataLoader"])]
    print(f"ours / torchvision + DataLoader: {statistics.median(speedups):.2f}x (quartiles "
          f"{_quartiles(speedups, '.2f')})")


def _compare(args: argparse.Namespace, device: torch.device,
             methods: dict[str, Iterator[float]]) -> dict[str, list[float]]:
    """Run `methods` in lockstep, one epoch each per round; print each one's images/s and
    the first's ratio to the second; returns each one's rates after the warm-up round."""
    names = list(methods)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds + 1):  # rotate the order: none always goes first
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            runs[name].append(next(methods[name]))
    runs = {name: rates[1:] for name, rates in runs.items()}  # round 0 warms up
    print(f"{args.model} (width {args.width}), batch {args.batch_size}, {args.train_size} "
          f"images, {args.threads} threads, {device.type}; images/s, median of {args.rounds} "
          f"lockstep epochs after one warm-up:")
    for name, rates in runs.items():
        print(f"  {name:26s} {statistics.median(rates):10,.0f}   "
              f"(quartiles {_quartiles(rates)})")
    first, second = names[:2]
    ratios = [a / b for a, b in zip(runs[first], runs[second])]
    print(f"{first} / {second}: {statistics.median(ratios):.3f} (median of the rounds' "
          f"ratios; quartiles {_quartiles(ratios, '.3f')})")
    return runs


RECORDING_EPOCHS = 3  # per trainer of a --recording round; the first warms up


def _recording_cost(args: argparse.Namespace, cfg: TrainConfig, data: TrainValData,
                    device: torch.device) -> None:
    """Each round a fresh trainer with step windows and one without, in alternating
    order; print the median images/s of each and of the rounds' ratios."""
    names = {LOSS_WINDOWS: "ours", 0: "ours, no step windows"}
    runs: dict[int, list[float]] = {w: [] for w in names}
    ratios = []
    for round_ in range(args.rounds):
        rates = {}
        for windows in (LOSS_WINDOWS, 0) if round_ % 2 else (0, LOSS_WINDOWS):
            epochs = list(ours(cfg, data, loss_windows=windows))[1:]  # the first warms up
            rates[windows] = statistics.mean(epochs)
            runs[windows].append(rates[windows])
        ratios.append(rates[LOSS_WINDOWS] / rates[0])
    print(f"{args.model} (width {args.width}), batch {args.batch_size}, {args.train_size} "
          f"images, {args.threads} threads, {device.type}; images/s, median of {args.rounds} "
          f"rounds of a fresh trainer each ({RECORDING_EPOCHS - 1} epochs after a warm-up):")
    for windows, name in names.items():
        print(f"  {name:26s} {statistics.median(runs[windows]):10,.0f}   "
              f"(quartiles {_quartiles(runs[windows])})")
    print(f"ours / ours, no step windows: {statistics.median(ratios):.3f} (median of the "
          f"rounds' ratios; quartiles {_quartiles(ratios, '.3f')})")


def _quartiles(values: list[float], fmt: str = ",.0f") -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{q1:{fmt}} - {q3:{fmt}}"


if __name__ == "__main__":
    main()
