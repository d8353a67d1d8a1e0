"""Images to one uint8 array (N, H, W, C), every image of a split decoded alike.

Grayscale stays one channel and colour becomes RGB (alpha dropped, a palette
expanded); a split that mixes the two is RGB throughout. 16-bit grayscale is
scaled down to 8 bits, not clipped. The images must share one size unless a
size is given to resize them to (once, here: bilinear, antialiased). Sizes and
modes are read from the headers first, so the output is allocated once, at
its final shape, and may be a memory map being written to the cache.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, Union

import numpy as np

from pipelines.errors import UsageError

if TYPE_CHECKING:  # PIL is imported where images are decoded, not with this module
    from PIL import Image

# a file, an encoded image (PNG, JPEG, ... bytes), or pixels (H, W) / (H, W, 3) uint8
ImageItem = Union[Path, bytes, np.ndarray]
Allocate = Callable[[tuple[int, int, int, int]], np.ndarray]  # shape -> a writable array
# the file names read as images, by every source of image files
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
PROGRESS_EVERY_S = 5.0  # seconds between progress lines while decoding


@dataclass
class Listing:
    """A split's images before decoding, with their labels and class names."""

    names: list[str]  # one per image, for messages: a file, or a Parquet file and row
    items: list[ImageItem]
    labels: np.ndarray  # (N,) int64 class ids, indices into class_names
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    def then(self, other: Listing) -> Listing:
        """This listing followed by `other` (of the same classes)."""
        return Listing(self.names + other.names, self.items + other.items,
                       np.concatenate([self.labels, other.labels]), self.class_names)


def decode(names: Sequence[str], items: Sequence[ImageItem], *, size: tuple[int, int] | None,
           resize: bool, channels: int | None = None, allocate: Allocate | None = None
           ) -> np.ndarray:
    """Decode `items` into one (N, H, W, C) uint8 array (from `allocate(shape)` if given).
    `size` (H, W): every image's size, resized to it when `resize`, else required
    (None: the first image's); `channels`: 1 or 3 (None: 3 if any image is colour)."""
    from PIL import Image

    if not items:
        raise ValueError("nothing to decode")
    headers = [_header(name, item) for name, item in zip(names, items)]
    if not resize:
        expected = size or headers[0][0]
        for name, (hw, _) in zip(names, headers):
            if hw != expected:
                first = f"the training images are {_hw(expected)}" if size else \
                    f"{names[0]} is {_hw(expected)}"
                raise UsageError(f"images differ in size: {first}, {name} is {_hw(hw)}; pass "
                                 f"image_size=(H, W) to resize them all to one size")
        size = expected
    assert size is not None
    channels = channels or (3 if any(colour for _, colour in headers) else 1)
    out = (allocate or (lambda shape: np.empty(shape, np.uint8)))((len(items), *size, channels))
    progress = _Progress(len(items))
    for i, (name, item) in enumerate(zip(names, items)):
        with open_image(name, item) as im:
            pixels = as_uint8(im, name, channels)
        if pixels.shape[:2] != size:  # resize (not reached unless `resize`); PIL takes (W, H)
            pixels = np.asarray(Image.fromarray(pixels).resize(
                (size[1], size[0]), Image.Resampling.BILINEAR))
        out[i] = pixels.reshape(*size, channels)
        progress.update(i + 1)
    return out


def _hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]} (HxW)"


def _header(name: str, item: ImageItem) -> tuple[tuple[int, int], bool]:
    """(H, W) and whether the image is colour, from its header alone."""
    if isinstance(item, np.ndarray):
        return (item.shape[0], item.shape[1]), item.ndim == 3
    with open_image(name, item) as im:
        return (im.height, im.width), im.mode not in GRAY_MODES


def open_image(name: str, item: ImageItem, *, load: bool = False) -> Image.Image:
    """`item` opened (its header read; its pixels too if `load`); a one-line UsageError
    naming `name` if it is no image or its pixel data is damaged."""
    from PIL import Image

    try:
        if isinstance(item, np.ndarray):
            return Image.fromarray(item)
        im = Image.open(item if isinstance(item, Path) else io.BytesIO(item))
    except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise _unreadable(name, e) from None
    if load:
        try:
            im.load()
        except OSError as e:  # truncated or corrupt pixel data
            im.close()
            raise _unreadable(name, e) from None
    return im


def as_uint8(im: Image.Image, name: str, channels: int | None = None) -> np.ndarray:
    """The pixels as (H, W) (channels 1) or (H, W, 3) uint8; channels None: 1 for a
    grayscale image, else 3. 16-bit grayscale is scaled down, not clipped."""
    from PIL import Image

    channels = channels or (1 if im.mode in GRAY_MODES else 3)
    try:
        im.load()
        if im.mode.startswith("I;16") or im.mode == "I":
            im = Image.fromarray((np.asarray(im, np.float64) / 65535 * 255).round()
                                 .clip(0, 255).astype(np.uint8))
        elif im.mode == "F":
            raise UsageError(f"{name} is a floating-point image; convert it to 8 or 16 bits")
        return np.asarray(im.convert("L" if channels == 1 else "RGB"))
    except OSError as e:
        raise _unreadable(name, e) from None


def _unreadable(name: str, e: Exception) -> UsageError:
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return UsageError(f"cannot read image {name} ({first_line}); fix or remove it")


class _Progress:
    """A line on stderr every few seconds of a long decode, and one at its end."""

    def __init__(self, total: int) -> None:
        self.total, self.start = total, time.monotonic()
        self.last = self.start

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or (done == self.total
                                                   and now - self.start >= PROGRESS_EVERY_S):
            self.last = now
            print(f"  decoded {done:,}/{self.total:,} images ({done / self.total:.0%}, "
                  f"{now - self.start:.0f} s)", file=sys.stderr, flush=True)
