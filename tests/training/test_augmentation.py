import pytest
import torch

from pipelines.training.augmentation import (
    augment,
    jitter_intensity,
    jitter_normalised,
    random_crop,
    random_flip,
    scale_intensity,
)


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


# ---- brightness and contrast of normalised classification batches ----

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)  # per channel, as a split's ImageInfo
M, S = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]


def _intensities(n=2000, low=0.2, high=0.6, seed=0):
    """Images (n, 3, 8, 8) of intensities in [low, high], and the batch the trainer
    sees of them: normalised by MEAN and STD."""
    u = low + (high - low) * torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return u, (u - M) / S


def _jittered(x, **amounts):
    out = augment(x, crop_padding=0, flip_prob=0.0, mean=MEAN, std=STD,
                  generator=torch.Generator().manual_seed(1), **amounts)
    return out * S + M  # back to intensities


def _check_uniform(factors, amount):
    assert factors.min() >= 1 - amount - 1e-5 and factors.max() <= 1 + amount + 1e-5
    assert factors.min() < 1 - 0.9 * amount and factors.max() > 1 + 0.9 * amount
    assert factors.mean() == pytest.approx(1, abs=0.02)
    assert factors.std() == pytest.approx(amount / 3 ** 0.5, rel=0.1)  # a uniform's


def test_brightness_multiplies_each_images_intensity_by_one_uniform_factor():
    u, x = _intensities()
    out = _jittered(x, brightness=0.3)
    ratio = out / u
    factors = ratio.mean(dim=(1, 2, 3))
    assert torch.allclose(ratio, factors[:, None, None, None], atol=1e-4)  # one per image
    _check_uniform(factors, 0.3)


def test_contrast_scales_each_images_deviations_from_its_mean_and_keeps_the_mean():
    u, x = _intensities()
    out = _jittered(x, contrast=0.4)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), u.mean(dim=(1, 2, 3)), atol=1e-5)
    deviation = u - u.mean(dim=(1, 2, 3), keepdim=True)
    factors = (out.std(dim=(1, 2, 3)) / u.std(dim=(1, 2, 3)))
    assert torch.allclose(out - out.mean(dim=(1, 2, 3), keepdim=True),
                          deviation * factors[:, None, None, None], atol=1e-4)
    _check_uniform(factors, 0.4)


def test_jitter_clamps_to_the_intensity_range_of_real_images():
    u, x = _intensities(200, low=0.0, high=1.0)
    out = _jittered(x, brightness=0.9, contrast=0.9)
    assert out.min() >= -1e-5 and out.max() <= 1 + 1e-5
    assert (out > 1 - 1e-5).any() and (out < 1e-5).any()  # it did clamp


def test_zero_brightness_and_contrast_are_the_identity_and_draw_nothing():
    _, x = _intensities(8)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment(x, crop_padding=0, flip_prob=0.0, generator=generator) is x
    assert jitter_normalised(x, brightness=0.0, contrast=0.0, mean=MEAN, std=STD,
                             generator=generator) is x
    assert torch.equal(generator.get_state(), state)  # crop and flip draw as before


def test_jitter_needs_the_batchs_normalisation():
    _, x = _intensities(8)
    with pytest.raises(ValueError, match="need the batch's normalisation"):
        augment(x, crop_padding=0, flip_prob=0.0, brightness=0.2,
                generator=torch.Generator())


def test_jitter_comes_before_the_crop_so_padding_stays_the_mean_colour():
    _, x = _intensities(64)
    out = augment(x, crop_padding=3, flip_prob=0.0, brightness=0.5, contrast=0.5,
                  mean=MEAN, std=STD, generator=torch.Generator().manual_seed(0))
    border = torch.cat([out[..., 0, :], out[..., -1, :]], dim=-1)
    assert (border == 0).any()  # padded rows: exactly the normalised mean, unjittered


def test_segmentations_jitter_is_scale_intensity_with_one_amount_for_both():
    u, _ = _intensities(16)
    a = jitter_intensity(u, 0.2, torch.Generator().manual_seed(5))
    b = scale_intensity(u, contrast=0.2, brightness=0.2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
