"""The attack registry and its factory: `create_attack("fgsm", batch_size=128)`."""

from __future__ import annotations

import inspect
from typing import Any

from advlab.attacks.base import Attack
from advlab.errors import ConfigError
from advlab.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Builds the attack registered as `name` with keyword parameters `kwargs`.

    Raises RegistryError for an unknown name and ConfigError for parameters the attack does
    not take.
    """
    cls = ATTACKS.get(name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        accepted = ", ".join(inspect.signature(cls).parameters) or "(none)"
        raise ConfigError(
            f"attack {name!r}: {err}; accepted keyword parameters: {accepted}"
        ) from None
    return cls(**kwargs)
