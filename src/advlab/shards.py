"""Evaluations over many images, cut into fixed chunks, run as shards, merged into one result.

An attack evaluation over N items (images, or (image, target) pairs) is cut into chunks of
`chunk` consecutive items: the same cut whatever the number of shards. Shards are contiguous
groups of chunks; each is one task on a backend (`advlab.backends.LocalBackend`, a process pool
here, or `advlab.backends.RayBackend`, a Ray cluster), or, with one shard, runs in this process.

Each chunk's arrays are written atomically to ``<folder>/chunk-00012.npz`` as soon as it is
done, under a name that depends on the chunk alone. A shard that Ray retries after its worker
died, or a run continued with ``advlab run --resume``, finds the chunks already written and
skips them; nothing finished is overwritten or counted twice. The merged result concatenates
the chunks in order. It is therefore the same for any shard count, provided that the work on a
chunk depends only on the chunk: the attacks' randomness must come from per-item streams keyed
by the item's index (`advlab.attacks.random_streams`, the ``image_ids`` of `OnePixel`,
`SparseRS` and the PGD attacks), never from a generator shared by a batch.

The function that evaluates a chunk must be a module-level function (so that it pickles by
name) taking ``(state, ids)``: the int64 ids of the chunk's items and the shard's state, which
is `payload` itself (plain picklable data saying what to do), or ``prepare(payload)`` built once
per shard when a `prepare` function is given (a worker evaluating several chunks loads its
model once); it returns a dict of arrays with one row per id. `advlab.evaluation` builds attack
evaluations on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advlab.backends import Backend, LocalBackend, cpu_count
from advlab.errors import ConfigError, RunError
from advlab.fileio import atomic_path
from advlab.progress import progress
from advlab.validation import check_int

log = logging.getLogger(__name__)

ChunkFn = Callable[[Any, np.ndarray], Mapping[str, np.ndarray]]


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of consecutive chunks of `chunk` items covering ``0..n``."""
    check_int("chunk", chunk, minimum=1)
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]


def shard_groups(n_chunks: int, shards: int) -> list[list[int]]:
    """Chunk indices ``0..n_chunks-1`` in `shards` contiguous groups whose sizes differ by at
    most one (fewer groups when there are fewer chunks than shards)."""
    check_int("--shards", shards, minimum=1)
    count = min(shards, n_chunks)
    if count == 0:
        return []
    edges = [round(i * n_chunks / count) for i in range(count + 1)]
    return [list(range(edges[i], edges[i + 1])) for i in range(count)]


@dataclass(frozen=True)
class ShardJob:
    """One evaluation: what a shard task needs besides its chunk numbers (plain data)."""

    fn: ChunkFn
    payload: Any
    ids: np.ndarray  # int64 (N,): the items, in order
    chunk: int
    folder: Path
    prepare: Callable[[Any], Any] | None = None

    def path(self, c: int) -> Path:
        return self.folder / f"chunk-{c:05d}.npz"

    def missing(self, chunks: Sequence[int]) -> list[int]:
        """The chunks of `chunks` not written yet."""
        return [c for c in chunks if not self.path(c).is_file()]

    def open(self) -> Any:
        """The state the chunk function gets: ``prepare(payload)``, or the payload itself."""
        return self.prepare(self.payload) if self.prepare is not None else self.payload


def run_shard(args: tuple[ShardJob, list[int]]) -> list[int]:
    """Evaluate the chunks `args[1]` of `args[0]` that are not written yet, with one state for
    all of them; returns the chunk numbers it wrote. Runs in a worker."""
    job, chunks = args
    todo = job.missing(chunks)
    state = job.open() if todo else None
    for c in todo:
        _write_chunk(job, c, state)
    return todo


def _write_chunk(job: ShardJob, c: int, state: Any) -> None:
    """Chunk `c` evaluated with `state`, its arrays written atomically."""
    ids = job.ids[c * job.chunk : (c + 1) * job.chunk]
    arrays = {k: np.asarray(v) for k, v in job.fn(state, ids).items()}
    bad = {k: v.shape for k, v in arrays.items() if v.ndim == 0 or len(v) != len(ids)}
    if bad:
        raise RunError(
            f"{job.folder}: chunk {c} returned arrays without one row per item "
            f"({len(ids)} items): {bad}"
        )
    job.folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(job.path(c)) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def run_sharded(
    fn: ChunkFn,
    payload: Any,
    ids: np.ndarray | Sequence[int],
    *,
    folder: Path,
    chunk: int,
    shards: int = 1,
    backend: Backend | None = None,
    desc: str = "chunks",
    prepare: Callable[[Any], Any] | None = None,
    state: Any = None,
) -> dict[str, np.ndarray]:
    """``fn(state, ids[chunk])`` over fixed chunks of `ids`, in `shards` tasks; the chunks'
    arrays concatenated in order.

    Args:
        fn: Module-level function ``(state, ids) -> {name: array with len(ids) rows}``.
        payload: Plain picklable data for `fn` (travels to every worker).
        ids: Int (N,) ids of the items, in the order of the merged result.
        folder: Where the chunks' files go (the run folder's ``chunks/<name>``); chunks found
            there are not evaluated again.
        chunk: Items per chunk; the result does not depend on `shards`, but may on `chunk`.
        shards: Number of tasks; 1 evaluates in this process, chunk after chunk.
        backend: Where shards run when `shards` > 1: anything with `advlab.backends.Backend`'s
            ``map``; None for a local process pool of min(shards, cores) workers.
        desc: Label of the progress bar.
        prepare: Module-level function ``payload -> state``, called once per shard (loading a
            model, say); None: the state is `payload`.
        state: The state already built in this process, used when the chunks run here.

    Returns:
        ``{name: np.concatenate(chunks' arrays)}``; empty arrays come back for no ids only as
        an empty dict.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ConfigError(f"ids: expected a 1-d array of item ids, found shape {ids.shape}")
    job = ShardJob(fn, payload, ids, chunk, Path(folder), prepare)
    bounds = chunk_bounds(len(ids), chunk)
    groups = shard_groups(len(bounds), shards)
    if len(groups) <= 1:
        todo = job.missing(range(len(bounds)))
        if todo and state is None:
            state = job.open()
        for c in progress(todo, total=len(todo), desc=desc):
            _write_chunk(job, c, state)
    else:
        if backend is None:
            backend = LocalBackend(min(len(groups), cpu_count()))
        pending = [g for g in groups if job.missing(g)]
        log.info(
            "%s: %d chunks of %d in %d shards (%d to run)",
            desc,
            len(bounds),
            chunk,
            len(groups),
            len(pending),
        )
        for _ in progress(
            backend.map(run_shard, [(job, g) for g in pending]),
            total=len(pending),
            desc=f"{desc} (shards)",
        ):
            pass
    return merge_chunks(job.folder, len(bounds))


def merge_chunks(folder: Path, n_chunks: int) -> dict[str, np.ndarray]:
    """The arrays of ``chunk-00000.npz`` .. ``chunk-{n_chunks-1}`` concatenated in order."""
    if n_chunks == 0:
        return {}
    parts: list[dict[str, np.ndarray]] = []
    for c in range(n_chunks):
        path = Path(folder) / f"chunk-{c:05d}.npz"
        if not path.is_file():
            raise RunError(f"{path}: missing; a shard did not finish (rerun with --resume)")
        with np.load(path, allow_pickle=False) as data:
            parts.append({k: data[k] for k in data.files})
    keys = list(parts[0])
    if any(list(p) != keys for p in parts):
        raise RunError(f"{folder}: the chunks hold different arrays; delete the folder")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def shard_count(value: int) -> int:
    """`value` checked as a ``--shards`` count."""
    return check_int("--shards", value, minimum=1)
