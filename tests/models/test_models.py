"""Every registered model: builds, runs forward and backward, gives finite gradients,
with every activation; every classifier's head takes a hidden layer (fc_width)."""

import pytest
import torch
from torch import nn

from models import ACTIVATIONS, build_model, model_names


@pytest.mark.parametrize("name", model_names("classification"))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_forward_backward_finite(name, dropout):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, width=8, depth=None, dropout=dropout)
    x = torch.randn(4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", model_names("classification"))
@pytest.mark.parametrize("classes", [3, 10])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 17, 23)])
def test_classification_models_take_any_channels_classes_and_image_size(name, classes, shape):
    torch.manual_seed(0)
    channels, height, width = shape
    model = build_model(name, num_classes=classes, width=4, depth=None, dropout=0.0,
                        in_channels=channels, image_size=(height, width))
    logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, classes)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# Parameter counts of the 3x32x32, 10-class networks, computed with the code before
# models took any image size (issue 14): CIFAR results depend on these being unchanged.
CIFAR_PARAMETERS = [
    ("simple_cnn", 8, None, 20_714), ("simple_cnn", 16, None, 41_418),
    ("plain_cnn", 8, None, 6_418), ("plain_cnn", 8, 5, 99_922), ("plain_cnn", 32, 3, 94_762),
    ("resnet", 8, 8, 19_954), ("resnet", 16, 20, 272_474),
    ("airbench", 8, None, 33_176), ("airbench", 64, None, 1_972_792),
]


@pytest.mark.parametrize("name,width,depth,parameters", CIFAR_PARAMETERS)
def test_the_cifar_networks_are_unchanged(name, width, depth, parameters):
    model = build_model(name, num_classes=10, width=width, depth=depth, dropout=0.0)
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_width_and_depth_change_the_model():
    def size(**kw):
        model = build_model(kw.pop("name"), num_classes=10, dropout=0.0, **kw)
        return sum(p.numel() for p in model.parameters())

    assert size(name="plain_cnn", width=16, depth=2) < size(name="plain_cnn", width=16, depth=4)
    assert size(name="resnet", width=8, depth=8) < size(name="resnet", width=8, depth=14)
    assert size(name="simple_cnn", width=8, depth=None) < size(name="simple_cnn", width=16,
                                                                depth=None)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="known models: .*resnet"):
        build_model("vgg99", num_classes=10, width=8, depth=None, dropout=0.0)


@pytest.mark.parametrize("name,depth", [("resnet", 10), ("simple_cnn", 3), ("plain_cnn", 9),
                                        ("airbench", 3)])
def test_invalid_depth_is_an_error(name, depth):
    with pytest.raises(ValueError, match="depth"):
        build_model(name, num_classes=10, width=8, depth=depth, dropout=0.0)


@pytest.mark.parametrize("name", model_names("segmentation"))
@pytest.mark.parametrize("classes,channels", [(2, 1), (4, 4)])
@pytest.mark.parametrize("size", [(32, 32), (37, 50), (5, 3)])
def test_segmentation_logits_match_the_input_size(name, classes, channels, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=classes, width=4, depth=3, dropout=0.2,
                        in_channels=1)
    x = torch.randn(2, 1, *size)
    logits = model(x)
    assert logits.shape == (2, channels, *size)  # binary: one logit per pixel
    logits.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_unet_depth_and_width_change_the_model():
    def size(**kw):
        model = build_model("unet", num_classes=2, dropout=0.0, in_channels=1, **kw)
        return sum(p.numel() for p in model.parameters())

    assert size(width=8, depth=3) < size(width=8, depth=5) < size(width=16, depth=5)
    with pytest.raises(ValueError, match="depth"):
        build_model("unet", num_classes=2, width=8, depth=9, dropout=0.0)


ACTIVATION_CLASSES = tuple(ACTIVATIONS.values())
OWN_ACTIVATION = {"airbench": nn.GELU}  # the others' own: nn.ReLU


def tiny(name, **kw):
    """`name` built small: 4 channels wide, for 1x8x8 images of 3 classes."""
    task = "segmentation" if name in model_names("segmentation") else "classification"
    return build_model(name, num_classes=3, width=4, depth=None, in_channels=1,
                       image_size=(8, 8), task=task, **{"dropout": 0.0, **kw})


def activation_classes(model):
    return {type(m) for m in model.modules() if isinstance(m, ACTIVATION_CLASSES)}


@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
@pytest.mark.parametrize("name", model_names())
def test_every_model_trains_with_every_activation(name, activation):
    torch.manual_seed(0)
    model = tiny(name, activation=activation)
    expected = ACTIVATIONS[activation] if activation else OWN_ACTIVATION.get(name, nn.ReLU)
    assert activation_classes(model) == {expected}  # every nonlinearity is the one asked for
    out = model(torch.randn(2, 1, 8, 8))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if activation == "prelu":  # its slopes are parameters, and learn
        slopes = [m.weight.grad for m in model.modules() if isinstance(m, nn.PReLU)]
        assert slopes and any(g is not None and g.abs().sum() > 0 for g in slopes)


def _forward_order(model, x):
    """The modules that ran in model(x), in the order they ran (leaves only)."""
    ran = []
    hooks = [m.register_forward_hook(lambda m, args, out: ran.append(m))
             for m in model.modules() if not list(m.children())]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return ran


@pytest.mark.parametrize("name", model_names("classification"))
def test_fc_width_adds_a_hidden_layer_with_the_dropout_after_it(name):
    torch.manual_seed(0)
    model = tiny(name, fc_width=12, dropout=0.25, activation="silu")
    ran = _forward_order(model, torch.randn(2, 1, 8, 8))
    linear, act, dropout, classifier = ran[-4:]
    assert isinstance(linear, nn.Linear) and linear.out_features == 12
    assert isinstance(act, nn.SiLU)
    assert isinstance(dropout, nn.Dropout) and dropout.p == 0.25
    assert isinstance(classifier, nn.Linear) and (classifier.in_features,
                                                  classifier.out_features) == (12, 3)
    # the config's dropout sits in the head only, after every convolution
    assert [m for m in ran if isinstance(m, nn.Dropout)] == [dropout]
    assert max(i for i, m in enumerate(ran) if isinstance(m, nn.Conv2d)) < ran.index(linear)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert linear.weight.grad is not None and torch.isfinite(linear.weight.grad).all()


@pytest.mark.parametrize("name", model_names("classification"))
def test_without_fc_width_the_dropout_is_right_before_the_classifier(name):
    model = tiny(name, dropout=0.25)
    ran = _forward_order(model, torch.randn(2, 1, 8, 8))
    assert [type(m) for m in ran[-2:]] == [nn.Dropout, nn.Linear]
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
