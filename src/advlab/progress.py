"""Progress bars for long library work, off unless the caller (the CLI) turns them on.

Library code never prints; it wraps long loops in `progress(...)`, which is a plain iterator
until `enable(True)` is called, as `advlab`'s CLI does when stderr is a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_ENABLED = False


def enable(on: bool = True) -> None:
    global _ENABLED
    _ENABLED = on


def enabled() -> bool:
    return _ENABLED


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """`iterable`, with a tqdm bar on stderr when progress is enabled."""
    if not _ENABLED:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
