"""Trainer throughput: our trainer against a minimal hand-written PyTorch loop
on the same model, batch size and data, and against the usual torchvision
pipeline (a CIFAR10-style Dataset of PIL images + transforms + DataLoader).

    python -m bench.throughput [--model simple_cnn] [--batch-size 256] [--train-size 10000]
                               [--epochs 3] [--threads 2] [--workers 2] [--repeats 5]

All three train the same model from the same seed with SGD at the same
learning rate, with random crop (padding 4) and horizontal flip. Images/s is
measured over the epochs after the first (warm-up), training steps only. The
three alternate for `--repeats` rounds (this VM's speed drifts 10-15%), and
the median of the per-round ratios is reported. On a GPU the trainer keeps
the data on the device (its own choice, not set here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from pipelines.augment import augment
from pipelines.config import TrainConfig
from pipelines.data import MEAN, NUM_CLASSES, STD, DataSpec, ensure_cache, open_split
from pipelines.trainer import default_device, train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default="simple_cnn")
    p.add_argument("--width", type=int, default=16, help="the model's width")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="DataLoader workers for the torchvision pipeline")
    p.add_argument("--repeats", type=int, default=5, help="rounds of all three, alternating")
    p.add_argument("--data-dir", default=os.environ.get("RAYSWEEP_DATA_DIR", "../shared/data"))
    return p.parse_args(argv)


def ours(cfg: TrainConfig, data) -> float:
    rates = []
    train(cfg, data, report=lambda metrics, state: rates.append(metrics["images_per_s"]))
    return float(np.mean(rates[1:]))


def _model(cfg: TrainConfig, device):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes=NUM_CLASSES, width=cfg.width, depth=cfg.depth,
                        dropout=cfg.dropout).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def _images_per_s(model, opt, epochs: int, batches) -> float:
    """Train `epochs` passes over `batches()` (each yields (x, y) on the device);
    images/s over every epoch but the first, training steps only."""
    rates = []
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
        rates.append(seen / (time.perf_counter() - start))
    return float(np.mean(rates[1:]))


def minimal_loop(cfg: TrainConfig, data, device) -> float:
    """The loop one writes by hand: the split in memory as tensors, index, augment, step."""
    model, opt = _model(cfg, device)
    images = torch.from_numpy(np.asarray(data.images[data.train_idx])).to(device)
    labels = torch.from_numpy(np.asarray(data.labels[data.train_idx])).to(device)
    mean = torch.tensor(MEAN, device=device)[None, :, None, None]
    std = torch.tensor(STD, device=device)[None, :, None, None]
    generator = torch.Generator().manual_seed(cfg.seed)

    def batches():
        order = torch.randperm(len(images), generator=generator).to(device)
        for i in range(0, len(images), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = (images[idx].permute(0, 3, 1, 2).float().div_(255) - mean) / std
            yield augment(x, crop_padding=4, flip_prob=0.5, generator=generator), labels[idx]

    return _images_per_s(model, opt, cfg.epochs, batches)


class PilCifar(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image through transforms
    (the on-disk format differs: ours is Parquet, so it reads our decoded arrays)."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def torchvision_pipeline(cfg: TrainConfig, data, device, workers: int) -> float:
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = PilCifar(np.asarray(data.images[data.train_idx]),
                       np.asarray(data.labels[data.train_idx]), transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         pin_memory=device.type == "cuda")
    model, opt = _model(cfg, device)

    def batches():
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return _images_per_s(model, opt, cfg.epochs, batches)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = default_device()
    cache, source = ensure_cache(Path(args.data_dir))
    data = open_split(DataSpec(cache, args.train_size, 1000, 0, source))
    cfg = TrainConfig(model=args.model, width=args.width, batch_size=args.batch_size,
                      epochs=args.epochs,
                      optimizer="sgd", lr=0.05 * 256 / args.batch_size, weight_decay=0.0,
                      schedule="constant", crop_padding=4, flip_prob=0.5)
    methods = {"ours": lambda: ours(cfg, data),
               "minimal loop": lambda: minimal_loop(cfg, data, device),
               "torchvision + DataLoader": lambda: torchvision_pipeline(cfg, data, device,
                                                                        args.workers)}
    runs = {name: [] for name in methods}
    for repeat in range(args.repeats):  # alternate the order: the VM's speed drifts
        for name in (list(methods) if repeat % 2 == 0 else list(methods)[::-1]):
            runs[name].append(methods[name]())
    print(f"{args.model}, batch {args.batch_size}, {args.train_size} images, {args.threads} "
          f"threads, {device.type}; images/s over epochs 2..{args.epochs}, median of "
          f"{args.repeats}:")
    for name, rates in runs.items():
        print(f"  {name:26s} {statistics.median(rates):10,.0f}   "
              f"({', '.join(f'{r:,.0f}' for r in rates)})")
    ratios = [a / b for a, b in zip(runs["ours"], runs["minimal loop"])]
    speedups = [a / b for a, b in zip(runs["ours"], runs["torchvision + DataLoader"])]
    print(f"ours / minimal loop:             {statistics.median(ratios):.3f} (median of "
          f"per-repeat ratios: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"ours / torchvision + DataLoader: {statistics.median(speedups):.2f}x")

if __name__ == "__main__":
    main()
