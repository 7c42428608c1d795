"""`advlab.shards`: fixed chunks, shard groups, merging, resuming and bad chunk output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advlab.backends import LocalBackend
from advlab.errors import ConfigError, RunError
from advlab.experiments import run_experiment
from advlab.shards import chunk_bounds, merge_chunks, run_sharded, shard_groups


def square_chunk(payload: int, ids: np.ndarray) -> dict[str, np.ndarray]:
    """A chunk function: each id's square plus the payload, and the chunk's first id per row
    (which tells the chunk an item was evaluated in)."""
    return {"value": ids**2 + payload, "first": np.full(len(ids), ids[0])}


def prepare_once(folder: Path) -> int:
    """A `prepare` that leaves one file per call (a model load, say) and returns the state."""
    import uuid

    (folder / f"prepared-{uuid.uuid4().hex}").touch()
    return 1000


def bad_chunk(payload: int, ids: np.ndarray) -> dict[str, np.ndarray]:
    return {"value": np.zeros(len(ids) + 1)}


def test_chunk_bounds_and_shard_groups() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(0, 4) == []
    assert shard_groups(5, 2) == [[0, 1], [2, 3, 4]]
    assert shard_groups(6, 3) == [[0, 1], [2, 3], [4, 5]]
    assert shard_groups(2, 5) == [[0], [1]]  # no empty shards
    assert shard_groups(0, 3) == []
    with pytest.raises(ConfigError, match=r"^chunk: expected an int >= 1, found 0"):
        chunk_bounds(3, 0)
    with pytest.raises(ConfigError, match=r"^--shards: expected an int >= 1, found 0"):
        shard_groups(3, 0)


def test_run_sharded_merges_in_order_whatever_the_shards(tmp_path: Path) -> None:
    ids = np.array([7, 3, 9, 1, 4, 8, 2])
    one = run_sharded(square_chunk, 5, ids, folder=tmp_path / "one", chunk=3)
    assert one["value"].tolist() == (ids**2 + 5).tolist()
    assert one["first"].tolist() == [7, 7, 7, 1, 1, 1, 2]  # chunks of 3 whatever the shards
    pooled = run_sharded(
        square_chunk,
        5,
        ids,
        folder=tmp_path / "pool",
        chunk=3,
        shards=2,
        backend=LocalBackend(2, threads=1),
    )
    assert {k: v.tolist() for k, v in pooled.items()} == {k: v.tolist() for k, v in one.items()}
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == [
        "chunk-00000.npz",
        "chunk-00001.npz",
        "chunk-00002.npz",
    ]


def test_run_sharded_skips_written_chunks_and_checks_its_input(tmp_path: Path) -> None:
    ids = np.arange(6)
    run_sharded(square_chunk, 0, ids, folder=tmp_path, chunk=2)
    # A chunk already there is the result: rerunning with another payload keeps it.
    again = run_sharded(square_chunk, 100, ids, folder=tmp_path, chunk=2)
    assert again["value"].tolist() == [0, 1, 4, 9, 16, 25]
    (tmp_path / "chunk-00001.npz").unlink()
    again = run_sharded(square_chunk, 100, ids, folder=tmp_path, chunk=2)
    assert again["value"].tolist() == [0, 1, 104, 109, 16, 25]  # only the missing one redone
    with pytest.raises(RunError, match="without one row per item"):
        run_sharded(bad_chunk, 0, ids, folder=tmp_path / "bad", chunk=2)
    assert not list((tmp_path / "bad").glob("*.npz"))  # nothing half-written
    with pytest.raises(RunError, match=r"chunk-00003\.npz: missing"):
        merge_chunks(tmp_path, 4)
    with pytest.raises(ConfigError, match=r"^ids: expected a 1-d array"):
        run_sharded(square_chunk, 0, np.zeros((2, 2)), folder=tmp_path, chunk=2)


def test_prepare_runs_once_per_shard_and_not_for_given_state(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    ids = np.arange(7)
    pooled = run_sharded(
        square_chunk,
        marks,
        ids,
        folder=tmp_path / "pool",
        chunk=2,
        shards=2,
        backend=LocalBackend(2, threads=1),
        prepare=prepare_once,
    )
    assert pooled["value"].tolist() == (ids**2 + 1000).tolist()
    assert len(list(marks.iterdir())) == 2  # 4 chunks, 2 shards: one state per shard
    here = run_sharded(
        square_chunk, marks, ids, folder=tmp_path / "here", chunk=2, prepare=prepare_once, state=7
    )
    assert here["value"].tolist() == (ids**2 + 7).tolist()
    assert len(list(marks.iterdir())) == 2  # the given state: no call
    run_sharded(square_chunk, marks, ids, folder=tmp_path / "here", chunk=2, prepare=prepare_once)
    assert len(list(marks.iterdir())) == 2  # every chunk written already: nothing to prepare


def test_run_experiment_refuses_a_bad_shard_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--shards: expected an int >= 1, found 0"):
        run_experiment("demo", shards=0, out=tmp_path)
