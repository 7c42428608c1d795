"""A restricted unpickler for the CIFAR-10 python-version batches.

The official CIFAR-10 files are pickles, and a pickle can run arbitrary code when loaded. This
unpickler resolves only the few globals that format needs to rebuild numpy arrays; anything
else (``os.system``, ``builtins.eval``, ...) raises `UnsafeFileError` before it can run.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from advlab.errors import DataError, UnsafeFileError

# (module, name) pairs a CIFAR-10 batch may reference: numpy's array reconstruction (under its
# numpy 1 and numpy 2 module paths) and the codec py3 pickles use for raw bytes.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the globals in `_ALLOWED`."""

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, *, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafeFileError(
                f"{self._source}: refusing to unpickle global {module}.{name}; a CIFAR-10 batch "
                "only references numpy array reconstruction"
            )
        return super().find_class(module, name)


def safe_loads(data: bytes, *, source: str) -> Any:
    """Unpickle `data` (named `source` in errors) with the restricted unpickler."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source).load()
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise DataError(f"{source}: not a valid pickle ({type(exc).__name__}: {exc})") from exc
