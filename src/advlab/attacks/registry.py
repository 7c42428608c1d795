"""The attack registry and its factory: `create_attack("fgsm", batch_size=128)`."""

from __future__ import annotations

from typing import Any

from advlab.attacks.base import Attack
from advlab.registry import Registry, check_kwargs

ATTACKS: Registry[type[Attack]] = Registry("attack")


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Builds the attack registered as `name` with keyword parameters `kwargs`.

    Raises:
        RegistryError: `name` is not registered.
        ConfigError: `kwargs` holds a parameter the attack does not take (the message lists
            the accepted ones).
    """
    cls = ATTACKS.get(name)
    check_kwargs("create_attack", name, cls, kwargs)
    return cls(**kwargs)
