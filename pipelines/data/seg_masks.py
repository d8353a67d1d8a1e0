"""How a segmentation mask's pixels code the classes, and their decoding into
class indices (a SegDataset's `mask_mode`, one entry of MASK_MODES each):

- "values": one grey level per class (`class_values`); each pixel goes to the
  nearest, so slightly lossy masks still map. The default coding: 0 and 255
  for two classes.
- "index": the pixel value is the class index, 0..K-1, in a grey or palette
  PNG (a palette is read by index, not by its colours).
- "rgb": one (r, g, b) colour per class; every pixel must be one of them.

`ignore`, a value (colour) that is no class, marks pixels that neither the
loss nor the metrics count; decoded masks hold IGNORE there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import numpy as np

from pipelines.errors import UsageError

if TYPE_CHECKING:  # PIL is imported where images are decoded, not with this module
    from PIL import Image

IGNORE = 255  # a decoded mask's value at ignored pixels, so at most 255 classes (0..254)
MAX_CLASSES = IGNORE

RGB = tuple[int, int, int]
MaskValue = Union[int, RGB]  # a grey level or class index, or a colour
ClassValues = Union[tuple[int, ...], tuple[RGB, ...]]


@dataclass(frozen=True)
class MaskCoding:
    """How one dataset's masks code its `num_classes` classes: `mode` (a key of
    MASK_MODES), each class's value (None: the mode's default) and the value of
    ignored pixels (None: every pixel is a class)."""

    mode: str
    num_classes: int
    class_values: ClassValues | None = None
    ignore: MaskValue | None = None

    def check(self) -> None:
        """A one-line ValueError if the values do not fit the mode."""
        if self.mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode {self.mode!r}; known: {', '.join(MASK_MODES)}")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"a segmentation dataset needs 2..{MAX_CLASSES} classes, "
                             f"got {self.num_classes} class_names")
        problem = MASK_MODES[self.mode].problem(self)
        if problem:
            raise ValueError(problem)

    def decode(self, im: Image.Image, path: Path) -> np.ndarray:
        """The mask file `path`, opened as `im`: (H, W) uint8 class indices, IGNORE at
        ignored pixels; a UsageError names a pixel value that is no class."""
        return MASK_MODES[self.mode].decode(self, im, path)


@dataclass(frozen=True)
class MaskMode:
    """One way of coding classes in mask pixels."""

    problem: Callable[[MaskCoding], str | None]  # what is wrong with a coding's values
    decode: Callable[[MaskCoding, Image.Image, Path], np.ndarray]


def _is_level(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _is_colour(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and all(map(_is_level, value))


def _grey_levels(coding: MaskCoding) -> tuple[int, ...]:
    """The classes' grey levels in "values" mode: as given, else evenly spaced over
    0..255 (0 and 255 for two classes)."""
    if coding.class_values is not None:  # ints, once check() passed (the filter is for mypy)
        return tuple(v for v in coding.class_values if isinstance(v, int))
    last = coding.num_classes - 1
    return tuple(round(255 * i / last) for i in range(coding.num_classes))


def _values_problem(c: MaskCoding) -> str | None:
    given = c.class_values
    if given is not None and (len(given) != c.num_classes or not all(map(_is_level, given))):
        return "class_values: one grey level 0..255 per class name (mask_mode='values')"
    if len(set(_grey_levels(c))) != c.num_classes:
        return "class_values: two classes share a grey level"
    if c.ignore is not None and (not _is_level(c.ignore) or c.ignore in _grey_levels(c)):
        return "ignore_index: a grey level 0..255 that is no class's value"
    return None


def _index_problem(c: MaskCoding) -> str | None:
    if c.class_values is not None:
        return "mask_mode='index' reads the class from the pixel value; leave class_values out"
    if c.ignore is not None and not (isinstance(c.ignore, int) and c.ignore >= c.num_classes):
        return f"ignore_index: a pixel value >= {c.num_classes} (the number of classes)"
    return None


def _rgb_problem(c: MaskCoding) -> str | None:
    given = c.class_values
    if given is None or len(given) != c.num_classes or not all(map(_is_colour, given)):
        return "class_values: one (r, g, b) colour of 0..255 per class name (mask_mode='rgb')"
    if len(set(given)) != c.num_classes:
        return "class_values: two classes share a colour"
    if c.ignore is not None and (not _is_colour(c.ignore) or c.ignore in given):
        return "ignore_index: an (r, g, b) colour that is no class's colour"
    return None


def _decode_values(c: MaskCoding, im: Image.Image, path: Path) -> np.ndarray:
    levels = [*_grey_levels(c), *([] if c.ignore is None else [c.ignore])]
    targets = np.array([*range(c.num_classes), IGNORE], dtype=np.uint8)[:len(levels)]
    # each distinct grey level of the file to its nearest, looked up for every pixel
    found, where = np.unique(np.asarray(im.convert("L"), dtype=np.int16), return_inverse=True)
    nearest = np.abs(found[:, None] - np.array(levels, dtype=np.int16)).argmin(1)
    return targets[nearest][where].reshape(im.height, im.width)


def _decode_index(c: MaskCoding, im: Image.Image, path: Path) -> np.ndarray:
    if im.mode not in ("1", "L", "P") and not im.mode.startswith("I"):
        raise UsageError(f"{path} is a {im.mode} image; mask_mode='index' needs one class "
                         f"index per pixel (a grey or palette PNG), or use mask_mode='rgb'")
    index = np.asarray(im).astype(np.int64)  # a palette image's array is its indices
    ignored = np.isin(index, [] if c.ignore is None else [c.ignore])
    wrong = (index >= c.num_classes) & ~ignored
    if wrong.any():
        raise UsageError(f"{path}: mask value {index[wrong].flat[0]} is no class index "
                         f"(0..{c.num_classes - 1}); fix the mask or set ignore_index to it")
    return np.where(ignored, IGNORE, index).astype(np.uint8)


def _packed(colours: np.ndarray) -> np.ndarray:
    # (..., 3) uint8 colours as one int each, so they compare and sort as numbers
    rgb = colours.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _decode_rgb(c: MaskCoding, im: Image.Image, path: Path) -> np.ndarray:
    colours = [*(c.class_values or ()), *([] if c.ignore is None else [c.ignore])]
    targets = [*range(c.num_classes), IGNORE][:len(colours)]
    pixels = np.asarray(im.convert("RGB"))
    found, where = np.unique(_packed(pixels).reshape(-1), return_inverse=True)
    lookup = dict(zip(_packed(np.array(colours, dtype=np.uint8)).tolist(), targets))
    unknown = [code for code in found.tolist() if code not in lookup]
    if unknown:
        colour = (unknown[0] >> 16, (unknown[0] >> 8) & 255, unknown[0] & 255)
        raise UsageError(f"{path}: colour {colour} is no class's colour; add it to "
                         f"class_values or set ignore_index={colour}")
    table = np.array([lookup[code] for code in found.tolist()], dtype=np.uint8)
    return table[where].reshape(im.height, im.width)


MASK_MODES: dict[str, MaskMode] = {
    "values": MaskMode(_values_problem, _decode_values),
    "index": MaskMode(_index_problem, _decode_index),
    "rgb": MaskMode(_rgb_problem, _decode_rgb),
}
