import torch

from pipelines.training.augmentation import random_crop, random_flip


def _images(n=64):
    return torch.arange(n * 3 * 8 * 8, dtype=torch.float32).reshape(n, 3, 8, 8)


def test_crop_is_a_shift_of_the_zero_padded_image():
    x = _images()
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert matches, f"image {i} is not a crop of its padded self"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets vary per image, not once per batch


def test_crop_without_padding_is_identity():
    x = _images(4)
    assert random_crop(x, 0, torch.Generator()) is x


def test_flip_probability_extremes_and_mix():
    x = _images()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_flip(x, 0.0, g), x)
    assert torch.equal(random_flip(x, 1.0, g), x.flip(3))
    mixed = random_flip(x, 0.5, g)
    flipped = sum(torch.equal(mixed[i], x[i].flip(2)) for i in range(len(x)))
    assert 10 < flipped < 54
