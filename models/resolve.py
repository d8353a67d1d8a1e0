"""A model name to a factory, and the factory's arguments from its signature.

A name is a registered model (`resnet`), an import path
(`package.module:factory`: the module imported, the attribute called) or a
scheme's model (`torchvision:resnet18`). A factory is called with those of
num_classes, in_channels, image_size ((H, W) pixels), width, depth, dropout,
activation (a models.activations name) and fc_width (units of a hidden head
layer) that its signature names; a `**kwargs` factory gets them all. depth and
activation None mean the factory's own default."""

from __future__ import annotations

import importlib
import inspect
from typing import Callable

from torch import nn

from models.registry import ModelFactory, registered_factory
from models.torchvision_models import torchvision_factory

# "<scheme>:<name>" names that are not import paths: scheme -> (factory of a name, its task)
SCHEMES: dict[str, tuple[Callable[[str], ModelFactory], str]] = {
    "torchvision": (torchvision_factory, "classification"),
}

NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# the config's keys that shape a model
SWEPT_KEYS = frozenset({"width", "depth", "dropout", "activation", "fc_width"})
# None: "the model's own" (left out for a factory with its own default)
OWN_DEFAULT = frozenset({"depth", "activation"})
# key -> (its value a factory without the key may ignore, the fix for another value):
# any other value for a factory that does not take the key is an error, not a no-op
IGNORABLE: dict[str, tuple[object, str]] = {
    "depth": (None, "leave depth unset (None)"),
    "activation": (None, "leave activation unset (None: the model's own)"),
    "fc_width": (0, "leave fc_width at 0 (no hidden layer)"),
}


def resolve_factory(name: str, task: str | None = None) -> ModelFactory:
    """The factory that `name` names; a registered or scheme's model must be of
    `task` if given (an imported factory's task is its author's word)."""
    if ":" not in name:
        try:
            return registered_factory(name, task)
        except ValueError as e:  # name the kinds of model that are not registered
            schemes = [s for s, (_, s_task) in SCHEMES.items() if task in (None, s_task)]
            hints = "".join(f", or '{s}:<name>'" for s in schemes)
            raise ValueError(f"{e}; or 'package.module:factory'{hints}") from None
    prefix, _, target = name.partition(":")
    if prefix not in SCHEMES:
        return imported_factory(name)
    factory_of, scheme_task = SCHEMES[prefix]
    if task not in (None, scheme_task):
        raise ValueError(f"model {name!r} is a {scheme_task} model, not a {task} one; "
                         f"use a registered {task} model or 'package.module:factory'")
    return factory_of(target)


def imported_factory(path: str) -> ModelFactory:
    """The callable `attr` of module `package.module`, for the path 'package.module:attr'."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ValueError(f"model {path!r} is not an import path; write 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model {path!r}: cannot import module {module_name!r} ({e}); "
                         f"check the path, and that its package is importable "
                         f"(installed, or on PYTHONPATH)") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        what = "has no attribute" if factory is None else "has a non-callable"
        raise ValueError(f"model {path!r}: module {module_name!r} {what} {attr!r}; "
                         f"name a factory function defined in it")
    return factory


def model_keys(name: str, task: str | None = None) -> frozenset[str]:
    """Which of SWEPT_KEYS (width, depth, dropout, activation, fc_width) the model
    `name` takes: those its factory's signature names, all of them for a
    `**kwargs` factory, none for a torchvision model (its builder's own
    architecture and dropout stand). A value of another of them would change
    nothing. ValueError (one line) for a name that does not resolve, as check_model."""
    params = inspect.signature(resolve_factory(name, task)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return SWEPT_KEYS
    return SWEPT_KEYS & {key for key, p in params.items() if p.kind in NAMED}


def factory_kwargs(factory: ModelFactory, name: str, values: dict[str, object]
                   ) -> dict[str, object]:
    """The part of `values` that `factory`'s signature takes. `depth=None` and
    `activation=None` (the model's default) are left out when the factory has a
    default for them. A value of depth, activation or fc_width other than IGNORABLE's
    for a factory that does not take it is an error. A factory must take
    num_classes and may require nothing outside `values`."""
    params = inspect.signature(factory).parameters
    catch_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {key for key, p in params.items() if p.kind in NAMED}
    available = f"a factory may take any of: {', '.join(values)}"
    if not catch_all and "num_classes" not in named:
        raise ValueError(f"model factory {name!r} takes no 'num_classes' argument; give it one "
                         f"({available})")
    for key, p in params.items():
        if p.default is p.empty and (p.kind is p.POSITIONAL_ONLY
                                     or (p.kind in NAMED and key not in values)):
            raise ValueError(f"model factory {name!r} requires {key!r}, which is not provided; "
                             f"{available} (give other parameters a default)")
    kwargs = {key: value for key, value in values.items() if catch_all or key in named}
    for key in OWN_DEFAULT:
        param = params.get(key)
        if values.get(key) is None and param is not None and param.default is not param.empty:
            kwargs.pop(key, None)  # "the model's default" is the factory's own default
    for key, (ignorable, fix) in IGNORABLE.items():
        if key in values and values[key] != ignorable and key not in kwargs:
            raise ValueError(f"model {name!r} takes no {key}; got {key}={values[key]!r}, {fix}")
    return kwargs


def check_model(name: str, task: str | None = None, **model_values: object) -> None:
    """Raise ValueError (one line) unless `name` names a model that can be built
    for `task`: a registered one of the task, an import path resolving to a
    callable, or a torchvision model name; the factory's signature is checked too,
    with `model_values` (of SWEPT_KEYS, e.g. a config's activation) over defaults."""
    if unknown := sorted(set(model_values) - SWEPT_KEYS):
        raise ValueError(f"check_model takes the model keys {', '.join(sorted(SWEPT_KEYS))}; "
                         f"got {', '.join(unknown)}")
    values = _values(num_classes=10, in_channels=3, image_size=(32, 32), width=16, depth=None,
                     dropout=0.0, activation=None, fc_width=0)
    factory_kwargs(resolve_factory(name, task), name, {**values, **model_values})


def build_model(
    name: str, *, num_classes: int, width: int, depth: int | None, dropout: float,
    in_channels: int = 3, image_size: tuple[int, int] = (32, 32), task: str | None = None,
    activation: str | None = None, fc_width: int = 0, **extra: object,
) -> nn.Module:
    """Build the model `name` (registered, 'package.module:factory' or
    'torchvision:<name>') for images of `in_channels` x `image_size` (H, W)
    pixels. `depth=None` and `activation=None` mean the model's own default;
    `fc_width`: units of a hidden layer in a classifier's head (0: none); `extra`:
    further model-specific arguments, which the factory must take."""
    factory = resolve_factory(name, task)
    values = {**_values(num_classes, in_channels, image_size, width, depth, dropout,
                        activation, fc_width), **extra}
    kwargs = factory_kwargs(factory, name, values)
    if untaken := sorted(set(extra) - set(kwargs)):
        raise ValueError(f"model {name!r} takes no argument(s) {', '.join(untaken)}")
    return factory(**kwargs)


def _values(num_classes: int, in_channels: int, image_size: tuple[int, int], width: int,
            depth: int | None, dropout: float, activation: str | None,
            fc_width: int) -> dict[str, object]:
    return {"num_classes": num_classes, "in_channels": in_channels,
            "image_size": tuple(image_size), "width": width, "depth": depth, "dropout": dropout,
            "activation": activation, "fc_width": fc_width}
