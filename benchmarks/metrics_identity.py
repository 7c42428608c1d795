"""Do the experiments still compute the same numbers? metrics.json at test size, before vs after.

A refactoring must not change results. This script runs the experiment tests (every
experiment at the small settings its test uses, plus the shard and sweep tests that run whole
experiments) twice, once on a base commit and once on the working tree (or a `--head` commit),
each checked out in a temporary git worktree, with the pytest plugin ``record_metrics`` (beside
this file) copying every metrics.json the tests write. Every test file runs in a fresh pytest
process and each side has a model store of its own, so nothing but the code differs. It then
compares the two sets value by value, wall times aside (keys named like ``*seconds*``, ``*_s``,
``*time*``, ``*per_s*``: they differ run to run) and pytest's temporary folder names, and writes
``benchmarks/results/metrics_identity.json``.

    .venv/bin/python benchmarks/metrics_identity.py --base 8000ee4

Both sides run on this machine, in the same environment, so the comparison is exact (floating
point included) and holds on any processor. Exit status 1 when any value differs or a side lacks
a file the other has.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "metrics_identity.json"
TESTS = ["tests/experiments", "tests/test_shards.py", "tests/test_sweep.py"]
STAMP = re.compile(r"\d{8}-\d{6}(-\d+)?")
TIMING = re.compile(r"(seconds|time|wall|elapsed|per_s|_s$|_sec$|throughput|rate_hz|fps)", re.I)


def record(src_root: Path, out: Path, tests: list[str], workers: int) -> float:
    """Run `tests` with the code of `src_root` (its src/ and tests/), recording into `out`.

    Every test file runs in a pytest process of its own (`workers` at a time), so a test's
    numbers never depend on what another file left in the process (thread counts, RNG state),
    and the two sides see the same history whatever tests they add. Each side has its own
    model store; the decoded datasets (``arrays``) are shared.
    """
    files = sorted(
        {
            str(f.relative_to(src_root))
            for t in tests
            for f in ([src_root / t] if t.endswith(".py") else (src_root / t).rglob("test_*.py"))
        }
    )
    cache = out.parent / f"{out.name}-cache"
    cache.mkdir(parents=True, exist_ok=True)
    shared = Path(os.environ.get("ADVLAB_CACHE_DIR", REPO / ".test-cache")) / "arrays"
    shared.mkdir(parents=True, exist_ok=True)
    if not (cache / "arrays").exists():
        (cache / "arrays").symlink_to(shared.resolve())
    env = dict(os.environ)
    env["ADVLAB_RECORD_METRICS"] = str(out)
    env["ADVLAB_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src_root / "src"), str(BENCH_DIR / "metrics_identity")]
    )

    def one(test_file: str) -> int:
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "record_metrics",
            "-q",
            "-p",
            "no:cacheprovider",
            test_file,
        ]
        done = subprocess.run(
            cmd, cwd=src_root, env=env, capture_output=True, text=True, check=False
        )
        print(
            f"  {src_root.name}: {test_file}: "
            f"{done.stdout.strip().splitlines()[-1] if done.stdout else ''}",
            flush=True,
        )
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
        return done.returncode

    start = datetime.datetime.now()
    with ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(one, files))
    if any(codes):
        raise SystemExit(f"{src_root}: some tests failed; no comparison")
    return (datetime.datetime.now() - start).total_seconds()


def _files(root: Path) -> dict[str, Path]:
    """``{node/relative path: path}``, each run folder's time stamp replaced by its rank among
    the run folders beside it (``run0``, ``run1``, ...), which is what stays the same."""
    found: dict[str, Path] = {}
    for node in sorted(p for p in root.iterdir() if p.is_dir()):
        for p in sorted(node.rglob("metrics.json")):
            parts = list(p.relative_to(node).parts)
            for i, part in enumerate(parts):
                if STAMP.fullmatch(part):
                    parent = node.joinpath(*parts[:i])
                    stamps = sorted(d.name for d in parent.iterdir() if STAMP.fullmatch(d.name))
                    parts[i] = f"run{stamps.index(part)}"
            found[f"{node.name}/{'/'.join(parts)}"] = p
    return found


TMP = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/(popen-gw\d+/)?")


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if TIMING.search(str(k)):
                continue
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    elif isinstance(obj, str):
        yield path, TMP.sub("<tmp>/", obj)  # a test's own folder, named by pytest
    else:
        yield path, obj


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b and type(a) is type(b))


def _metrics(path: Path) -> Any:
    """A recorded metrics.json, with the NaN and infinities its nonfinite.json lists put back
    (metrics.json is strict JSON since 2026-12-03; older recordings hold NaN itself)."""
    from advlab.runs import restore_nonfinite

    metrics = json.loads(path.read_text())
    marks = path.with_name("nonfinite.json")
    return restore_nonfinite(metrics, json.loads(marks.read_text())) if marks.is_file() else metrics


def compare(base: Path, head: Path) -> dict[str, Any]:
    fa, fb = _files(base), _files(head)
    diffs: list[str] = []
    for name in sorted(set(fa) | set(fb)):
        if name not in fa or name not in fb:
            diffs.append(f"{name}: only in {'head' if name in fb else 'base'}")
            continue
        va = dict(_walk(_metrics(fa[name])))
        vb = dict(_walk(_metrics(fb[name])))
        for key in sorted(set(va) | set(vb)):
            if key not in va or key not in vb or not _same(va[key], vb[key]):
                diffs.append(
                    f"{name}: {key}: {va.get(key, '<absent>')!r} -> {vb.get(key, '<absent>')!r}"
                )
    values = sum(len(dict(_walk(_metrics(p)))) for p in fb.values())
    return {"files": len(set(fa) | set(fb)), "values": values, "differences": diffs}


def _record_commit(commit: str, out: Path, args: argparse.Namespace) -> float:
    tree = out.parent / f"{out.name}-tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO, check=True)
    try:
        for so in (REPO / "src").rglob("*.so"):  # the compiled k-NN kernel of the install
            shutil.copy2(so, tree / so.relative_to(REPO))
        return record(tree, out, args.tests, args.workers)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", default="8000ee4", help="commit to compare with (default 8000ee4)"
    )
    parser.add_argument("--head", help="a commit to compare instead of the working tree")
    parser.add_argument("--workers", type=int, default=2, help="test files run at once")
    parser.add_argument("--keep", type=Path, help="keep both recordings in this folder")
    parser.add_argument(
        "--base-record", type=Path, help="reuse a recording of the base made earlier"
    )
    parser.add_argument(
        "tests", nargs="*", default=TESTS, help=f"test paths (default {' '.join(TESTS)})"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metrics-identity-"))
    try:
        base_rec, head_rec = work / "base", work / "head"
        base_s: float | None = None  # None: recorded earlier (--base-record)
        if args.base_record:
            base_rec = args.base_record
        else:
            base_s = _record_commit(args.base, base_rec, args)
        if args.head:
            head_s: float = _record_commit(args.head, head_rec, args)
        else:
            head_s = record(REPO, head_rec, args.tests, args.workers)
        result = compare(base_rec, head_rec)
        head_sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "src"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        )
        report = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/metrics_identity.py", *sys.argv[1:]]),
            "base": args.base,
            "head": args.head or (head_sha + ("+changes" if dirty else "")),
            "tests": args.tests,
            "base_seconds": base_s,
            "head_seconds": head_s,
            **result,
        }
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n")
        if args.keep:
            for side, rec in (("base", base_rec), ("head", head_rec)):
                shutil.copytree(rec, args.keep / side, dirs_exist_ok=True)
        print(
            f"{result['files']} metrics files, {result['values']} values compared; "
            f"{len(result['differences'])} differences"
        )
        for line in result["differences"][:50]:
            print("  " + line)
        return 1 if result["differences"] else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
