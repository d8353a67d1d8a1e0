"""The activation table: names to fresh modules, an unknown name's error lists the known."""

import pytest
import torch
from torch import nn

from models import ACTIVATIONS, head_layers, make_activation


def test_an_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'; known: relu, leaky_relu, "
                                         "prelu, gelu, silu, tanh, sigmoid"):
        make_activation("swish")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_call_is_a_fresh_module_in_place_only_where_it_may_be(name):
    first, second = make_activation(name, inplace=True), make_activation(name, inplace=True)
    assert type(first) is ACTIVATIONS[name] and first is not second
    assert getattr(first, "inplace", False) == (name in ("relu", "leaky_relu"))
    assert not getattr(make_activation(name), "inplace", False)  # by default it never is
    x = torch.linspace(-2, 2, 9)
    assert torch.allclose(first(x.clone()), make_activation(name)(x))  # the same function


def test_prelu_slopes_are_each_modules_own():
    a, b = make_activation("prelu"), make_activation("prelu")
    assert a.weight is not b.weight and isinstance(a, nn.PReLU)


def test_a_negative_fc_width_is_an_error():
    with pytest.raises(ValueError, match="fc_width must be >= 0"):
        head_layers(8, 3, fc_width=-1, dropout=0.0, activation="relu")
