"""Batched augmentation on tensors (N, C, H, W): no per-image Python, no PIL."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` pixels and crop back to the original size at a
    random offset per image. Images sharing an offset are copied together:
    2 * (2 * padding + 1) slice copies per batch instead of a per-pixel gather."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, span, (n,), generator=generator).to(x.device)
    padded = F.pad(x, (padding,) * 4)
    rows = torch.empty((n, c, h, w + 2 * padding), dtype=x.dtype, device=x.device)
    for offset in range(span):
        sel = dy == offset
        rows[sel] = padded[sel, :, offset:offset + h, :]
    out = torch.empty_like(x)
    for offset in range(span):
        sel = dx == offset
        out[sel] = rows[sel, :, :, offset:offset + w]
    return out


def random_flip(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability `prob`."""
    if prob == 0:
        return x
    flip = (torch.rand(x.shape[0], generator=generator) < prob).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, *, crop_padding: int, flip_prob: float,
            generator: torch.Generator) -> torch.Tensor:
    return random_flip(random_crop(x, crop_padding, generator), flip_prob, generator)
