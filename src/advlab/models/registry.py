"""Model registry and the one factory, `create_model(name, **cfg)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from advlab.registry import Registry, check_kwargs

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build the registered model `name` with keyword configuration `cfg`.

    Raises:
        RegistryError: `name` is not registered.
        ConfigError: `cfg` holds a parameter the model does not take, or lacks a required one
            (the message lists the accepted ones).
    """
    factory = MODELS.get(name)
    check_kwargs("create_model", name, factory, cfg)
    return factory(**cfg)
