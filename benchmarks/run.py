"""Benchmark of advlab's data layer, side by side with torchvision in the same run.

Run from the repository root: ``make bench``, or
``ADVLAB_DATA_DIR=/path/to/data .venv/bin/python benchmarks/run.py``.

Every timed step runs in a fresh Python subprocess (this file, called with ``--worker``), so
nothing is memoised in-process between measurements; each subprocess measures with
``time.perf_counter`` around the step itself, after its imports. Writes
``benchmarks/results/data_loading.json`` and the results table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "data_loading.json"
README_FILE = BENCH_DIR / "README.md"
COMMAND = "make bench"
COMMAND_LONG = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/run.py"

DATASETS = ("mnist", "cifar10", "fer2013", "flowers17")
SPLIT = "train"
REPEATS = 5  # warm-cache subprocesses per measurement; the median is reported
TARGET_S = 0.5  # the target for a second load of the CIFAR-10 training set
MNIST_GZ = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_JPEG_TAR = "cifar10-jpeg.tar.gz"

Result = dict[str, Any]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- workers
# Each worker runs in its own subprocess: imports first (not timed), then the timed steps.


def worker_advlab_tensors(name: str, split: str) -> Result:
    """load_dataset, then tensors(): the float (N, C, H, W) tensor a training loop uses."""
    t0 = time.perf_counter()
    import torch  # tensors() imports torch lazily; import it here so it is not timed

    from advlab.data import load_dataset

    t1 = time.perf_counter()
    ds = load_dataset(name, split)
    t2 = time.perf_counter()
    x, y = ds.tensors("cpu")  # (N, C, H, W) float32 in [0, 1]
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "tensors_s": t3 - t2,
        "n": len(ds),
        "image_shape_hwc": list(ds.images.shape[1:]),
        "tensor_shape": list(x.shape),
        "tensor_dtype": str(x.dtype),
        "labels": int(y.shape[0]),
        "torch_threads": torch.get_num_threads(),
    }


def worker_advlab_uint8(name: str, split: str) -> Result:
    """load_dataset, then a copy of the images into RAM (reads every pixel of the mmap)."""
    t0 = time.perf_counter()
    import numpy as np

    from advlab.data import load_dataset

    t1 = time.perf_counter()
    ds = load_dataset(name, split)
    t2 = time.perf_counter()
    images = np.array(ds.images)  # (N, H, W, C) uint8, no longer backed by the file
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "materialise_s": t3 - t2,
        "n": len(ds),
        "image_shape_hwc": list(images.shape[1:]),
        "pixel_sum": int(images.sum(dtype=np.int64)),
    }


def worker_tv_mnist(root: str, download: bool) -> Result:
    """torchvision.datasets.MNIST(root, train=True), then the float (N, 1, 28, 28) tensor."""
    t0 = time.perf_counter()
    import torch
    from torchvision.datasets import MNIST

    t1 = time.perf_counter()
    ds = MNIST(root, train=True, download=download)
    t2 = time.perf_counter()
    x = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)  # (N, 1, 28, 28) in [0, 1]
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "construct_s": t2 - t1,
        "to_float_s": t3 - t2,
        "n": len(ds),
        "tensor_shape": list(x.shape),
        "pixel_sum": int(ds.data.sum(dtype=torch.int64)),
    }


def worker_tv_imagefolder(root: str) -> Result:
    """ImageFolder over the JPEG tree: scan, decode every image to uint8, then to float."""
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from torchvision.datasets import ImageFolder

    t1 = time.perf_counter()
    ds = ImageFolder(root)
    t2 = time.perf_counter()
    first, _ = ds[0]
    images = np.empty((len(ds), first.height, first.width, 3), np.uint8)  # (N, H, W, C)
    labels = np.empty(len(ds), np.int64)
    for i in range(len(ds)):
        img, label = ds[i]  # PIL decode + convert("RGB"), torchvision's default loader
        images[i] = np.asarray(img)
        labels[i] = label
    t3 = time.perf_counter()
    # The same conversion as ArrayDataset.tensors(), so only the source of the uint8 differs.
    nchw = np.array(images.transpose(0, 3, 1, 2), order="C")
    x = torch.from_numpy(nchw).to(torch.float32).div_(255.0)  # (N, C, H, W) in [0, 1]
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "scan_s": t2 - t1,
        "decode_s": t3 - t2,
        "to_float_s": t4 - t3,
        "n": len(ds),
        "tensor_shape": list(x.shape),
        "pixel_sum": int(images.sum(dtype=np.int64)),
    }


WORKERS: dict[str, Callable[..., Result]] = {
    "advlab_tensors": worker_advlab_tensors,
    "advlab_uint8": worker_advlab_uint8,
    "tv_mnist": worker_tv_mnist,
    "tv_imagefolder": worker_tv_imagefolder,
}


def run_worker(kind: str, env: dict[str, str], out_dir: Path, **kwargs: Any) -> Result:
    """Run one worker in a fresh interpreter and return what it measured."""
    out = Path(tempfile.mkstemp(suffix=".json", dir=out_dir)[1])
    job = json.dumps({"kind": kind, "kwargs": kwargs, "out": str(out)})
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", job],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} {kwargs} failed (rc {proc.returncode}):\n{proc.stderr}")
    result: Result = json.loads(out.read_text())
    out.unlink()
    # Interpreter start-up and imports included: what a fresh script pays in all.
    result["subprocess_wall_s"] = wall
    return result


def repeat_worker(
    kind: str, env: dict[str, str], out_dir: Path, repeats: int, **kwargs: Any
) -> list[Result]:
    return [run_worker(kind, env, out_dir, **kwargs) for _ in range(repeats)]


def summary(runs: list[Result], key: str) -> dict[str, Any]:
    values = [r[key] for r in runs]
    return {
        "median_s": statistics.median(values),
        "min_s": min(values),
        "max_s": max(values),
        "samples_s": values,
    }


# --------------------------------------------------------------------------- measurements


def present(name: str, data_root: Path | None) -> bool:
    folder = data_root / name if data_root is not None else None
    return folder is not None and folder.is_dir() and any(folder.iterdir())


def measure_advlab(name: str, base_env: dict[str, str], tmp: Path) -> Result:
    """Cold load into a fresh cache, then warm loads from that cache in fresh subprocesses."""
    cache = Path(tempfile.mkdtemp(prefix=f"cache-{name}-", dir=tmp))
    env = {**base_env, "ADVLAB_CACHE_DIR": str(cache)}
    log(f"{name}: first load (cold cache, decoding the source)")
    cold = run_worker("advlab_uint8", env, tmp, name=name, split=SPLIT)
    log(f"{name}: first load {cold['load_s']:.2f} s; {REPEATS} warm loads + tensors()")
    warm = repeat_worker("advlab_tensors", env, tmp, REPEATS, name=name, split=SPLIT)
    log(f"{name}: {REPEATS} warm loads + uint8 copy")
    warm_u8 = repeat_worker("advlab_uint8", env, tmp, REPEATS, name=name, split=SPLIT)
    if any(r["pixel_sum"] != cold["pixel_sum"] for r in warm_u8):
        raise RuntimeError(f"{name}: warm-cache pixels differ from the first load")
    load_plus_tensors = [r["load_s"] + r["tensors_s"] for r in warm]
    load_plus_copy = [r["load_s"] + r["materialise_s"] for r in warm_u8]
    return {
        "split": SPLIT,
        "n": cold["n"],
        "image_shape_hwc": cold["image_shape_hwc"],
        "tensor_shape": warm[0]["tensor_shape"],
        "pixel_sum": cold["pixel_sum"],
        "first_load": {
            "seconds": cold["load_s"],
            "runs": 1,
            "includes": (
                "load_dataset(name, 'train') with an empty ADVLAB_CACHE_DIR, in a fresh "
                "subprocess after imports: fingerprint (sha256) of the source, reading the "
                "archive, decoding EVERY split (not only train), writing the .npy cache, "
                "memory-mapping it. The source file was in the OS page cache (not a cold disk)."
            ),
        },
        "second_load": {
            **summary(warm, "load_s"),
            "runs": REPEATS,
            "includes": (
                "load_dataset(name, 'train') with a warm cache, in a fresh subprocess after "
                "imports (interpreter start-up and imports excluded): sha256 of the source "
                "file (the cache key), opening and memory-mapping the .npy files. Pixels are "
                "NOT read yet; see tensors() and uint8 copy."
            ),
        },
        "tensors": {
            **summary(warm, "tensors_s"),
            "runs": REPEATS,
            "includes": (
                "ArrayDataset.tensors('cpu') right after the warm load in the same "
                "subprocess (torch already imported): reading every pixel from the mmap "
                "(page cache), NHWC->NCHW uint8 copy, float32 conversion, /255."
            ),
        },
        "second_load_plus_tensors": {
            "median_s": statistics.median(load_plus_tensors),
            "samples_s": load_plus_tensors,
            "runs": REPEATS,
            "includes": "second_load + tensors, summed per run",
        },
        "second_load_plus_uint8_copy": {
            "median_s": statistics.median(load_plus_copy),
            "samples_s": load_plus_copy,
            "runs": REPEATS,
            "includes": (
                "warm load_dataset + np.array(ds.images) in separate fresh subprocesses: "
                "every uint8 pixel read into RAM (the like-for-like of a decoded uint8 array)"
            ),
        },
        "import_s_median": statistics.median(r["import_s"] for r in warm),
        "subprocess_wall_s_median": statistics.median(r["subprocess_wall_s"] for r in warm),
        "notes": (
            "import_s: `import torch` + `from advlab.data import load_dataset`; "
            "subprocess_wall_s: the whole warm subprocess incl. interpreter start-up."
        ),
    }


def measure_tv_mnist(data_root: Path, base_env: dict[str, str], tmp: Path) -> Result:
    root = tmp / "torchvision-mnist"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for fname in MNIST_GZ:
        (raw / fname).symlink_to(data_root / "mnist" / fname)
    log("torchvision MNIST: first use (md5 check + gunzip + construct)")
    # download=False refuses .gz-only raw folders; download=True finds the .gz files present
    # with the right md5, so it only verifies and decompresses them (no network).
    first = run_worker("tv_mnist", base_env, tmp, root=str(root), download=True)
    log(f"torchvision MNIST: {REPEATS} second constructions")
    second = repeat_worker("tv_mnist", base_env, tmp, REPEATS, root=str(root), download=False)
    construct_plus_float = [r["construct_s"] + r["to_float_s"] for r in second]
    return {
        "n": first["n"],
        "pixel_sum": first["pixel_sum"],
        "first_use": {
            "seconds": first["construct_s"],
            "runs": 1,
            "includes": (
                "MNIST(root, train=True, download=True) with the four .gz files symlinked into "
                "<root>/MNIST/raw/: md5 of each .gz, gunzip of all four to raw IDX files, "
                "reading the train IDX files into uint8/int64 tensors. No network."
            ),
        },
        "second_construction": {
            **summary(second, "construct_s"),
            "runs": REPEATS,
            "includes": (
                "MNIST(root, train=True, download=False) in a fresh subprocess after imports: "
                "reads the raw train IDX files (47 MB) fully into a uint8 tensor (N, 28, 28)."
            ),
        },
        "to_float": {
            **summary(second, "to_float_s"),
            "runs": REPEATS,
            "includes": "ds.data.unsqueeze(1).float().div_(255): (N, 1, 28, 28) in [0, 1]",
        },
        "second_construction_plus_float": {
            "median_s": statistics.median(construct_plus_float),
            "samples_s": construct_plus_float,
            "runs": REPEATS,
            "includes": "second_construction + to_float, summed per run",
        },
    }


def _train_members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tf:
        if "/train/" in f"/{member.name}":
            yield member


def measure_tv_imagefolder(data_root: Path, base_env: dict[str, str], tmp: Path) -> Result:
    dest = tmp / "cifar10-jpeg"
    log("torchvision ImageFolder: extracting the CIFAR-10 train JPEGs (not timed)")
    t0 = time.perf_counter()
    with tarfile.open(data_root / "cifar10" / CIFAR_JPEG_TAR) as tf:
        tf.extractall(dest, members=_train_members(tf), filter="data")
    extract_s = time.perf_counter() - t0
    roots = [p for p in dest.rglob("train") if p.is_dir()]
    if len(roots) != 1:
        raise RuntimeError(f"{CIFAR_JPEG_TAR}: expected one train/ folder, found {roots}")
    log(f"torchvision ImageFolder: extracted in {extract_s:.1f} s; full decode pass")
    run = run_worker("tv_imagefolder", base_env, tmp, root=str(roots[0]))
    return {
        "n": run["n"],
        "pixel_sum": run["pixel_sum"],
        "extract_s_not_timed_below": extract_s,
        "scan": {"seconds": run["scan_s"], "includes": "ImageFolder(root): listing 50,000 files"},
        "decode_pass": {
            "seconds": run["decode_s"],
            "runs": 1,
            "includes": (
                "ds[i] for every i (open + PIL decode + convert('RGB'), torchvision's default "
                "loader), copied into one uint8 array (N, 32, 32, 3); single process, no "
                "DataLoader workers; the JPEG files were in the OS page cache after extraction."
            ),
        },
        "to_float": {
            "seconds": run["to_float_s"],
            "includes": "the same NHWC->NCHW copy, float32 conversion and /255 as tensors()",
        },
        "import_s": run["import_s"],
    }


def measure_peers(
    data_root: Path, advlab: dict[str, Result], base_env: dict[str, str], tmp: Path
) -> dict[str, Result]:
    """torchvision on the same files; each peer only where advlab measured that dataset."""
    peers: dict[str, Result] = {}
    if "mnist" in advlab:
        peer = measure_tv_mnist(data_root, base_env, tmp)
        peer["same_pixels_as_advlab"] = peer["pixel_sum"] == advlab["mnist"]["pixel_sum"]
        peers["torchvision_mnist"] = peer
    if (data_root / "cifar10" / CIFAR_JPEG_TAR).is_file() and "cifar10" in advlab:
        peer = measure_tv_imagefolder(data_root, base_env, tmp)
        peer["same_pixels_as_advlab"] = peer["pixel_sum"] == advlab["cifar10"]["pixel_sum"]
        peers["torchvision_imagefolder_cifar10"] = peer
    return peers


# -------------------------------------------------------------------------------- report


def ratio(peer: float, ours: float) -> float:
    return peer / ours if ours > 0 else float("inf")


def comparisons(results: Result) -> list[Result]:
    """Peer-vs-advlab rows, each naming what both sides include."""
    rows: list[Result] = []
    adv, peers = results["advlab"], results["peers"]
    mnist, tvm = adv.get("mnist"), peers.get("torchvision_mnist")
    if mnist and tvm:
        rows += [
            {
                "dataset": "mnist",
                "what": "first use (decode .gz)",
                "peer": "MNIST(download=True): md5 + gunzip + read",
                "peer_s": tvm["first_use"]["seconds"],
                "advlab": "first load_dataset: decode both splits + write cache",
                "advlab_s": mnist["first_load"]["seconds"],
            },
            {
                "dataset": "mnist",
                "what": "second load",
                "peer": "MNIST(download=False): reads raw IDX",
                "peer_s": tvm["second_construction"]["median_s"],
                "advlab": "load_dataset, warm (mmap, pixels not read)",
                "advlab_s": mnist["second_load"]["median_s"],
            },
            {
                "dataset": "mnist",
                "what": "second load to float tensor",
                "peer": "MNIST(download=False) + .float()/255",
                "peer_s": tvm["second_construction_plus_float"]["median_s"],
                "advlab": "load_dataset, warm + tensors()",
                "advlab_s": mnist["second_load_plus_tensors"]["median_s"],
            },
        ]
    cifar, tvc = adv.get("cifar10"), peers.get("torchvision_imagefolder_cifar10")
    if cifar and tvc:
        decoded = tvc["scan"]["seconds"] + tvc["decode_pass"]["seconds"]
        rows += [
            {
                "dataset": "cifar10",
                "what": "each run, uint8 array",
                "peer": "ImageFolder scan + decode 50,000 JPEGs",
                "peer_s": decoded,
                "advlab": "load_dataset, warm + np.array(images)",
                "advlab_s": cifar["second_load_plus_uint8_copy"]["median_s"],
            },
            {
                "dataset": "cifar10",
                "what": "each run, float tensor",
                "peer": "ImageFolder scan + decode + to float",
                "peer_s": decoded + tvc["to_float"]["seconds"],
                "advlab": "load_dataset, warm + tensors()",
                "advlab_s": cifar["second_load_plus_tensors"]["median_s"],
            },
            {
                "dataset": "cifar10",
                "what": "decode from the archive once",
                "peer": "ImageFolder scan + decode (train only)",
                "peer_s": decoded,
                "advlab": "first load_dataset: train AND test + write cache",
                "advlab_s": cifar["first_load"]["seconds"],
            },
        ]
    for row in rows:
        row["peer_over_advlab"] = ratio(row["peer_s"], row["advlab_s"])
    return rows


def fmt_s(seconds: float) -> str:
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: float) -> str:
    return f"{value:.0f}×" if value >= 10 else f"{value:.2f}×"


def markdown(results: Result) -> str:
    machine = results["machine"]
    lines = [
        f"Measured {machine['date_utc']} on {machine['cpu_model']} "
        f"({machine['cpu_count']} CPUs, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads, torchvision {machine['torchvision']}, "
        f"numpy {machine['numpy']}, Python {machine['python']}). "
        f"Rerun from the repository root with `{COMMAND}` "
        f"(or `{COMMAND_LONG}`). Full numbers: `benchmarks/results/data_loading.json`.",
        "",
        f"**advlab** (`load_dataset(name, '{SPLIT}')`; second load and tensors(): median of "
        f"{REPEATS} fresh subprocesses, interpreter start-up and imports excluded)",
        "",
        "| dataset | train images | image (H, W, C) | first load, cold cache | "
        "second load, warm cache | tensors() | second load + tensors() |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name in DATASETS:
        adv = results["advlab"].get(name)
        if adv is None:
            lines.append(f"| {name} | skipped: {results['skipped'][name]} | | | | | |")
            continue
        lines.append(
            f"| {name} | {adv['n']:,} | {tuple(adv['image_shape_hwc'])} | "
            f"{fmt_s(adv['first_load']['seconds'])} | {fmt_s(adv['second_load']['median_s'])} | "
            f"{fmt_s(adv['tensors']['median_s'])} | "
            f"{fmt_s(adv['second_load_plus_tensors']['median_s'])} |"
        )
    target = results.get("target")
    if target:
        lines += ["", target["text"]]
    rows = results["comparison"]
    if rows:
        lines += [
            "",
            "**Side by side with torchvision** (same run; ratio = torchvision time / advlab time, "
            "above 1 means advlab is faster)",
            "",
            "| dataset | what | torchvision | time | advlab | time | ratio |",
            "|---|---|---|---:|---|---:|---:|",
        ]
        lines += [
            f"| {r['dataset']} | {r['what']} | {r['peer']} | {fmt_s(r['peer_s'])} | "
            f"{r['advlab']} | {fmt_s(r['advlab_s'])} | {fmt_ratio(r['peer_over_advlab'])} |"
            for r in rows
        ]
        tvc = results["peers"].get("torchvision_imagefolder_cifar10")
        if tvc:
            lines += [
                "",
                f"ImageFolder reads JPEG files extracted beforehand; extracting them took "
                f"{fmt_s(tvc['extract_s_not_timed_below'])} (not in the times above). "
                f"Same pixels as advlab: MNIST "
                f"{results['peers'].get('torchvision_mnist', {}).get('same_pixels_as_advlab')}, "
                f"CIFAR-10 {tvc['same_pixels_as_advlab']} (pixel sums).",
            ]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    # mkstemp creates 0600; keep the mode of the file being replaced (0644 for a new one).
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_readme(table: str, section: str = "data_loading") -> None:
    """Put `table` between the ``results:<section>`` markers of benchmarks/README.md."""
    begin, finish = f"<!-- results:{section} -->", f"<!-- /results:{section} -->"
    block = f"{begin}\n{table}\n{finish}"
    text = README_FILE.read_text(encoding="utf-8") if README_FILE.exists() else ""
    start, end = text.find(begin), text.find(finish)
    if start == -1 or end < start:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    else:
        text = text[:start] + block + text[end + len(finish) :]
    write_atomic(README_FILE, text)


def machine_info() -> Result:
    import numpy
    import PIL
    import torch
    import torchvision

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "git": commit or None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help="internal: run one measurement (JSON job)")
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        result = WORKERS[job["kind"]](**job["kwargs"])
        Path(job["out"]).write_text(json.dumps(result))
        return

    started = time.perf_counter()
    value = os.environ.get("ADVLAB_DATA_DIR", "").strip()
    data_root = Path(value).expanduser() if value else None
    if data_root is None:
        log("ADVLAB_DATA_DIR is not set: every dataset is skipped")
    results: Result = {
        "command": COMMAND,
        "command_long": COMMAND_LONG,
        "machine": machine_info(),
        "data_dir": str(data_root) if data_root else None,
        "split": SPLIT,
        "repeats": REPEATS,
        "method": (
            "Every timed step runs in a fresh Python subprocess and is timed inside it with "
            "time.perf_counter around the step only (interpreter start-up and imports "
            "excluded). Cold = a new empty ADVLAB_CACHE_DIR; warm = the cache the cold load "
            "wrote. Source files sit in the OS page cache throughout: disk speed is not measured."
        ),
        "advlab": {},
        "peers": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="advlab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        base_env = {k: v for k, v in os.environ.items() if k != "ADVLAB_CACHE_DIR"}
        for name in DATASETS:
            if not present(name, data_root):
                results["skipped"][name] = f"not found under ADVLAB_DATA_DIR ({data_root})"
                log(f"{name}: skipped ({results['skipped'][name]})")
                continue
            results["advlab"][name] = measure_advlab(name, base_env, tmp)
        if data_root is not None:
            results["peers"] = measure_peers(data_root, results["advlab"], base_env, tmp)
    cifar = results["advlab"].get("cifar10")
    if cifar:
        load = cifar["second_load"]["median_s"]
        both = cifar["second_load_plus_tensors"]["median_s"]
        verdict = "met" if load < TARGET_S else f"MISSED by {fmt_s(load - TARGET_S)}"
        results["target"] = {
            "target_s": TARGET_S,
            "second_load_s": load,
            "met": load < TARGET_S,
            "second_load_plus_tensors_s": both,
            "plus_tensors_met": both < TARGET_S,
            "text": (
                f"Target (second load of the CIFAR-10 training set under {TARGET_S} s): "
                f"**{verdict}** at {fmt_s(load)}; with tensors() as well, {fmt_s(both)} "
                f"({'also under' if both < TARGET_S else 'over'} {TARGET_S} s)."
            ),
        }
    results["comparison"] = comparisons(results)
    results["total_benchmark_s"] = time.perf_counter() - started
    table = markdown(results)
    write_atomic(RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    update_readme(table)
    log(f"done in {results['total_benchmark_s']:.0f} s; wrote {RESULTS_FILE.relative_to(REPO)}")
    print(table)


if __name__ == "__main__":
    main()
