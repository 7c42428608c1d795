"""pytest plugin: copy every metrics.json a test wrote under its tmp_path into a record folder.

Loaded by `benchmarks/metrics_identity.py` with ``-p record_metrics`` (this folder on
PYTHONPATH), so that the same recording works on any commit, including ones that predate it.
The folder is ``$ADVLAB_RECORD_METRICS``; each file lands under the test's node id and its
path relative to the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _record_metrics(request: pytest.FixtureRequest) -> Iterator[None]:
    target = os.environ.get("ADVLAB_RECORD_METRICS")
    tmp = (
        request.getfixturevalue("tmp_path")
        if target and "tmp_path" in request.fixturenames
        else None
    )
    yield
    if tmp is None:
        return
    node = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    for path in sorted(Path(tmp).rglob("metrics.json")):
        dest = Path(target) / node / path.relative_to(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        marks = path.with_name("nonfinite.json")  # where metrics.json's nulls stand for NaN
        if marks.is_file():
            shutil.copyfile(marks, dest.with_name("nonfinite.json"))
