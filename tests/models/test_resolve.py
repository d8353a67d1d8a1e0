"""Model names to factories: import paths, and arguments taken from a factory's signature."""

import pytest
from torch import nn

from models import build_model, check_model, model_keys
from pipelines.training.config import TrainConfig

USER = "tests.models.user_models"


def build(name, **kw):
    args = {"num_classes": 10, "width": 16, "depth": None, "dropout": 0.0, **kw}
    return build_model(name, **args)


def test_a_factory_gets_the_arguments_its_signature_names():
    # tiny_net(num_classes, in_channels, image_size, width=16): no depth, no dropout
    model = build(f"{USER}:tiny_net", num_classes=3, in_channels=1, image_size=(8, 6), width=4,
                  dropout=0.5)
    conv, linear = model[0], model[3]
    assert conv.weight.shape == (4, 1, 3, 3)  # width, in_channels
    assert (linear.in_features, linear.out_features) == (4 * 8 * 6, 3)  # image_size, classes
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_depth_none_keeps_the_factorys_default_and_a_depth_reaches_it():
    def convs(model):
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())

    assert convs(build(f"{USER}:stacked_net", depth=None)) == 3
    assert convs(build(f"{USER}:stacked_net", depth=5)) == 5


def test_a_depth_for_a_factory_without_depth_is_an_error():
    with pytest.raises(ValueError, match="takes no depth"):
        build(f"{USER}:tiny_net", depth=4)


def test_a_factory_without_num_classes_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"no_classes.*'num_classes'.*in_channels, image_size"):
        build(f"{USER}:no_classes")


def test_a_factory_requiring_an_unknown_parameter_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"needs_foo.* requires 'foo'.*num_classes"):
        build(f"{USER}:needs_foo")


@pytest.mark.parametrize("name,message", [
    ("tests.models.missing_module:f", "cannot import module 'tests.models.missing_module'"),
    (f"{USER}:missing", f"module '{USER}' has no attribute 'missing'"),
    (f"{USER}:NOT_A_FACTORY", "has a non-callable 'NOT_A_FACTORY'"),
    (":tiny_net", "not an import path"),
])
def test_an_import_path_that_does_not_resolve_is_a_one_line_error(name, message):
    with pytest.raises(ValueError, match=message) as error:
        check_model(name)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=message):
        build(name)


def test_check_model_accepts_every_kind_of_name():
    for name in ("resnet", f"{USER}:tiny_net", "torchvision:resnet18"):
        check_model(name, "classification")
    check_model("unet", "segmentation")


def test_check_model_rejects_a_model_of_another_task():
    with pytest.raises(ValueError, match="known segmentation models: unet"):
        check_model("resnet", "segmentation")
    with pytest.raises(ValueError, match="is a classification model"):
        check_model("torchvision:resnet18", "segmentation")


def test_a_config_validates_its_model_by_check_model():
    TrainConfig(model=f"{USER}:tiny_net").validate()
    TrainConfig(model="torchvision:resnet18").validate()
    with pytest.raises(ValueError, match="needs_foo"):
        TrainConfig(model=f"{USER}:needs_foo").validate()
    with pytest.raises(ValueError, match="unknown model 'vgg99'"):
        TrainConfig.from_dict({"model": "vgg99"})


ALL_KEYS = {"width", "depth", "dropout", "activation", "fc_width"}


@pytest.mark.parametrize("name,task,keys", [
    ("resnet", "classification", ALL_KEYS),
    ("unet", "segmentation", ALL_KEYS - {"fc_width"}),  # no classification head
    (f"{USER}:tiny_net", None, {"width"}),  # no depth, no dropout in its signature
    (f"{USER}:stacked_net", None, {"depth"}),
    (f"{USER}:activated_net", None, {"activation"}),
    (f"{USER}:any_args_net", None, ALL_KEYS),  # **kwargs takes them all
    ("torchvision:resnet18", "classification", set()),
    ("torchvision:vit_b_32", None, set()),  # its dropout is the builder's own
])
def test_model_keys_names_the_width_depth_and_dropout_a_model_takes(name, task, keys):
    assert model_keys(name, task) == frozenset(keys)


def activation_types(model):
    return {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.Tanh, nn.GELU))}


def test_a_factory_naming_activation_gets_it_and_none_keeps_its_own():
    assert activation_types(build(f"{USER}:activated_net", activation="gelu")) == {nn.GELU}
    assert activation_types(build(f"{USER}:activated_net")) == {nn.Tanh}  # None: its own


@pytest.mark.parametrize("key,value,fix", [
    ("activation", "gelu", r"takes no activation; got activation='gelu', leave activation unset"),
    ("fc_width", 16, r"takes no fc_width; got fc_width=16, leave fc_width at 0"),
])
def test_a_model_key_for_a_factory_without_it_is_a_one_line_error(key, value, fix):
    with pytest.raises(ValueError, match=fix) as error:
        build(f"{USER}:tiny_net", **{key: value})
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=f"'torchvision:resnet18' {fix}"):
        check_model("torchvision:resnet18", "classification", **{key: value})
    with pytest.raises(ValueError, match=f"'torchvision:resnet18' {fix}"):  # the config says so
        TrainConfig(model="torchvision:resnet18", **{key: value}).validate()
    # the "unset" values are fine for it, as for every model
    TrainConfig(model="torchvision:resnet18", activation=None, fc_width=0).validate()


def test_model_keys_of_a_name_that_does_not_resolve_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown model 'vgg99'") as error:
        model_keys("vgg99")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="known segmentation models: unet"):
        model_keys("resnet", "segmentation")
