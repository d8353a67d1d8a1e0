"""Segmentation folders of a user's own masks: each mask coding decodes to the
right class indices, ignored pixels stay ignored, a validation folder is the
validation split, sizes default sensibly, and bad masks name their file. The
folders are built from scikit-learn's real handwritten digits."""

import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.data.seg_folder import (
    SegDataset,
    load_pairs,
    open_seg,
    prepare,
    split_slices,
)
from pipelines.data.seg_masks import IGNORE
from pipelines.errors import UsageError

NAMES = ("background", "ink")
# how each coding writes background, ink and the ignored rim of a stroke
GREYS = (0, 255, 128)
COLOURS = ((0, 0, 0), (255, 200, 0), (255, 255, 255))
# a palette whose colours, seen as grey, are none of the indices 0 and 1
PALETTE = {0: (200, 30, 30), 1: (30, 30, 200), IGNORE: (0, 255, 0)}
CODINGS: dict[str, dict[str, Any]] = {
    "index": {"mask_mode": "index", "ignore_index": IGNORE},
    "palette": {"mask_mode": "index", "ignore_index": IGNORE},
    "rgb": {"mask_mode": "rgb", "class_values": COLOURS[:2], "ignore_index": COLOURS[2]},
    "values": {"mask_mode": "values", "class_values": GREYS[:2], "ignore_index": GREYS[2]},
}


def digit_pairs(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n digits as 32x32 uint8 images and their masks: 1 = ink (>= 9 of 16),
    0 = background (<= 3), IGNORE = the uncertain rim in between."""
    digits = load_digits().images[start:start + n]  # (n, 8, 8), 0..16
    big = np.kron(digits, np.ones((4, 4)))  # 8x8 -> 32x32, each pixel a 4x4 block
    masks = np.where(big >= 9, 1, np.where(big <= 3, 0, IGNORE)).astype(np.uint8)
    return (big * 255 / 16).round().astype(np.uint8), masks


def _mask_image(mask: np.ndarray, coding: str) -> Image.Image:
    if coding == "index":
        return Image.fromarray(mask)
    if coding == "palette":
        im = Image.frombytes("P", mask.shape[::-1], mask.tobytes())
        palette = np.zeros((256, 3), dtype=np.uint8)
        for index, colour in PALETTE.items():
            palette[index] = colour
        im.putpalette(palette.reshape(-1).tolist())
        return im
    table = np.zeros((256, 3), dtype=np.uint8)  # class index -> colour or grey
    table[[0, 1, IGNORE]] = COLOURS if coding == "rgb" else np.array(GREYS)[:, None]
    coded = table[mask]
    return Image.fromarray(coded if coding == "rgb" else coded[..., 0])


def write_digits(folder, coding: str = "index", n: int = 16, start: int = 0) -> np.ndarray:
    """A segmentation folder of n digits with masks in `coding`; returns the masks
    as class indices."""
    images, masks = digit_pairs(n, start)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray(image).save(folder / "images" / f"{i}.png")
        _mask_image(mask, coding).save(folder / "masks" / f"{i}.png")
    return masks


def digits_dataset(folder, coding: str = "index", **fields) -> SegDataset:
    return SegDataset(str(folder), NAMES, **{**CODINGS[coding], **fields})


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))


@pytest.mark.parametrize("coding", CODINGS)
def test_each_mask_coding_decodes_to_the_class_indices(tmp_path, coding):
    expected = write_digits(tmp_path / coding, coding)
    assert {0, 1, IGNORE} == set(np.unique(expected))  # every kind of pixel is there
    images, masks = load_pairs(tmp_path / coding, digits_dataset(tmp_path / coding, coding))
    assert images.shape == (16, 1, 32, 32) and images.dtype == np.uint8
    assert images[:, 0].tolist() == digit_pairs(16)[0].tolist()
    assert masks.dtype == np.uint8 and masks.tolist() == expected.tolist()


def test_a_palette_mask_is_read_by_index_not_by_colour(tmp_path):
    expected = write_digits(tmp_path / "p", "palette", n=2)
    with Image.open(tmp_path / "p" / "masks" / "0.png") as im:
        assert im.mode == "P"
        as_grey = np.asarray(im.convert("L"))
    assert not set(np.unique(as_grey)) & {0, 1}  # its colours would give other classes
    _, masks = load_pairs(tmp_path / "p", digits_dataset(tmp_path / "p", "palette"))
    assert masks.tolist() == expected.tolist()


def test_without_an_ignore_index_the_rim_is_a_bad_value_naming_the_file(tmp_path):
    write_digits(tmp_path / "d", "index", n=3)
    with pytest.raises(UsageError, match=r"masks/0\.png: mask value 255 is no class index "
                                         r"\(0\.\.1\).*set ignore_index"):
        load_pairs(tmp_path / "d", digits_dataset(tmp_path / "d", ignore_index=None))


def test_an_unknown_colour_names_the_file_and_the_colour(tmp_path):
    write_digits(tmp_path / "d", "rgb", n=2)
    with pytest.raises(UsageError, match=r"masks/0\.png: colour \(255, 255, 255\) is no class"):
        load_pairs(tmp_path / "d", digits_dataset(tmp_path / "d", "rgb", ignore_index=None))


def test_a_colour_mask_read_as_class_indices_is_refused(tmp_path):
    write_digits(tmp_path / "d", "rgb", n=1)
    with pytest.raises(UsageError, match=r"0\.png is a RGB image; .*mask_mode='rgb'"):
        load_pairs(tmp_path / "d", digits_dataset(tmp_path / "d", "index"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("part", ["images", "masks"])
def test_an_unreadable_image_or_mask_is_one_line_naming_the_file(tmp_path, part, damage):
    write_digits(tmp_path / "d", n=3)
    bad = tmp_path / "d" / part / "1.png"
    if damage == "garbage":
        bad.write_bytes(b"not a PNG at all")
    else:  # a valid header, then the pixel data cut short
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(UsageError, match=f"^cannot read image {bad} .*fix or remove it$") as err:
        load_pairs(tmp_path / "d", digits_dataset(tmp_path / "d"))
    assert "\n" not in str(err.value)


def test_values_mode_maps_lossy_greys_to_the_nearest_class_or_ignore(tmp_path):
    write_digits(tmp_path / "d", "values", n=1)
    mask_path = tmp_path / "d" / "masks" / "0.png"
    lossy = np.asarray(Image.open(mask_path)).astype(int) + np.array([-3, 3])[
        np.indices((32, 32)).sum(0) % 2]
    Image.fromarray(lossy.clip(0, 255).astype(np.uint8)).save(mask_path)
    _, masks = load_pairs(tmp_path / "d", digits_dataset(tmp_path / "d", "values"))
    assert masks[0].tolist() == digit_pairs(1)[1][0].tolist()


@pytest.mark.parametrize("fields, problem", [
    ({"mask_mode": "colour"}, "unknown mask_mode 'colour'; known: values, index, rgb"),
    ({"class_names": ("one",)}, "needs 2..255 classes"),
    ({"class_values": (0, 128, 255)}, "one grey level 0..255 per class name"),
    ({"class_values": (0, 0)}, "two classes share a grey level"),
    ({"class_values": (0, 255), "ignore_index": 255}, "a grey level 0..255 that is no class"),
    ({"mask_mode": "index", "class_values": (0, 1)}, "leave class_values out"),
    ({"mask_mode": "index", "ignore_index": 1}, "a pixel value >= 2"),
    ({"mask_mode": "rgb"}, r"one \(r, g, b\) colour of 0..255 per class name"),
    ({"mask_mode": "rgb", "class_values": ((0, 0, 0), (0, 0, 300))}, r"\(r, g, b\) colour"),
    ({"mask_mode": "rgb", "class_values": ((0, 0, 0), (9, 9, 9)), "ignore_index": 9},
     r"an \(r, g, b\) colour that is no class"),
])
def test_a_dataset_that_cannot_be_decoded_is_refused_in_one_line(fields, problem):
    with pytest.raises(ValueError, match=problem) as error:
        SegDataset("mine", **fields)
    assert "\n" not in str(error.value)


def test_values_default_to_black_and_white_and_lists_become_tuples():
    assert SegDataset("mine").coding.class_values is None
    names, colours, ignore = ["a", "b"], [[0, 0, 0], [1, 2, 3]], [9, 9, 9]
    rgb = SegDataset("mine", names, colours, "rgb", ignore)  # type: ignore[arg-type]
    assert rgb.class_values == ((0, 0, 0), (1, 2, 3)) and rgb.ignore_index == (9, 9, 9)
    hash(rgb)  # it travels in the trials' cached data spec


def test_sizes_default_to_all_the_rest_and_a_tenth(tmp_path):
    write_digits(tmp_path / "d", n=16)
    spec = prepare(None, digits_dataset(tmp_path / "d"), None, None, seed=0)
    assert (spec.train_size, spec.val_size) == (14, 2)  # 10% of 16, rounded
    assert prepare(None, digits_dataset(tmp_path / "d"), None, 5, seed=0).train_size == 11
    assert prepare(None, digits_dataset(tmp_path / "d"), 4, None, seed=0).val_size == 2
    assert split_slices(5, None, None, seed=0)[1].size == 1  # at least one
    with pytest.raises(UsageError, match="lower --train-size or --val-size"):
        prepare(None, digits_dataset(tmp_path / "d"), 15, None, seed=0)


def test_a_val_folder_is_the_validation_split(tmp_path):
    write_digits(tmp_path / "train", n=12)
    val_masks = write_digits(tmp_path / "val", n=6, start=100)
    dataset = digits_dataset(tmp_path / "train", val_folder=str(tmp_path / "val"))
    spec = prepare(None, dataset, None, None, seed=0)
    assert (spec.train_size, spec.val_size) == (12, 6)  # all of each folder
    data = open_seg(spec)
    assert data.images[data.train_idx, 0].tolist() == digit_pairs(12)[0].tolist()
    assert data.images[data.val_idx, 0].tolist() == digit_pairs(6, 100)[0].tolist()
    assert data.masks[data.val_idx].tolist() == val_masks.tolist()
    assert data.ignore_index == IGNORE
    some = open_seg(prepare(None, dataset, 5, 2, seed=0))  # seeded subsets of each
    assert len(some.train_idx) == 5 and set(some.val_idx) < set(range(12, 18))
    with pytest.raises(UsageError, match="val_size=7 of 6 validation images"):
        prepare(None, dataset, None, 7, seed=0)


def test_a_val_folder_of_another_size_is_refused(tmp_path):
    write_digits(tmp_path / "train", n=2)
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "masks").mkdir()
    Image.new("L", (16, 16)).save(tmp_path / "val" / "images" / "a.png")
    Image.new("L", (16, 16)).save(tmp_path / "val" / "masks" / "a.png")
    dataset = digits_dataset(tmp_path / "train", val_folder=str(tmp_path / "val"))
    with pytest.raises(UsageError, match=r"val's images are \(1, 16, 16\).*need one size"):
        prepare(None, dataset, None, None, seed=0)


def test_another_mask_coding_decodes_again(tmp_path):
    write_digits(tmp_path / "d", "values", n=2)
    with_rim = prepare(None, digits_dataset(tmp_path / "d", "values"), None, None, 0)
    no_rim = prepare(None, digits_dataset(tmp_path / "d", "values", ignore_index=None),
                     None, None, 0)
    assert with_rim.cache_dir != no_rim.cache_dir
    assert IGNORE not in np.unique(np.load(f"{no_rim.cache_dir}/masks.npy"))


def test_the_record_is_run_json_s_data_section(tmp_path):
    write_digits(tmp_path / "train", "rgb", n=10)
    write_digits(tmp_path / "val", "rgb", n=3)
    dataset = digits_dataset(tmp_path / "train", "rgb", val_folder=str(tmp_path / "val"))
    record = prepare(None, dataset, 8, None, seed=0).record()
    assert json.loads(json.dumps(record)) == {
        "source": str(tmp_path / "train"), "val_source": str(tmp_path / "val"),
        "train_size": 8, "val_size": 3, "class_names": ["background", "ink"],
        "channels": 1, "image_size": [32, 32], "mask_mode": "rgb"}


def test_a_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(UsageError, match="no nowhere in .*point --data-dir"):
        prepare(str(tmp_path), SegDataset("nowhere"), None, None, seed=0)
