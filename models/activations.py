"""Activation functions by name: the table every built-in model builds its
nonlinearities from, and the config's `activation` is checked against.

A leaf: it imports no model module (models and the config both import it)."""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "IN_PLACE", "make_activation"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01
    "prelu": nn.PReLU,  # one learned negative slope per module, from 0.25
    "gelu": nn.GELU,  # exact (erf), as airbench
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# those that may overwrite their input (inplace=True, which saves a tensor per layer):
# their backward needs only their output
IN_PLACE = frozenset({"relu", "leaky_relu"})


def make_activation(name: str, *, inplace: bool = False) -> nn.Module:
    """A fresh module of the activation `name` (PReLU's slope is its own), in place
    where asked and the activation allows it (IN_PLACE); an unknown name is a
    ValueError listing the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    module_class = ACTIVATIONS[name]
    return module_class(inplace=True) if inplace and name in IN_PLACE else module_class()
