"""The classification head every built-in classifier ends with: dropout and a
linear classifier on the pooled features, optionally after one hidden fully
connected layer (`fc_width`). Dropout sits on these features, never on
convolutions."""

from __future__ import annotations

from torch import nn

from models.activations import make_activation

__all__ = ["head_layers"]


def head_layers(in_features: int, num_classes: int, *, fc_width: int, dropout: float,
                activation: str, bias: bool = True) -> list[nn.Module]:
    """The head's layers on `in_features` features, the classifier last:
    [Dropout, Linear] with `fc_width` 0, else [Linear(fc_width), activation,
    Dropout, Linear]. `bias`: the classifier's (the hidden layer has one)."""
    if fc_width < 0:
        raise ValueError(f"fc_width must be >= 0 units (0 = no hidden layer), got {fc_width}")
    hidden = [nn.Linear(in_features, fc_width), make_activation(activation)] if fc_width else []
    return [*hidden, nn.Dropout(dropout),
            nn.Linear(fc_width or in_features, num_classes, bias=bias)]
