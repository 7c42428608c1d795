"""The ``--set`` and ``--grid`` grammar: ``key=value`` settings typed into a config dataclass.

``--set key=value`` (`build_config`) reads the value as OmegaConf's dotlist does, i.e. as YAML,
and checks it against the field's type: ``--set epochs=3 --set 'epsilons=[0.0,0.1]'``.

``--grid key=v1,v2,...`` (`parse_grid`): values are split at commas outside brackets and quotes
and each is typed like a ``--set`` value: ``lr=0.1,0.01`` gives ``[0.1, 0.01]``, ``epochs=1,2``
gives ints, ``dataset=mnist-sample,cifar10`` strings. A list-valued setting is written in
brackets, one list per value: ``epsilons=[0.0,0.1],[0.0,0.1,0.3]``; a string holding a comma is
quoted: ``name="a,b"``. `format_value` writes any value back in this grammar.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from advlab.errors import ConfigError


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=0.1,0.01", "width=8,16"]`` -> ``{"lr": [0.1, 0.01], "width": [8, 16]}``.

    See the module docstring for the syntax. Raises `ConfigError` naming the bad item.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_grid_item(item)
        if key in grid:
            raise ConfigError(f"--grid {item!r}: {key!r} is already swept by an earlier --grid")
        grid[key] = values
    return grid


def parse_grid_item(item: str) -> tuple[str, list[Any]]:
    """``"lr=0.1,0.01"`` -> ``("lr", [0.1, 0.01])``."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--grid {item!r}: expected key=v1,v2,...")
    values = [_parse_value(token, item) for token in _split_values(text, item)]
    check_distinct(key, values, f"--grid {item!r}")
    return key, values


def format_grid_item(key: str, values: Sequence[Any]) -> str:
    """The inverse of `parse_grid_item`: ``("lr", [0.1, 0.01])`` -> ``"lr=0.1,0.01"``."""
    return f"{key}=" + ",".join(format_value(v) for v in values)


def format_value(value: Any) -> str:
    """`value` as a dotlist (YAML flow) string that `build_config` reads back as `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) is not None and _parse_value(value, value) == value
        return value if plain else json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{format_value(str(k))}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ConfigError(
        f"grid value {value!r}: expected a number, string, bool, null, list or mapping, "
        f"found {type(value).__name__}"
    )


_PLAIN = re.compile(r"[A-Za-z0-9_./+-]+")  # strings written without quotes when YAML agrees


def _split_values(text: str, item: str) -> list[str]:
    """Split at commas outside brackets, braces and quoted strings."""
    tokens: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and text[start:i].rstrip()[-1:] in ("", "[", "{", ",", ":"):
            quote = ch  # a quote opens a string only where a YAML scalar can start
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"--grid {item!r}: unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            tokens.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ConfigError(f"--grid {item!r}: unclosed bracket or quote")
    tokens.append(text[start:])
    tokens = [t.strip() for t in tokens]
    if not all(tokens):
        raise ConfigError(f"--grid {item!r}: empty value (two commas in a row, or a trailing one?)")
    return tokens


def _parse_value(token: str, item: str) -> Any:
    """Type `token` as OmegaConf types a ``--set key=token`` value."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={token}"]))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"--grid {item!r}: cannot read value {token!r}: {first}") from None
    return cast(dict[str, Any], parsed)["value"]


def check_distinct(key: str, values: Sequence[Any], where: str) -> None:
    if not values:
        raise ConfigError(f"{where}: {key!r} has no values")
    for i, a in enumerate(values):
        if any(a == b for b in values[:i]):
            raise ConfigError(f"{where}: value {a!r} of {key!r} is given twice")


def build_config(cls: type[Any], overrides: Sequence[str] = (), **values: Any) -> Any:
    """Config `cls` with ``key=value`` overrides (typed, validated by OmegaConf) and `values`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
    try:
        base = OmegaConf.structured(cls)
        merged = OmegaConf.merge(
            base,
            OmegaConf.from_dotlist(list(overrides)),
            OmegaConf.create({k: v for k, v in values.items() if v is not None}),
        )
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{cls.__name__}: {first}") from None
