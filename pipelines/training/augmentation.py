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
    """A classification batch's augmentation: a random crop, then a random flip."""
    return random_flip(random_crop(x, crop_padding, generator), flip_prob, generator)


# ---- segmentation: an image batch (N, C, H, W) and its masks (N, H, W) together ----


def flip_pairs(x: torch.Tensor, masks: torch.Tensor, prob: float, dim: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror each pair along image dimension `dim` (3: left-right, 2: up-down)."""
    if prob == 0:
        return x, masks
    flip = (torch.rand(x.shape[0], generator=generator) < prob).to(x.device)
    return (torch.where(flip[:, None, None, None], x.flip(dim), x),
            torch.where(flip[:, None, None], masks.flip(dim - 1), masks))


def rotate_pairs(x: torch.Tensor, masks: torch.Tensor, prob: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each square pair by 90, 180 or 270 degrees with probability `prob`."""
    if prob == 0 or x.shape[-1] != x.shape[-2]:
        return x, masks
    turns = torch.randint(1, 4, (x.shape[0],), generator=generator)
    turns[torch.rand(x.shape[0], generator=generator) >= prob] = 0
    x, masks = x.clone(), masks.clone()
    for k in (1, 2, 3):
        sel = (turns == k).to(x.device)
        if sel.any():
            x[sel] = torch.rot90(x[sel], k, dims=(2, 3))
            masks[sel] = torch.rot90(masks[sel], k, dims=(1, 2))
    return x, masks


def jitter_intensity(x: torch.Tensor, amount: float, generator: torch.Generator
                     ) -> torch.Tensor:
    """Scale each image's contrast (around its mean) and brightness by factors in
    [1 - amount, 1 + amount]; `x` in [0, 1], clamped back to it."""
    if amount == 0:
        return x
    n = x.shape[0]
    contrast, brightness = (1 + amount * (2 * torch.rand(2, n, generator=generator) - 1)) \
        .to(x.device)[:, :, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (((x - mean) * contrast + mean) * brightness).clamp_(0, 1)


def augment_pairs(x: torch.Tensor, masks: torch.Tensor, *, flip_prob: float,
                  rot90_prob: float, jitter: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mild, anatomy-preserving augmentation: flips, right-angle rotations and
    intensity jitter; no warps, no scaling."""
    x, masks = flip_pairs(x, masks, flip_prob, 3, generator)
    x, masks = flip_pairs(x, masks, flip_prob, 2, generator)
    x, masks = rotate_pairs(x, masks, rot90_prob, generator)
    return jitter_intensity(x, jitter, generator), masks
