"""Model registry and the one factory, `create_model(name, **cfg)`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from advlab.errors import ConfigError
from advlab.registry import Registry

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build the registered model `name` with keyword configuration `cfg`.

    Raises:
        RegistryError: `name` is not registered.
        ConfigError: `cfg` holds a parameter the model does not take.
    """
    factory = MODELS.get(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model {name!r}: unknown parameter(s) {unknown}; it takes {sorted(accepted)}"
        )
    return factory(**cfg)
