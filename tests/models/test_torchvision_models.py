"""torchvision models by name: any channel count and class count, and they train."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from models import build_model, check_model

SHAPES = [(1, 28, 28), (3, 32, 32)]  # MNIST-like grayscale; CIFAR-like colour


def resnet18(classes, channels):
    return build_model("torchvision:resnet18", num_classes=classes, width=16, depth=None,
                       dropout=0.0, in_channels=channels)


def first_conv(model):
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def digits(shape, count):
    """`count` real handwritten digits (scikit-learn's 8x8, 0..16) as uint8 0..255,
    resized to `shape`'s H x W and repeated over its channels, in 0..1; and labels."""
    data = load_digits()
    pixels = torch.tensor(data.images[:count] * 255 / 16).round().to(torch.uint8)
    channels, height, width = shape
    images = F.interpolate(pixels[:, None].float() / 255, size=(height, width),
                           mode="bilinear", align_corners=False)
    return images.expand(-1, channels, -1, -1).contiguous(), torch.tensor(data.target[:count])


@pytest.mark.parametrize("classes", [3, 10])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_torchvision_model_takes_the_images_channels_and_classes(shape, classes):
    torch.manual_seed(0)
    model = resnet18(classes, shape[0])
    assert first_conv(model).in_channels == shape[0]
    logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, classes)
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_an_unknown_torchvision_model_says_how_to_list_the_names():
    with pytest.raises(ValueError, match=r"unknown torchvision model 'nope'.*list_models"):
        check_model("torchvision:nope")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_torchvision_model_trains_one_epoch_on_real_digits(shape):
    torch.manual_seed(0)
    images, labels = digits(shape, count=512)
    model = resnet18(10, shape[0])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]

    def dataset_loss():  # mean loss over the data, batch statistics as in training
        with torch.no_grad():
            return F.cross_entropy(model(images), labels).item()

    start = dataset_loss()
    for batch in torch.randperm(len(images)).split(32):  # one epoch
        optimizer.zero_grad()
        F.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    assert dataset_loss() < 0.5 * start  # about 0.1 * start in practice
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_a_vit_is_built_for_the_images_size():
    torch.manual_seed(0)  # vit_b_32: 88M parameters, about 0.7 s to build on a CPU
    model = build_model("torchvision:vit_b_32", num_classes=4, width=16, depth=None, dropout=0.0,
                        in_channels=1, image_size=(32, 32))  # torchvision's default: 224
    images, _ = digits((1, 32, 32), count=2)
    with torch.no_grad():
        assert model(images).shape == (2, 4)


def test_a_vit_for_images_that_are_not_square_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"'vit_b_32' takes square images only.*got 32x48") as e:
        build_model("torchvision:vit_b_32", num_classes=4, width=16, depth=None, dropout=0.0,
                    image_size=(32, 48))
    assert "\n" not in str(e.value)
