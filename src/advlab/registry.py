"""A small name -> object registry, one per kind of thing (datasets, models, attacks, defences,
experiments, pretrained weights), and the keyword check every factory shares.

Each entry is registered once, under one name, and its line in ``advlab list`` comes from one
place: the registry's `describe` (an experiment's ``summary``, a dataset's description), or the
``help`` given at registration. `advlab list` reads the registries; nothing is ever looked up by
`eval`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from advlab.errors import ConfigError, RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Args:
        kind: What the registry holds, used in error messages ("dataset", "model", ...).
        describe: The one-line help of an entry, read from the entry itself (e.g. its
            ``summary``); without it, the ``help`` given to `add` (or nothing).
    """

    def __init__(self, kind: str, *, describe: Callable[[T], str] | None = None) -> None:
        self.kind = kind
        self._describe = describe
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def add(self, name: str, item: T, help: str | None = None, *, replace: bool = False) -> T:
        """Register `item` as `name` and return it.

        Args:
            name: The registry key (``advlab list`` shows it).
            item: The object.
            help: Its line in ``advlab list``; only for a registry without `describe`, whose
                entries carry their own.
            replace: Replace an entry of the same name instead of refusing it (tests that
                swap one entry for another).

        Raises:
            RegistryError: `name` is already registered (and not `replace`), or `help` is
                given to a registry whose entries describe themselves.
        """
        if name in self._items and not replace:
            raise RegistryError(f"{self.kind} {name!r} is registered twice")
        if self._describe is not None:
            if help is not None:
                raise RegistryError(
                    f"{self.kind} {name!r}: help expected from the entry itself, found "
                    f"help={help!r} as well; give it in one place"
                )
            help = self._describe(item)
        self._items[name] = item
        self._help[name] = help or ""
        return item

    def register(self, name: str, help: str | None = None) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def deco(item: T) -> T:
            return self.add(name, item, help)

        return deco

    def get(self, name: str) -> T:
        """The entry registered as `name`; RegistryError listing the known names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def help(self, name: str) -> str:
        """The one-line description of `name` (``advlab list``)."""
        self.get(name)
        return self._help[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._items)

    def copy(self) -> Registry[T]:
        """A registry of the same kind holding the same entries (tests change the copy)."""
        other: Registry[T] = Registry(self.kind, describe=self._describe)
        other._items, other._help = dict(self._items), dict(self._help)
        return other

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def check_kwargs(
    factory: str, name: str, target: Callable[..., Any], kwargs: Mapping[str, Any]
) -> None:
    """Refuse keyword arguments that `target` (what `factory` builds for `name`) does not take.

    One message for every factory (`create_model`, `create_attack`, `create_defense`): it names
    the factory, the registered name, the unknown or missing keywords and the accepted ones.

    Raises:
        ConfigError: A keyword `target` does not take, or a required one that is missing.
    """
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [p.name for p in params if p.kind in named]
    unknown = sorted(set(kwargs) - set(accepted))
    required = [p.name for p in params if p.kind in named and p.default is p.empty]
    missing = [key for key in required if key not in kwargs]
    if not unknown and not missing:
        return
    found = (
        f"unknown keyword parameter(s) {', '.join(map(repr, unknown))}"
        if unknown
        else f"missing required keyword parameter(s) {', '.join(map(repr, missing))}"
    )
    raise ConfigError(
        f"{factory}({name!r}): {found}; accepted keyword parameters: "
        f"{', '.join(accepted) or '(none)'}"
    )
