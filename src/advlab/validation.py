"""Checks of argument values, shared by the whole library.

Each helper returns the value it checked (as an int or a float where it converts) and raises
`ConfigError`, or the subclass of it given as ``error``, with a message of one shape:
``NAME: expected WHAT, found VALUE``, e.g. ``check_int("k", 0, minimum=1)`` raises
``ConfigError("k: expected an int >= 1, found 0")``. Booleans are never accepted as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from numbers import Integral, Real
from typing import Any, TypeVar

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


def check_fraction(
    name: str,
    value: object,
    *,
    zero: bool = True,
    one: bool = True,
    error: type[ConfigError] = ConfigError,
) -> float:
    """`value` as a float in [0, 1] (a share of a batch, a smoothing weight); ``zero=False``
    or ``one=False`` leave that end out, e.g. a held-out share in (0, 1).

    Raises:
        ConfigError: "NAME: expected a number in [0, 1], found VALUE" (brackets as the ends).
    """
    number = _finite(value)
    low, high = (
        (0.0 if zero else math.nextafter(0.0, 1.0)),
        (1.0 if one else math.nextafter(1.0, 0.0)),
    )
    if number is not None and low <= number <= high:
        return number
    interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"
    raise error(f"{name}: expected a number in {interval}, found {value!r}")


def check_in(
    name: str, value: T, choices: Collection[T], *, error: type[ConfigError] = ConfigError
) -> T:
    """`value`, which must be one of `choices`.

    Raises:
        ConfigError: "NAME: expected one of A, B, C, found VALUE".
    """
    if not _member(value, choices):
        listed = ", ".join(str(c) for c in choices)
        raise error(f"{name}: expected one of {listed}, found {value!r}")
    return value


def check_each(
    name: str,
    values: Sequence[object],
    check: Callable[..., T],
    *,
    empty: bool = False,
    error: type[ConfigError] = ConfigError,
    **bounds: Any,
) -> tuple[T, ...]:
    """Every item of the list `values` checked by `check` (`check_int`, `check_number`, ...,
    with `bounds`), as a tuple; the list may be empty only if `empty`.

    Raises:
        ConfigError: "NAME: expected a non-empty list, found VALUE", or the item's own message
            with the list's name: "NAME: expected an int >= 1, found 0 (in [1, 0])".
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise error(f"{name}: expected a list, found {values!r}")
    if not values and not empty:
        raise error(f"{name}: expected a non-empty list, found {list(values)!r}")
    out = []
    for value in values:
        try:
            out.append(check(name, value, error=error, **bounds))
        except ConfigError as exc:
            raise error(f"{exc} (in {list(values)!r})") from None
    return tuple(out)


def check_choices(
    name: str,
    values: Sequence[T],
    choices: Collection[T],
    *,
    empty: bool = False,
    error: type[ConfigError] = ConfigError,
) -> tuple[T, ...]:
    """The list `values`, each one of `choices`; it may be empty only if `empty`.

    Raises:
        ConfigError: "NAME: expected a non-empty list of A, B, C, found VALUE".
    """
    listed = ", ".join(str(c) for c in choices)
    noun = "a list" if empty else "a non-empty list"
    if (
        isinstance(values, str | bytes)
        or not isinstance(values, Sequence)
        or (not values and not empty)
        or any(not _member(v, choices) for v in values)
    ):
        found: object = values
        if isinstance(values, Sequence) and not isinstance(values, str | bytes):
            found = list(values)
        raise error(f"{name}: expected {noun} of {listed}, found {found!r}")
    return tuple(values)


def _member(value: object, choices: Collection[object]) -> bool:
    try:
        return value in choices
    except TypeError:  # an unhashable value looked up in a set or dict
        return False


__all__ = [
    "check_choices",
    "check_each",
    "check_fraction",
    "check_in",
    "check_int",
    "check_number",
    "check_positive",
]
