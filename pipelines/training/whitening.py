"""airbench's frozen first layer: a convolution that whitens the training images'
patches (Keller Jordan 2024, after Page's and tysam-code's CIFAR-10 speedruns).

The patch covariance of (a sample of) the training images, patches the size of
the model's first convolution's kernel with d = channels x height x width
values, has eigenvectors v_i and eigenvalues l_i. Filter i is v_i / sqrt(l_i +
eps), so the layer's outputs over the training patches have (near) the identity
covariance. A layer of m <= d filters takes the m of largest eigenvalue; one of
d < m <= 2d filters takes all d and then the first m - d of them negated (airbench:
24 = 2 x 12 for 2x2 RGB patches), so a ReLU-like activation after it keeps both
signs. The bias centres the outputs. The weights are frozen; the bias trains."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MOMENT_BATCH", "WHITEN_EPS", "WHITEN_IMAGES", "first_conv", "patch_moments",
           "whiten_first_conv"]

WHITEN_EPS = 5e-4  # added to each eigenvalue (airbench's), in the normalised images' units^2
WHITEN_IMAGES = 5000  # training images whose patches estimate the covariance (airbench's)
MOMENT_BATCH = 256  # images unfolded at once: memory stays that of 256 images' patches


def first_conv(model: nn.Module) -> nn.Conv2d:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"whiten needs a model with a convolution; {type(model).__name__} has "
                     f"none: turn whiten off")


@torch.no_grad()
def patch_moments(images: torch.Tensor | Iterable[torch.Tensor], kernel: tuple[int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (d) and covariance (d x d, over n, not n - 1) of every kernel-sized
    patch of `images` (N, C, H, W, or an iterable of such batches), in float64 on
    the images' device, summed MOMENT_BATCH images at a time: memory holds one
    batch's patches whatever N or the image size. Each batch is centred on the first
    batch's mean before it is summed (no cancellation when the mean is large
    against the spread)."""
    chunks = images.split(MOMENT_BATCH) if isinstance(images, torch.Tensor) else images
    shift: torch.Tensor | None = None
    total = outer = torch.zeros((), dtype=torch.float64)  # broadcast up by the first batch
    n = 0
    for chunk in chunks:
        patches = F.unfold(chunk.double(), kernel)
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        if shift is None:
            shift = patches.mean(0)
        patches = patches - shift
        total = total + patches.sum(0)
        outer = outer + patches.T @ patches
        n += len(patches)
    if shift is None or n == 0:
        raise ValueError("whiten needs training images: none were given")
    mean = total / n
    return shift + mean, outer / n - torch.outer(mean, mean)


@torch.no_grad()
def whiten_first_conv(model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor], *,
                      eps: float = WHITEN_EPS) -> nn.Conv2d:
    """Set the first convolution of `model` to whiten the patches of `images`
    (N, C, H, W: normalised as the model sees them; or an iterable of such
    batches, read once), freeze its weights, and return it. ValueError (one
    line) if the layer's shape cannot hold the whitening: at most 2d output
    channels, no groups, no dilation."""
    conv = first_conv(model)
    kh, kw = conv.kernel_size
    d = conv.in_channels * kh * kw
    m = conv.out_channels
    if conv.groups != 1 or conv.dilation != (1, 1) or m > 2 * d:
        raise ValueError(f"whiten needs a first convolution of at most {2 * d} output channels "
                         f"(2 x patches of {conv.in_channels}x{kh}x{kw} values), no groups or "
                         f"dilation; {type(model).__name__}'s has {m} (airbench's fits RGB "
                         f"images): use another model, or turn whiten off")
    mean, cov = patch_moments(images, (kh, kw))
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + eps)[:, None]
    filters = torch.cat([filters, -filters])[:m]
    weight = filters.reshape(m, conv.in_channels, kh, kw)
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is not None:
        conv.bias.copy_((-filters @ mean).to(conv.bias.dtype))
    conv.weight.requires_grad_(False)
    return conv
