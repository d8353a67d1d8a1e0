"""ImageFolder on real data that is not CIFAR-10 (scikit-learn's handwritten
digits, written as PNGs): layouts, class order, channels, sizes, and the errors
a user's folder can cause."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.data import ImageFolder, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.errors import UsageError
from tests.digits import digits, write_digits_folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_digits_folder(tmp_path_factory.mktemp("digits") / "digits", 400)


def assert_nothing_cached(cache: Path) -> None:
    assert not cache.exists() or list(cache.iterdir()) == [], "a half-written cache entry"


def rows(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, int]]:
    """The (pixels, label) pairs, in an order that does not depend on decoding."""
    return sorted((np.ascontiguousarray(im).tobytes(), int(y)) for im, y in zip(images, labels))


def test_grayscale_digits_decode_to_one_channel_with_their_labels_and_statistics(folder):
    spec = ImageFolder(str(folder)).prepare(None, None, None, 0)
    data = open_split(spec)
    images, labels = digits(400)
    assert data.images.shape == (400, 8, 8, 1) and data.images.dtype == np.uint8
    assert rows(data.images[..., 0], data.labels) == rows(images, labels)
    info = data.info
    assert (info.num_classes, info.channels, info.image_size) == (10, 1, (8, 8))
    assert info.class_names == tuple(str(d) for d in range(10))
    assert info.mean == pytest.approx([images.mean() / 255])
    assert info.std == pytest.approx([images.std() / 255])
    assert spec.record() == {"source": f"imagefolder:{folder}", "train_size": 360,
                             "val_size": 40, "num_classes": 10,
                             "class_names": [str(d) for d in range(10)], "channels": 1,
                             "image_size": [8, 8], "mean": [info.mean[0]],
                             "std": [info.std[0]]}


def test_class_ids_follow_the_sorted_class_names(tmp_path):
    images, labels = digits(30)
    names = {0: "zebra", 1: "apple", 2: "Mango"}  # sorted: Mango, apple, zebra
    for i, (image, label) in enumerate(zip(images, labels)):
        if label in names:
            (tmp_path / "f" / names[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "f" / names[label] / f"{i}.png")
    data = open_split(ImageFolder(str(tmp_path / "f")).prepare(None, None, None, 0))
    assert data.info.class_names == ("Mango", "apple", "zebra")
    expected = {0: 2, 1: 1, 2: 0}  # digit -> class id
    kept = np.isin(labels, list(names))
    assert rows(data.images[..., 0], data.labels) == \
        rows(images[kept], np.array([expected[y] for y in labels[kept]]))


def test_a_root_relative_to_the_data_directory_and_a_home_relative_one(folder, monkeypatch):
    spec = ImageFolder(folder.name).prepare(str(folder.parent), None, None, 0)
    assert spec.where == f"imagefolder:{folder}"
    monkeypatch.setenv("HOME", str(folder.parent))
    assert ImageFolder(f"~/{folder.name}").prepare("/nowhere", None, None, 0).where == \
        spec.where


def test_train_and_val_folders_make_the_validation_split(tmp_path):
    write_digits_folder(tmp_path / "d" / "train", 300)
    write_digits_folder(tmp_path / "d" / "val", 100, offset=300)
    for source in (ImageFolder(str(tmp_path / "d")),
                   ImageFolder(str(tmp_path / "d" / "train"), val_dir=str(tmp_path / "d" / "val"))):
        spec = source.prepare(None, None, None, 0)
        data = open_split(spec)
        assert spec.sizes == (300, 100)
        val_images, val_labels = digits(100, offset=300)
        assert rows(data.images[data.val_idx][..., 0], data.labels[data.val_idx]) == \
            rows(val_images, val_labels)


def test_a_validation_class_unknown_to_training_is_an_error(tmp_path):
    write_digits_folder(tmp_path / "d" / "train", 100)
    write_digits_folder(tmp_path / "d" / "val" / "eleven", 1)  # val/eleven/0/0.png
    (tmp_path / "d" / "val" / "eleven" / "0" / "0.png").rename(
        tmp_path / "d" / "val" / "eleven" / "0.png")
    with pytest.raises(UsageError, match="class 'eleven' is not one of the training classes"):
        ImageFolder(str(tmp_path / "d")).prepare(None, None, None, 0)


def test_a_test_folder_is_the_test_split(tmp_path):
    write_digits_folder(tmp_path / "d", 200)
    write_digits_folder(tmp_path / "d" / "test", 50, offset=200)
    source = ImageFolder(str(tmp_path / "d"))
    spec = source.prepare(None, None, None, 0)
    assert spec.info.class_names == tuple(str(d) for d in range(10))  # test/ is no class
    test = source.test_data(None)
    assert test is not None and len(test.val_idx) == 50 and test.info == spec.info
    assert rows(test.images[..., 0], test.labels) == rows(*digits(50, offset=200))


def _two_sizes(root: Path) -> tuple[Path, Path]:
    images, _ = digits(20)
    for i, image in enumerate(images):
        (root / str(i % 2)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(i % 2) / f"{i}.png")
    big = root / "1" / "big.png"
    Image.fromarray(np.kron(images[0], np.ones((2, 2), np.uint8))).save(big)  # 16x16
    return root / "0" / "0.png", big


def test_images_of_two_sizes_name_two_files_and_image_size_resizes_them(tmp_path, cache):
    small, big = _two_sizes(tmp_path / "f")
    with pytest.raises(UsageError) as err:
        ImageFolder(str(tmp_path / "f")).prepare(None, None, None, 0)
    message = str(err.value)
    assert str(small) in message and str(big) in message and "image_size=" in message
    assert_nothing_cached(cache)
    data = open_split(ImageFolder(str(tmp_path / "f"), image_size=(12, 10))
                      .prepare(None, None, None, 0))
    assert data.images.shape == (21, 12, 10, 1) and data.info.image_size == (12, 10)
    expected = np.asarray(Image.open(big).resize((10, 12), Image.Resampling.BILINEAR))
    assert any(np.array_equal(im[..., 0], expected) for im in data.images)


def test_colour_palette_and_alpha_images_decode_to_rgb(tmp_path):
    images, _ = digits(12)
    rgb = np.stack([images, 255 - images, images // 2], axis=-1)  # (12, 8, 8, 3)
    for i in range(12):
        (tmp_path / "f" / str(i % 3)).mkdir(parents=True, exist_ok=True)
        path = tmp_path / "f" / str(i % 3) / f"{i}.png"
        kind = i % 4
        if kind == 0:
            Image.fromarray(rgb[i]).save(path)  # RGB
        elif kind == 1:
            alpha = np.full((8, 8, 1), 128, np.uint8)
            Image.fromarray(np.concatenate([rgb[i], alpha], -1)).save(path)  # RGBA
        elif kind == 2:
            Image.fromarray(rgb[i]).quantize(16).save(path)  # palette ("P")
        else:
            Image.fromarray(images[i]).save(path)  # grayscale, in a colour folder
    data = open_split(ImageFolder(str(tmp_path / "f")).prepare(None, None, None, 0))
    assert data.images.shape == (12, 8, 8, 3) and data.info.channels == 3
    decoded = {np.ascontiguousarray(im).tobytes() for im in data.images}
    for i in range(12):
        with Image.open(tmp_path / "f" / str(i % 3) / f"{i}.png") as im:
            expected = np.asarray(im.convert("RGB"))  # alpha dropped, palette expanded
        assert expected.tobytes() in decoded
    gray = np.repeat(images[3][..., None], 3, axis=-1)  # grayscale: the same in each channel
    assert gray.tobytes() in decoded


def test_16_bit_grayscale_is_scaled_down_not_clipped(tmp_path):
    images, _ = digits(10)
    for i, image in enumerate(images):
        (tmp_path / "f" / str(i % 2)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint16) * 257).save(tmp_path / "f" / str(i % 2) /
                                                            f"{i}.png")
    data = open_split(ImageFolder(str(tmp_path / "f")).prepare(None, None, None, 0))
    assert data.images.dtype == np.uint8 and data.images.max() == images.max()
    assert rows(data.images[..., 0], data.labels) == rows(images, np.arange(10) % 2)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_image_is_named_and_nothing_is_cached(tmp_path, cache, damage):
    write_digits_folder(tmp_path / "f", 30)
    bad = tmp_path / "f" / "3" / "bad.png"
    if damage == "garbage":
        bad.write_bytes(b"not an image at all")
    else:  # a valid header, then the pixel data cut short
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)) \
            .resize((8, 8)).save(bad)
        data = (tmp_path / "f" / "3" / "bad.png").read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(UsageError, match=f"cannot read image {bad}.*fix or remove it"):
        ImageFolder(str(tmp_path / "f")).prepare(None, None, None, 0)
    assert_nothing_cached(cache)


def test_one_class_no_images_and_a_missing_folder_are_usage_errors(tmp_path):
    write_digits_folder(tmp_path / "one", 30)
    for d in (tmp_path / "one").iterdir():
        if d.name != "7":
            for f in d.iterdir():
                f.unlink()
            d.rmdir()
    with pytest.raises(UsageError, match="one class only \\(7\\); a classifier needs at least"):
        ImageFolder(str(tmp_path / "one")).prepare(None, None, None, 0)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds no images in class folders"):
        ImageFolder(str(tmp_path / "empty")).prepare(None, None, None, 0)
    with pytest.raises(UsageError, match=f"no image folder {tmp_path / 'nowhere'}"):
        ImageFolder("nowhere").prepare(str(tmp_path), None, None, 0)
    assert not (tmp_path / "nowhere").exists()  # never filled with a download
