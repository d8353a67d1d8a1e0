"""The trainer's configs: the trainer's knobs (issue 17) validated, one line per error,
each naming its key; their defaults keep today's training."""

import pytest

from pipelines.training.config import SegConfig, TrainConfig


@pytest.mark.parametrize("bad,message", [
    ({"beta2": 1.0}, r"beta2 must be in \[0, 1\)"),
    ({"beta2": -0.1}, r"beta2 must be in \[0, 1\)"),
    ({"step_size": -1.0}, "step_size must be >= 0 epochs"),
    ({"gamma": 0.0}, r"gamma must be in \(0, 1\]"),
    ({"gamma": 2.0}, r"gamma must be in \(0, 1\]"),
    ({"plateau_factor": 1.0}, r"plateau_factor must be in \(0, 1\)"),
    ({"plateau_factor": 0.0}, r"plateau_factor must be in \(0, 1\)"),
    ({"plateau_patience": -1}, "plateau_patience must be >= 0 epochs"),
    ({"activation": "swish"}, "unknown activation 'swish'; known: None, relu, leaky_relu, "
                              "prelu, gelu, silu, tanh, sigmoid"),
    ({"brightness": 1.0}, r"brightness must be in \[0, 1\)"),
    ({"brightness": -0.1}, r"brightness must be in \[0, 1\)"),
    ({"contrast": 1.0}, r"contrast must be in \[0, 1\)"),
    ({"fc_width": -1}, "fc_width must be >= 0 units"),
])
def test_a_bad_value_is_a_one_line_error_naming_its_key(bad, message):
    with pytest.raises(ValueError, match=message) as error:
        TrainConfig.from_dict(bad)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("good", [
    {"optimizer": "adam", "beta2": 0.95}, {"optimizer": "adamw", "beta2": 0.0},
    # sgd ignores beta2, so that a sweep may search the optimizer and beta2 together
    {"optimizer": "sgd", "beta2": 0.95},
    {"schedule": "step", "step_size": 2.5, "gamma": 0.5},
    {"schedule": "plateau", "plateau_factor": 0.5, "plateau_patience": 0},
    {"activation": "prelu"}, {"brightness": 0.4, "contrast": 0.2}, {"fc_width": 128},
])
def test_good_values_validate(good):
    TrainConfig.from_dict(good)


@pytest.mark.parametrize("activation", ["gelu", "leaky_relu", None])
def test_a_segmentation_config_takes_an_activation_but_no_classification_knob(activation):
    SegConfig.from_dict({"activation": activation})
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        SegConfig.from_dict({"activation": "swish"})
    for key in ("fc_width", "brightness", "contrast"):  # classification's
        with pytest.raises(ValueError, match=f"unknown config key.*{key}"):
            SegConfig.from_dict({key: 1})


def test_the_defaults_are_todays_training():
    cfg = TrainConfig()
    assert (cfg.beta2, cfg.step_size, cfg.gamma) == (0.999, 0.0, 0.1)
    assert (cfg.plateau_factor, cfg.plateau_patience) == (0.1, 2)
    assert (cfg.activation, cfg.fc_width, cfg.brightness, cfg.contrast) == (None, 0, 0.0, 0.0)
    assert cfg.model_values() == {"width": 16, "depth": None, "dropout": 0.0,
                                  "activation": None, "fc_width": 0}
    assert "fc_width" not in SegConfig().model_values()
