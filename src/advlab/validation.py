"""Checks of argument values, shared by the whole library.

Each helper returns the value it checked (as an int or a float where it converts) and raises
`ConfigError`, or the subclass of it given as ``error``, with a message of one shape:
``NAME: expected WHAT, found VALUE``, e.g. ``check_int("k", 0, minimum=1)`` raises
``ConfigError("k: expected an int >= 1, found 0")``. Booleans are never accepted as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import TypeVar

from advlab.errors import ConfigError

T = TypeVar("T")


def _bounds(noun: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{noun} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{noun} >= {minimum}"
    if maximum is not None:
        return f"{noun} <= {maximum}"
    return noun


def _finite(value: object) -> float | None:
    """`value` as a float if it is a finite real number (not bool), else None."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _within(value: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def check_int(
    name: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[ConfigError] = ConfigError,
) -> int:
    """`value` as an int: an integer (Python or numpy, not bool) in [`minimum`, `maximum`].

    Raises:
        ConfigError: "NAME: expected an int >= MINIMUM, found VALUE" (or the bounds given).
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
        if _within(number, minimum, maximum):
            return number
    raise error(f"{name}: expected {_bounds('an int', minimum, maximum)}, found {value!r}")


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    error: type[ConfigError] = ConfigError,
) -> float:
    """`value` as a float: a finite real number (not bool) in [`minimum`, `maximum`].

    Raises:
        ConfigError: "NAME: expected a finite number >= MINIMUM, found VALUE" (or the bounds
            given; a closed interval needs no "finite").
    """
    number = _finite(value)
    if number is not None and _within(number, minimum, maximum):
        return number
    noun = "a number" if minimum is not None and maximum is not None else "a finite number"
    raise error(f"{name}: expected {_bounds(noun, minimum, maximum)}, found {value!r}")


def check_positive(name: str, value: object, *, error: type[ConfigError] = ConfigError) -> float:
    """`value` as a float: a finite real number > 0 (not bool).

    Raises:
        ConfigError: "NAME: expected a finite number > 0, found VALUE".
    """
    number = _finite(value)
    if number is not None and number > 0:
        return number
    raise error(f"{name}: expected a finite number > 0, found {value!r}")


def check_fraction(name: str, value: object, *, error: type[ConfigError] = ConfigError) -> float:
    """`value` as a float in [0, 1] (a share of a batch, a smoothing weight).

    Raises:
        ConfigError: "NAME: expected a number in [0, 1], found VALUE".
    """
    return check_number(name, value, minimum=0, maximum=1, error=error)


def check_in(
    name: str, value: T, choices: Collection[T], *, error: type[ConfigError] = ConfigError
) -> T:
    """`value`, which must be one of `choices`.

    Raises:
        ConfigError: "NAME: expected one of A, B, C, found VALUE".
    """
    try:
        known = value in choices
    except TypeError:  # an unhashable value looked up in a set or dict
        known = False
    if not known:
        listed = ", ".join(str(c) for c in choices)
        raise error(f"{name}: expected one of {listed}, found {value!r}")
    return value


__all__ = ["check_fraction", "check_in", "check_int", "check_number", "check_positive"]
