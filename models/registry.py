"""Model registry: a model is added by registering its factory, and is then
available to every sweep and covered by the registry-wide tests.

A leaf: it imports no model module; the models register themselves."""

from __future__ import annotations

from typing import Callable

from torch import nn

ModelFactory = Callable[..., nn.Module]

_MODELS: dict[str, ModelFactory] = {}
_TASKS: dict[str, str] = {}  # model name -> "classification" | "segmentation"


def register_model(name: str, task: str = "classification"
                   ) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make `factory` buildable as `build_model(name, ...)`. A
    classification model maps images to class logits, a segmentation model to
    per-pixel logits. Registering the same factory again (its module imported
    twice, e.g. a sweep file loaded by path and then by a Ray worker) replaces
    it; another factory under a taken name is an error."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS and _origin(_MODELS[name]) != _origin(factory):
            module, qualname = _origin(_MODELS[name])
            raise ValueError(f"model {name!r} is already registered by {module}.{qualname}; "
                             f"register this factory under another name")
        _MODELS[name], _TASKS[name] = factory, task
        return factory

    return add


def _origin(factory: ModelFactory) -> tuple[str, str]:
    return (getattr(factory, "__module__", "?"), getattr(factory, "__qualname__", repr(factory)))


def model_names(task: str | None = None) -> list[str]:
    """The registered models (of `task` if given), sorted."""
    return sorted(name for name in _MODELS if task is None or _TASKS[name] == task)


def registered_factory(name: str, task: str | None = None) -> ModelFactory:
    """The factory registered as `name` (for `task` if given)."""
    if name not in _MODELS or (task is not None and _TASKS[name] != task):
        known = ", ".join(model_names(task))
        kind = f"{task} " if task else ""
        raise ValueError(f"unknown model {name!r}; known {kind}models: {known}")
    return _MODELS[name]
