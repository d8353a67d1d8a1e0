"""Batched augmentation on tensors (N, C, H, W): no per-image Python, no PIL."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["augment", "augment_pairs", "flip_pairs", "jitter_intensity", "jitter_normalised",
           "random_crop", "random_flip", "rotate_pairs", "scale_intensity"]


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator,
                mode: str = "constant") -> torch.Tensor:
    """Pad by `padding` pixels (zeros, or torch.nn.functional.pad's `mode`:
    reflect, replicate) and crop back to the original size at a random offset per
    image. Images sharing an offset are copied together: 2 * (2 * padding + 1)
    slice copies per batch instead of a per-pixel gather."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, span, (n,), generator=generator).to(x.device)
    padded = F.pad(x, (padding,) * 4, mode=mode)
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


def scale_intensity(x: torch.Tensor, *, contrast: float, brightness: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Scale each image's contrast (its deviations from its mean over channels and
    pixels) by a factor uniform in [1 - contrast, 1 + contrast], then its brightness
    (every intensity) by one in [1 - brightness, 1 + brightness]; `x` in [0, 1],
    clamped back to it. Both 0: `x` itself, and no random numbers drawn."""
    if contrast == 0 and brightness == 0:
        return x
    n = x.shape[0]
    amounts = torch.tensor([contrast, brightness])[:, None]
    factors = (1 + amounts * (2 * torch.rand(2, n, generator=generator) - 1))
    contrast_factor, brightness_factor = factors.to(x.device)[:, :, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (((x - mean) * contrast_factor + mean) * brightness_factor).clamp_(0, 1)


def jitter_normalised(x: torch.Tensor, *, brightness: float, contrast: float,
                      mean: Sequence[float], std: Sequence[float],
                      generator: torch.Generator) -> torch.Tensor:
    """scale_intensity of a normalised batch, x = (u - mean) / std per channel with u
    the intensity in [0, 1]: the jitter acts on u (brightness multiplies the
    intensity, contrast scales it around the image's mean intensity, and the result
    is clamped to [0, 1]), and the batch is normalised again, so the jitter means
    what it does on raw images. Both 0: `x` itself."""
    if contrast == 0 and brightness == 0:
        return x
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    intensity = scale_intensity(x * s + m, contrast=contrast, brightness=brightness,
                                generator=generator)
    return (intensity - m) / s


def augment(x: torch.Tensor, *, crop_padding: int, flip_prob: float,
            generator: torch.Generator, padding_mode: str = "constant",
            brightness: float = 0.0, contrast: float = 0.0,
            mean: Sequence[float] | None = None, std: Sequence[float] | None = None
            ) -> torch.Tensor:
    """A classification batch's augmentation: brightness and contrast jitter (of a
    batch normalised by per-channel `mean` and `std`, which the jitter needs:
    jitter_normalised), then a random crop, then a random flip. The jitter comes
    first, so a crop's zero padding stays the training images' mean colour. The
    crop pads with `padding_mode` (random_crop)."""
    if brightness or contrast:
        if mean is None or std is None:
            raise ValueError("brightness and contrast jitter need the batch's normalisation: "
                             "pass the per-channel mean and std it was normalised by")
        x = jitter_normalised(x, brightness=brightness, contrast=contrast, mean=mean, std=std,
                              generator=generator)
    return random_flip(random_crop(x, crop_padding, generator, padding_mode), flip_prob,
                       generator)


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
    [1 - amount, 1 + amount]; `x` in [0, 1], clamped back to it (scale_intensity)."""
    return scale_intensity(x, contrast=amount, brightness=amount, generator=generator)


def augment_pairs(x: torch.Tensor, masks: torch.Tensor, *, flip_prob: float,
                  rot90_prob: float, jitter: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mild, anatomy-preserving augmentation: flips, right-angle rotations and
    intensity jitter; no warps, no scaling."""
    x, masks = flip_pairs(x, masks, flip_prob, 3, generator)
    x, masks = flip_pairs(x, masks, flip_prob, 2, generator)
    x, masks = rotate_pairs(x, masks, rot90_prob, generator)
    return jitter_intensity(x, jitter, generator), masks
