"""The `advlab` command line (typer). Every command is a thin layer over the library."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from advlab import progress
from advlab.errors import AdvlabError, DataError
from advlab.registry import Registry
from advlab.runtime import keep_freed_memory

app = typer.Typer(
    help="advlab: reproducible ML and adversarial-robustness labs. Results go to runs/.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Find, fetch, import and verify datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
weights_app = typer.Typer(help="Pretrained weights: list and import.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")

emotion_app = typer.Typer(
    help="Emotion recognition on a camera, a video or an image folder (seed 001 Ex. 3).",
    no_args_is_help=True,
)
app.add_typer(emotion_app, name="emotion")

Device = Annotated[str, typer.Option("--device", help="cpu or cuda[:N].")]
Out = Annotated[Path, typer.Option("--out", help="Root folder of run folders.")]


def _progress() -> bool:
    return sys.stderr.isatty()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    # advlab logs INFO (runs keep it in run.log); the terminal shows warnings unless --verbose.
    logger = logging.getLogger("advlab")
    logger.setLevel(logging.INFO)
    handler = next((h for h in logger.handlers if getattr(h, "advlab_cli", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.advlab_cli = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    progress.enable(_progress())
    keep_freed_memory()


@app.command()
def run(
    experiment: Annotated[
        str,
        typer.Argument(
            help="Experiment name (see `advlab list`); with --resume, also a run folder."
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value: key=value (repeatable)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the run (default: config's).")] = None,
    device: Device = "cpu",
    out: Out = Path("runs"),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an unfinished run: the folder given as EXPERIMENT, or the newest run "
            "of EXPERIMENT (`advlab runs` lists them).",
        ),
    ] = False,
    shards: Annotated[
        int,
        typer.Option(
            help="Attack evaluations (onepixel-cifar, apr-cifar, robust-*): run their fixed "
            "image chunks as N parallel tasks; same results as 1."
        ),
    ] = 1,
    backend: Annotated[
        str, typer.Option(help="Where --shards run: local (a process pool here) or ray.")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (host:port or auto); default: a private one."),
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option(help="Ray: at most K shards at once (default: all that fit).")
    ] = None,
) -> None:
    """Run an experiment; writes runs/<experiment>/<timestamp>/ with report.md and report.html.

    With --shards N an attack evaluation's images (in fixed chunks) are spread over N tasks,
    on this machine or, with --backend ray, on a Ray cluster; a shard whose worker dies is
    retried, and --resume keeps every chunk already finished.
    """
    from advlab.backends import make_backend
    from advlab.experiments import run_experiment

    chosen = make_backend(  # None: a local pool of min(shards, cores) workers
        backend,
        address=address,
        max_parallel=max_parallel,
        gpus=1.0 if device.startswith("cuda") else 0.0,
    )
    result = run_experiment(
        experiment,
        set_ or [],
        seed=seed,
        device=device,
        out=out,
        resume=resume,
        progress=_progress(),
        shards=shards,
        backend=chosen,
    )
    typer.echo(f"report: {result.file('report.html')}")


@app.command()
def sweep(
    experiment: Annotated[str, typer.Argument(help="Experiment name (see `advlab list`).")],
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid",
            help="key=v1,v2,... a swept setting (repeatable); list values in brackets: "
            "epsilons=[0.0,0.1],[0.3]",
        ),
    ],
    seeds: Annotated[int, typer.Option(help="Seeds per setting (0..N-1).")] = 3,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="key=value fixed for every point (repeatable)."),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Dotted path of a metric to tabulate and plot, e.g. fgsm.-1.accuracy."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Parallel runs of --backend local (default min(2, points))."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="local: a process pool here; ray: tasks on a Ray cluster."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join (host:port from `ray start --head`, or auto); default: "
            "a private one on this machine."
        ),
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option(help="Ray: at most K points at once (default: all that fit).")
    ] = None,
    device: Device = "cpu",
    out: Out = Path("runs"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip finished points; redo failed or missing ones.")
    ] = False,
) -> None:
    """Run EXPERIMENT over a grid of settings x seeds, locally or on Ray; write a report.

    With --backend ray every point is a Ray task (1 CPU, and 1 GPU when --device is cuda);
    the sweep folder must be on a filesystem every node sees at the same path.
    """
    from advlab.backends import make_backend
    from advlab.overrides import parse_grid
    from advlab.sweep import run_sweep

    chosen = make_backend(
        backend,
        workers=workers,
        address=address,
        max_parallel=max_parallel,
        gpus=1.0 if device.startswith("cuda") else 0.0,
    )
    result = run_sweep(
        experiment,
        parse_grid(grid),
        seeds=seeds,
        base_overrides=set_ or [],
        device=device,
        out=out,
        resume=resume,
        workers=workers if chosen is None else None,
        metric=metric or None,
        backend=chosen,
    )
    typer.echo(f"{len(result.points)} points, {len(result.failed)} failed")
    typer.echo(f"report: {result.report}")
    if result.failed:
        raise typer.Exit(1)


@app.command()
def demo(device: Device = "cpu", out: Out = Path("runs")) -> None:
    """Train a small CNN on the embedded MNIST sample, attack it with FGSM, write a report."""
    from advlab.experiments import run_experiment

    typer.echo("advlab demo: training a small CNN on 4,000 MNIST digits, then FGSM ...")
    result = run_experiment("demo", device=device, out=out, progress=_progress())
    metrics = result.load_metrics()
    typer.echo(f"clean test accuracy: {metrics['clean_accuracy']:.4f}")
    for row in metrics["fgsm"]:
        typer.echo(f"  FGSM eps={row['epsilon']:<5g} accuracy {row['accuracy']:.4f}")
    typer.echo(f"report: {result.file('report.html')}")
    typer.echo(f"        {result.file('report.md')}")


@app.command("list")
def list_(
    what: Annotated[
        str | None,
        typer.Argument(help="experiments, models, attacks, defenses or datasets (default all)."),
    ] = None,
) -> None:
    """List what advlab knows: experiments, models, attacks, defences, datasets (the registries)."""
    from advlab.attacks import ATTACKS
    from advlab.data import DATASETS
    from advlab.defenses import DEFENSES
    from advlab.experiments import EXPERIMENTS
    from advlab.models import MODELS

    registries: dict[str, Registry[Any]] = {
        "experiments": EXPERIMENTS,
        "models": MODELS,
        "attacks": ATTACKS,
        "defenses": DEFENSES,
        "datasets": DATASETS,
    }
    if what is not None and what not in registries:
        raise typer.BadParameter(f"expected one of {', '.join(registries)}, got {what!r}")
    for name, reg in registries.items():
        if what is not None and name != what:
            continue
        typer.echo(f"{name}:")
        width = max([16, *(len(item) for item in reg.names())])
        for item in reg.names():
            typer.echo(f"  {item:<{width}} {reg.help(item)}")


@app.command()
def runs(
    experiment: Annotated[
        str | None, typer.Argument(help="Only the runs of this experiment (default all).")
    ] = None,
    out: Out = Path("runs"),
) -> None:
    """List the run folders under --out: status, start time, experiment, headline number.

    A run whose process died reads as interrupted; continue it with
    `advlab run --resume FOLDER`.
    """
    from advlab.runs import list_runs

    found = list_runs(out, experiment)
    if not found:
        typer.echo(f"no runs under {out}" + (f" for {experiment}" if experiment else ""))
        return
    width = max(len(str(r.path)) for r in found)
    for r in found:
        typer.echo(f"{r.path!s:<{width}}  {r.status:<11} {r.started}  {r.headline}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Rebuild report.md and report.html of a run from its config and metrics."""
    from advlab.experiments import rebuild_report

    typer.echo(f"report: {rebuild_report(run_dir)}")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model name (see `advlab list models`).")],
    data: Annotated[str, typer.Option("--data", help="Dataset to train on (its train split).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="key=value: a training setting (epochs, lr, batch_size, optimizer, schedule, "
            "...) or, for any other key, a model setting such as width (repeatable).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed (default 0).")] = None,
    device: Device = "cpu",
    out: Out = Path("runs"),
) -> None:
    """Train a model, keep it in the model store (`advlab models`) and report its curves."""
    from dataclasses import fields

    from advlab.data import get_spec
    from advlab.experiments import run_experiment
    from advlab.models import MODELS
    from advlab.train import TrainConfig

    MODELS.get(model)  # unknown names fail here, listing the known ones, before any work
    get_spec(data)
    train_keys = {f.name for f in fields(TrainConfig)} - {"seed"}
    overrides = [f"model={model}", f"dataset={data}"]
    for item in set_ or []:
        key = item.split("=", 1)[0]
        if "=" not in item:
            raise typer.BadParameter(f"--set {item!r}: expected key=value")
        prefix = "train." if key in train_keys else "" if key == "normalize" else "model_config."
        overrides.append(prefix + item)
    typer.echo(f"training {model} on {data} ...")
    result = run_experiment(
        "train", overrides, seed=seed, device=device, out=out, progress=_progress()
    )
    summary = result.load_metrics()
    split, acc = next((k, v) for k, v in summary["metrics"].items() if k.endswith("_accuracy"))
    typer.echo(f"{split.replace('_', ' ')} {acc:.4f}")
    typer.echo(f"stored: {summary['checkpoint']}")
    typer.echo(f"report: {result.file('report.html')}")


@app.command()
def models() -> None:
    """List the trained models in the store: model, dataset, accuracy, date, path."""
    from advlab.train.store import stored_models

    rows = stored_models()
    if not rows:
        typer.echo("no stored models yet; train one with `advlab train MODEL --data DATASET`")
    for r in rows:
        acc = f"{r['split']} acc {r['accuracy']:.4f}"
        typer.echo(f"{r['model']:<12} {r['dataset']:<12} {acc:<18} {r['created']}  {r['path']}")


@data_app.command("info")
def data_info() -> None:
    """List the datasets, which are present, and where."""
    from advlab.data import DATASETS, get_spec, locate
    from advlab.data.store import cache_dir, data_dir

    typer.echo(f"ADVLAB_DATA_DIR : {data_dir() or '(not set)'}")
    typer.echo(f"ADVLAB_CACHE_DIR: {cache_dir()}")
    for name in DATASETS.names():
        try:
            where = "embedded" if get_spec(name).embedded else (locate(name) or "missing")
        except DataError as exc:
            where = f"broken: {exc}"
        typer.echo(f"  {name:<13} {where}")


@data_app.command("verify")
def data_verify(
    name: Annotated[
        str | None, typer.Argument(help="Dataset (default: every present one).")
    ] = None,
) -> None:
    """Check files, counts and shapes of one dataset or of all present ones."""
    from advlab.data import DATASETS, get_spec, locate, verify

    def present(item: str) -> bool:
        try:
            return get_spec(item).embedded or locate(item) is not None
        except DataError:
            return True  # there, but broken: verify says how

    names = [name] if name else [n for n in DATASETS.names() if present(n)]
    failed = False
    for item in names:
        result = verify(item)
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        typer.echo(f"{'ok  ' if result.ok else 'FAIL'} {item:<13} {counts}  [{result.source}]")
        for problem in result.problems:
            typer.echo(f"     - {problem}")
        failed |= not result.ok
    if failed:
        raise typer.Exit(1)


@data_app.command("fetch")
def data_fetch(name: Annotated[str, typer.Argument(help="Dataset to download.")]) -> None:
    """Download a dataset's official files (resumable, checksum-checked), then verify them."""
    from advlab.data import fetch, verify

    dest = fetch(name, progress=_progress())
    result = verify(name)
    typer.echo(f"{'ok' if result.ok else 'FAIL'}: {name} in {dest}")
    if not result.ok:
        raise typer.Exit(1)


@data_app.command("import")
def data_import(
    name: Annotated[str, typer.Argument(help="Dataset the copy is of.")],
    path: Annotated[Path, typer.Argument(help="Archive, file or folder holding the copy.")],
) -> None:
    """Validate a local copy of a dataset and install it in the cache."""
    from advlab.data import import_dataset

    dest = import_dataset(name, path)
    typer.echo(f"installed {name} from {path} as {dest}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A stored model (see `advlab models`).")],
    format_: Annotated[str, typer.Option("--format", help="pt, onnx or h5 (Keras).")] = "pt",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file or folder (default: beside it).")
    ] = None,
) -> None:
    """Export a stored model: pt (advlab), onnx, or h5 (Keras 3, legacy H5 layout)."""
    from advlab.train.export import default_export_path, export_model

    target = out or default_export_path(checkpoint, format_)
    typer.echo(f"exported: {export_model(checkpoint, target, format=format_)}")


@weights_app.command("info")
def weights_info() -> None:
    """List the pretrained weights advlab knows and whether a verified copy is present."""
    from advlab.errors import WeightsNotFoundError
    from advlab.models.weights import WEIGHTS, find_weights

    for name in WEIGHTS:
        cfg = WEIGHTS.get(name)
        try:
            where = str(find_weights(cfg))
        except WeightsNotFoundError:
            where = "NOT AVAILABLE (advlab weights import FILE)"
        typer.echo(f"{name:<20} {cfg.file:<26} {where}")


@weights_app.command("import")
def weights_import(
    path: Annotated[Path, typer.Argument(help="A weights file, e.g. resnet18-f37072fd.pth.")],
) -> None:
    """Check a pretrained weights file's sha256 against the known weights and install it."""
    from advlab.models.weights import import_weights

    typer.echo(f"installed: {import_weights(path)}")


EMOTION_DATASETS = ("fer2013",)  # what `emotion live` models are trained on

_LIVE_HELP = {
    "model": "A stored FER2013 classifier (a model.pt of `advlab models`).",
    "source": "Camera index (0), video file or image folder.",
    "smooth": "Average each face's probabilities over its last N frames (1: off).",
    "profile": "Print per-stage latencies.",
    "show": "Show an annotated window (needs a display; q quits).",
    "record": "Save the annotated video (.avi).",
    "max_frames": "Stop after N frames.",
    "detect_scale": "Search faces on the frame resized by this factor.",
    "min_face": "Smallest face side searched, in pixels.",
}


@emotion_app.command("live")
def emotion_live(
    model: Annotated[Path, typer.Option("--model", help=_LIVE_HELP["model"])],
    source: Annotated[str, typer.Option("--source", help=_LIVE_HELP["source"])] = "0",
    smooth: Annotated[int, typer.Option("--smooth", help=_LIVE_HELP["smooth"])] = 1,
    profile: Annotated[bool, typer.Option("--profile", help=_LIVE_HELP["profile"])] = False,
    show: Annotated[bool, typer.Option("--show", help=_LIVE_HELP["show"])] = False,
    record: Annotated[Path | None, typer.Option("--record", help=_LIVE_HELP["record"])] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", help=_LIVE_HELP["max_frames"])
    ] = None,
    detect_scale: Annotated[
        float, typer.Option("--detect-scale", help=_LIVE_HELP["detect_scale"])
    ] = 0.5,
    min_face: Annotated[int, typer.Option("--min-face", help=_LIVE_HELP["min_face"])] = 40,
    device: Device = "cpu",
) -> None:
    """Detect and classify the faces of every frame; one line per frame, Ctrl-C stops."""
    from advlab.data import get_spec
    from advlab.emotion import EmotionRecognizer, HaarFaceDetector, open_source
    from advlab.emotion.live import run_live
    from advlab.train.checkpoint import load_checkpoint
    from advlab.train.store import load_model

    net = load_model(model, device=device)
    meta = load_checkpoint(model, map_location="cpu")
    c, h, _ = meta["input"]["shape"]
    if c != 1:
        raise DataError(
            f"--model {model}: expected a grayscale face classifier (1 input "
            f"channel), found {c} channels"
        )
    spec = get_spec(meta["dataset"])
    if spec.name not in EMOTION_DATASETS:
        raise DataError(
            f"--model {model}: expected a face-emotion classifier (trained on "
            f"{', '.join(EMOTION_DATASETS)}), found a model of {spec.name} "
            f"({len(spec.classes)} classes: {', '.join(spec.classes[:4])}, ...)"
        )
    classes = spec.classes
    detector = HaarFaceDetector(scale=detect_scale, min_size=min_face)
    recognizer = EmotionRecognizer(
        net, classes, detector, size=int(h), smooth=smooth, device=device
    )
    summary = run_live(
        open_source(source),
        recognizer,
        emit=typer.echo,
        profile=profile,
        show=show,
        record=record,
        max_frames=max_frames,
    )
    stages = ", ".join(f"{k} {v:.1f} ms" for k, v in summary.latency_ms.items())
    typer.echo(
        f"{'interrupted: ' if summary.interrupted else ''}{summary.frames} frames, "
        f"{summary.faces} faces, {summary.fps:.1f} frames/s ({stages})",
        err=True,
    )
    if record is not None:
        resized = f", {summary.resized} of them resized" if summary.resized else ""
        typer.echo(f"recorded {summary.recorded} frames to {record}{resized}", err=True)


@emotion_app.command("make-clip")
def emotion_make_clip(
    out: Annotated[Path, typer.Argument(help="A .avi file (MJPG) or a folder (PNG frames).")],
    frames: Annotated[int, typer.Option("--frames", help="Frames.")] = 100,
    faces: Annotated[int, typer.Option("--faces", help="Faces per frame.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Which faces and paths.")] = 0,
) -> None:
    """Write a synthetic clip (declared as such in its manifest): FER2013 PrivateTest faces
    at known boxes on a generated 640 x 480 background."""
    import numpy as np

    from advlab.data import load_dataset
    from advlab.emotion.clip import ClipSpec, make_clip, manifest_path

    test = load_dataset("fer2013", "test")
    pick = np.random.default_rng(seed).choice(len(test), size=faces, replace=False)
    images = np.asarray(test.images)[pick][..., 0]
    path = make_clip(
        out,
        images,
        np.asarray(test.labels)[pick],
        list(test.classes),
        ClipSpec(frames=frames, faces=faces, seed=seed),
        indices=pick,
    )
    typer.echo(f"synthetic clip: {path} (manifest {manifest_path(path)})")


def main() -> None:
    """Entry point: advlab errors become one line on stderr and exit status 2."""
    try:
        app()
    except AdvlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: a bug, keep its traceback
            raise
        # A folder or file advlab cannot use (read-only, a file where a folder belongs, full).
        typer.echo(
            f"error: {exc.filename}: {exc.strerror or exc}; expected a writable, usable path "
            "(check --out, ADVLAB_CACHE_DIR, ADVLAB_DATA_DIR)",
            err=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
