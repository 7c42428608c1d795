"""The model store: trained models kept in the cache, found by what defines them.

A stored model is a checkpoint (state dict, model name and config, wrapper normalisation,
training config, dataset, metrics, and the sha256 of the weights) under
``$ADVLAB_CACHE_DIR/models/<model>-<dataset>-<key>/model.pt``, where ``key`` hashes everything
that defines the training. Experiments call `get_trained`, which loads the model or trains and
stores it first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.data import ArrayDataset, get_spec, load_dataset
from advlab.data.registry import stratified_split
from advlab.data.store import cache_dir
from advlab.errors import ConfigError, RunError
from advlab.fileio import write_atomic
from advlab.models import MODELS, ModelWrapper, create_model
from advlab.models.weights import weights_source
from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.trainer import History, Objective, TrainConfig, evaluate, fit

log = logging.getLogger(__name__)

# Bump when the checkpoint layout changes.
STORE_FORMAT = 1


@dataclass(frozen=True)
class ModelRecipe:
    """Everything that defines a stored model: architecture, data and training.

    Args:
        model: Registered model name (``advlab list models``).
        dataset: Registered dataset name; trained on its ``train`` split, validated on its
            ``val`` split where it has one (else ``test``), and measured on ``test``.
        model_config: Extra keyword configuration of the model factory.
        train: Training hyperparameters.
        normalize: Put the training set's per-channel mean/std into the model wrapper.
        objective: A description of the training objective when it is not plain cross-entropy
            (e.g. adversarial training: ``advlab.defenses.objective_spec``); training then needs
            the matching callable (``get_trained(recipe, objective=...)``). Empty: plain
            cross-entropy, and the key is what it was before this field existed.
        data_options: Options of `load_dataset` for every split (e.g. ``{"image_size": 72}``
            for flowers17).
        held_out: Share of the evaluation split (``test``, else ``val``) kept away from
            training: the rest is the validation data `fit` sees (and early stopping picks its
            epoch on), the held-out share gives an accuracy the selection never saw
            (``held_out_accuracy`` in the metrics). 0: `fit` validates on the whole split.
        train_fraction: Stratified share of the training split trained on (seeded by
            ``train.seed``); `train_parts` gives the indices of both parts, so that the rest
            can fit a stacking meta-learner on predictions the model never trained on.

    The last three fields enter the key only when they differ from their defaults, so the keys
    of recipes that leave them alone stay what they were.
    """

    model: str
    dataset: str
    model_config: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    normalize: bool = True
    objective: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    held_out: float = 0.0
    train_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.held_out < 1.0:
            raise ConfigError(f"held_out: expected a share in [0, 1), found {self.held_out!r}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ConfigError(
                f"train_fraction: expected a share in (0, 1], found {self.train_fraction!r}"
            )

    def key(self) -> str:
        fields = asdict(self)
        defaults = {"objective": {}, "data_options": {}, "held_out": 0.0, "train_fraction": 1.0}
        for name, default in defaults.items():
            if fields[name] == default:
                del fields[name]  # keys of plain recipes stay as they were
        text = json.dumps({"format": STORE_FORMAT, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self) -> Path:
        return cache_dir() / "models" / f"{self.model}-{self.dataset}-{self.key()}"


def input_config(model: str, shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    """The factory keywords that describe the data, for those the factory takes.

    Factories name their input differently (``in_shape``, ``in_channels``, ``image_size``);
    this fills in whichever a factory has, from the data's (C, H, W) and class count.
    """
    params = inspect.signature(MODELS.get(model)).parameters
    known = {
        "num_classes": num_classes,
        "in_shape": shape,
        "in_channels": shape[0],
        "image_size": shape[1],
    }
    return {k: v for k, v in known.items() if k in params}


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, shapes and bytes of every tensor in a state dict."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{tuple(t.shape)}\0{t.dtype}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def build(
    recipe: ModelRecipe,
    shape: tuple[int, int, int],
    num_classes: int,
    mean: list[float] | None,
    std: list[float] | None,
) -> ModelWrapper:
    cfg = {**input_config(recipe.model, shape, num_classes), **recipe.model_config}
    return ModelWrapper(create_model(recipe.model, **cfg), mean=mean, std=std)


def check_recipe(recipe: ModelRecipe) -> ModelRecipe:
    """`recipe`, once its model has been built on the meta device (no memory, no weights) for
    its dataset's image shape and class count: a model setting the model refuses (a negative
    width, an unknown parameter) fails here, in one line, before any work.

    Raises:
        ConfigError: the model cannot be built with `recipe.model_config`.
        RegistryError: an unknown model or dataset name.
    """
    spec = get_spec(recipe.dataset)
    height, width, channels = spec.image_shape
    try:
        with torch.device("meta"):
            build(recipe, (channels, height, width), len(spec.classes), None, None)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"model_config: expected settings {recipe.model} can be built with, found "
            f"{recipe.model_config} ({type(exc).__name__}: {exc})"
        ) from None
    return recipe


def _check_objective(recipe: ModelRecipe, objective: Objective | None) -> None:
    if recipe.objective and objective is None:
        raise ConfigError(
            f"recipe of {recipe.model} on {recipe.dataset} describes the "
            f"training objective {recipe.objective}: pass that objective "
            "(objective=...)"
        )
    if objective is not None and not recipe.objective:
        raise ConfigError(
            "objective given, but the recipe does not describe it (set "
            "ModelRecipe.objective, which enters the store key)"
        )


def _splits(recipe: ModelRecipe) -> tuple[ArrayDataset, ArrayDataset, str]:
    """The training split, the split `fit` validates on (``val`` where the dataset has one,
    else ``test``) and its name."""
    spec = get_spec(recipe.dataset)
    split = "val" if "val" in spec.counts else "test"
    train = load_dataset(recipe.dataset, "train", **recipe.data_options)
    return train, load_dataset(recipe.dataset, split, **recipe.data_options), split


def train_parts(recipe: ModelRecipe, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training split that `recipe` trains on, and of the rest (empty when
    ``train_fraction`` is 1): a stratified split seeded by the training seed."""
    if recipe.train_fraction >= 1.0:
        return np.arange(len(labels)), np.arange(0)
    parts = stratified_split(
        labels,
        {"fit": recipe.train_fraction, "rest": 1.0 - recipe.train_fraction},
        seed=recipe.train.seed,
    )
    return parts["fit"], parts["rest"]


def _evaluation_parts(
    recipe: ModelRecipe, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    if recipe.held_out <= 0.0:
        return np.arange(len(labels)), None
    parts = stratified_split(
        labels, {"held": recipe.held_out, "select": 1 - recipe.held_out}, seed=recipe.train.seed
    )
    return parts["select"], parts["held"]


def evaluation_parts(recipe: ModelRecipe) -> tuple[ArrayDataset, ArrayDataset | None]:
    """The evaluation split as `recipe` used it: (the part `fit` validated on, the held-out
    part or None when ``held_out`` is 0)."""
    _, evaluation, _ = _splits(recipe)
    selection, held = _evaluation_parts(recipe, evaluation.labels)
    return evaluation.subset(selection), None if held is None else evaluation.subset(held)


def train_and_store(
    recipe: ModelRecipe, *, device: str = "cpu", objective: Objective | None = None
) -> Path:
    """Train `recipe` from scratch and store it; returns the checkpoint path.

    `objective` is the training objective `recipe.objective` describes (required when that is
    set, refused when it is not), passed on to `fit`.
    """
    _check_objective(recipe, objective)
    train, evaluation, split = _splits(recipe)
    fit_part, _ = train_parts(recipe, train.labels)
    selection, held = _evaluation_parts(recipe, evaluation.labels)
    x, y = train.subset(fit_part).tensors(device)
    xt, yt = evaluation.subset(selection).tensors(device)
    mean = std = None
    if recipe.normalize:
        mean = x.mean(dim=(0, 2, 3)).tolist()
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
    torch.manual_seed(recipe.train.seed)
    model = build(recipe, train.shape, train.num_classes, mean, std).to(device)
    folder = recipe.folder()
    start = time.perf_counter()
    history: History = fit(
        model,
        (x, y),
        recipe.train,
        val=(xt, yt),
        checkpoint=folder / "training.pt",
        objective=objective,
    )
    seconds = time.perf_counter() - start
    loss, acc = evaluate(model, xt, yt)
    metrics: dict[str, Any] = {
        f"{split}_accuracy": acc,
        f"{split}_loss": loss,
        "train_seconds": seconds,
        "history": history.as_dict(),
        "n_train": len(y),
    }
    if held is not None:
        xh, yh = evaluation.subset(held).tensors(device)
        metrics["held_out_loss"], metrics["held_out_accuracy"] = evaluate(model, xh, yh)
        metrics["n_selection"], metrics["n_held_out"] = len(yt), len(yh)
    if split != "test" and "test" in get_spec(recipe.dataset).counts:
        # Validated on val (e.g. FER2013's PublicTest): the test split was never looked at.
        xs, ys = load_dataset(recipe.dataset, "test", **recipe.data_options).tensors(device)
        metrics["test_loss"], metrics["test_accuracy"] = evaluate(model, xs, ys)
        split, acc = "test", metrics["test_accuracy"]
    path = save_model(folder / "model.pt", model, recipe, train.shape, train.num_classes, metrics)
    summary = {
        "model": recipe.model,
        "dataset": recipe.dataset,
        "accuracy": acc,
        "split": split,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "train_seconds": round(seconds, 1),
        "recipe": asdict(recipe),
    }
    write_atomic(folder / "meta.json", json.dumps(summary, indent=2, default=str) + "\n")
    (folder / "training.pt").unlink(missing_ok=True)
    return path


def save_model(
    path: Path,
    model: ModelWrapper,
    recipe: ModelRecipe,
    shape: tuple[int, int, int],
    num_classes: int,
    metrics: dict[str, Any],
) -> Path:
    """Write `model` (a ModelWrapper around `recipe.model`) as a store checkpoint at `path`.

    The file holds the weights and their sha256, the architecture, the input shape, the
    wrapper's normalisation and bounds, where the starting weights came from, the recipe's
    training config and dataset, and `metrics`; `load_model` rebuilds it.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_checkpoint(
        path,
        {
            "format": STORE_FORMAT,
            "state_dict": state,
            "weights_sha256": weights_sha256(state),
            "model": {"name": recipe.model, "config": recipe.model_config},
            "input": {"shape": list(shape), "num_classes": num_classes},
            "wrapper": {
                "mean": _as_list(model.mean),
                "std": _as_list(model.std),
                "bounds": list(model.bounds),
            },
            # Where the starting weights came from; never mistaken for ImageNet ones later.
            "initial_weights": weights_source(model.inner),
            "train": asdict(recipe.train),
            "objective": recipe.objective,
            "dataset": recipe.dataset,
            "data": {
                "options": recipe.data_options,
                "held_out": recipe.held_out,
                "train_fraction": recipe.train_fraction,
            },
            "metrics": metrics,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
        },
    )


def _as_list(buffer: torch.Tensor | None) -> list[float] | None:
    return None if buffer is None else [float(v) for v in buffer.flatten().tolist()]


def load_model(path: Path, *, device: str = "cpu") -> ModelWrapper:
    """Rebuild a stored model from its checkpoint, checking the weights' sha256.

    Raises:
        RunError: the file is missing, corrupt, of another format, or its weights do not fit
            the architecture it names.
    """
    state = load_checkpoint(path, map_location="cpu")
    if state.get("format") != STORE_FORMAT or "state_dict" not in state:
        raise RunError(f"{path}: not an advlab model checkpoint (format {state.get('format')})")
    weights = state["state_dict"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise RunError(
            f"{path}: expected state_dict to map names to tensors, found {type(weights).__name__}"
        )
    if weights_sha256(weights) != state.get("weights_sha256"):
        raise RunError(f"{path}: the weights' sha256 differs from the one recorded; corrupt file")
    try:
        recipe = ModelRecipe(state["model"]["name"], state["dataset"], state["model"]["config"])
        wrapper = state["wrapper"]
        c, h, w = (int(v) for v in state["input"]["shape"])
        num_classes = int(state["input"]["num_classes"])
        mean, std = wrapper["mean"], wrapper["std"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(
            f"{path}: an advlab model checkpoint with a damaged description (expected model, "
            f"dataset, wrapper and input entries; {type(exc).__name__}: {exc})"
        ) from None
    model = build(recipe, (c, h, w), num_classes, mean, std)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise RunError(f"{path}: weights do not fit {recipe.model} ({exc})") from exc
    return model.to(device).eval()


def stored_metrics(recipe: ModelRecipe) -> dict[str, Any]:
    """The metrics recorded when `recipe` was trained and stored (accuracies, ``history``,
    ``train_seconds``); the model must be in the store (`get_trained` puts it there)."""
    path = recipe.folder() / "model.pt"
    if not path.is_file():
        raise RunError(
            f"{path}: {recipe.model} on {recipe.dataset} with this recipe is not in "
            "the store; get_trained(recipe) trains it"
        )
    metrics = load_checkpoint(path, map_location="cpu").get("metrics")
    if not isinstance(metrics, dict):
        raise RunError(f"{path}: no metrics in the checkpoint")
    return metrics


def get_trained(
    recipe: ModelRecipe, *, device: str = "cpu", objective: Objective | None = None
) -> ModelWrapper:
    """The stored model for `recipe`, trained and stored first if it is missing (with
    `objective`, which `recipe.objective` describes; see `train_and_store`)."""
    _check_objective(recipe, objective)
    path = recipe.folder() / "model.pt"
    if not path.is_file():
        log.warning(
            "no stored %s trained on %s with this recipe; training it now (%d epochs)",
            recipe.model,
            recipe.dataset,
            recipe.train.epochs,
        )
        train_and_store(recipe, device=device, objective=objective)
    return load_model(path, device=device)


def stored_models() -> list[dict[str, Any]]:
    """Summaries of every stored model (newest first), from their meta.json files."""
    root = cache_dir() / "models"
    rows = []
    for meta in root.glob("*/meta.json") if root.is_dir() else []:
        try:
            info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        info["path"] = str(meta.parent / "model.pt")
        rows.append(info)
    return sorted(rows, key=lambda r: str(r.get("created", "")), reverse=True)


__all__ = [
    "ModelRecipe",
    "evaluation_parts",
    "get_trained",
    "input_config",
    "load_model",
    "save_model",
    "stored_metrics",
    "stored_models",
    "train_and_store",
    "train_parts",
    "weights_sha256",
]
