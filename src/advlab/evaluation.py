"""Attack evaluations: these attacks, on these images of this model, in fixed chunks, resumable
and shardable.

An `Evaluation` is plain, frozen data that pickles to any worker: the model's checkpoint file,
the image slice (dataset, split, size, seed), the device, and named probes, each an attack with
its settings (`Fooled`, `PGDRestarts`, `OnePixelProbe`, `JSMABothWays`, or any picklable
callable ``(model, batch) -> {field: array}``). `evaluate` runs the probes on fixed chunks of
the items through `advlab.shards`, one shard in this process or several on a backend; each
shard loads the model and the images once. Adding an attack to an evaluation is one entry in
``probes``.

The result is the same for any shard count because every probe draws its randomness from
per-image streams keyed by the image's index in the whole evaluation (the ``image_ids`` of
`advlab.attacks`), never from a generator shared by a batch.

`pgd_restarts` is the worst case of L-inf PGD over random restarts, image by image. The
statistics of the results (robust accuracy, success among correct images, Wilson intervals,
McNemar's test) are `advlab.analysis.robustness`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from advlab.attacks import JSMA, LinfPGD, OnePixel, TargetedMisclassification, l0_pixels
from advlab.attacks.base import Attack
from advlab.attacks.criteria import Criterion
from advlab.backends import Backend
from advlab.data import load_dataset
from advlab.defenses import open_pixels
from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.shards import run_sharded
from advlab.train.store import load_model

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Batch:
    """One chunk's images as a probe sees them.

    Args:
        x: Images (n, C, H, W) in [0, 1] on the evaluation's device.
        y: True labels, int64 (n,).
        ids: The items' ids in the whole evaluation, int64 (n,): each image's random stream.
        target: Target classes for targeted evaluations, int64 (n,); None: untargeted.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    target: torch.Tensor | None = None

    @property
    def criterion(self) -> torch.Tensor | Criterion:
        """The labels (untargeted) or `TargetedMisclassification` of the targets."""
        return self.y if self.target is None else TargetedMisclassification(self.target)


class Probe(Protocol):
    """An attack as an evaluation runs it: ``probe(model, batch) -> {field: array (n, ...)}``."""

    def __call__(self, model: ModelWrapper, batch: Batch) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Fooled:
    """``attack(model, x, criterion, epsilons=[epsilon])``: which images it broke.

    Args:
        attack: Any `advlab.attacks.Attack`.
        epsilon: The budget (None for unbounded attacks).
        streams: Pass ``image_ids`` (attacks with random starts or searches: PGD, Sparse-RS).
        adversarials: Also return the clipped adversarial images.

    Returns ``{"fooled": bool (n,)}`` (plus ``"adversarials"``).
    """

    attack: Attack
    epsilon: float | None
    streams: bool = True
    adversarials: bool = False

    def __call__(self, model: ModelWrapper, batch: Batch) -> Mapping[str, Any]:
        extra = {"image_ids": batch.ids} if self.streams else {}
        _, clipped, ok = self.attack(
            model, batch.x, batch.criterion, epsilons=[self.epsilon], **extra
        )
        out: dict[str, Any] = {"fooled": ok[0]}
        if self.adversarials:
            out["adversarials"] = clipped[0]
        return out


@dataclass(frozen=True)
class PGDRestarts:
    """`pgd_restarts`: L-inf PGD with random restarts, the worst case per image.

    Returns ``{"fooled": bool (n,), "adversarials": (n, C, H, W)}``.
    """

    epsilon: float
    steps: int = 100
    restarts: int = 10
    rel_stepsize: float = 2.5 / 100
    seed: int = 0

    def __call__(self, model: ModelWrapper, batch: Batch) -> Mapping[str, Any]:
        fooled, adv = pgd_restarts(
            model,
            batch.x,
            batch.y,
            epsilon=self.epsilon,
            steps=self.steps,
            restarts=self.restarts,
            rel_stepsize=self.rel_stepsize,
            seed=self.seed,
            image_ids=batch.ids,
        )
        return {"fooled": fooled, "adversarials": adv}


@dataclass(frozen=True)
class OnePixelProbe:
    """`OnePixel.search` with `pixels` changed pixels (optionally only on the `open_fraction` of
    positions a pixel-attention gate leaves most open: an attacker who knows the defence).

    Returns every field of `advlab.attacks.OnePixelResult` plus ``"misclassified"``: whether
    the model misclassifies the returned image (the honest test, whatever the search says).
    """

    attack: OnePixel
    pixels: int
    open_fraction: float | None = None

    def __call__(self, model: ModelWrapper, batch: Batch) -> Mapping[str, Any]:
        allowed = None
        if self.open_fraction is not None:
            allowed = open_pixels(model, batch.x, self.open_fraction)
        res = self.attack.search(
            model,
            batch.x,
            batch.criterion,
            pixels=self.pixels,
            image_ids=batch.ids,
            allowed=allowed,
        )
        out = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
        out["misclassified"] = model.predict(res.adversarials) != batch.y
        return out


@dataclass(frozen=True)
class JSMABothWays:
    """White-box JSMA through the whole model in both directions (theta +1 and -1), the worst
    case per image, with at most `features` changed values.

    Returns ``{"fooled": bool (n,), "changed": int64 (n,)}``: the pixels the first successful
    direction changed (0 where neither succeeded).
    """

    features: int

    def __call__(self, model: ModelWrapper, batch: Batch) -> Mapping[str, Any]:
        fooled = np.zeros(len(batch.y), dtype=bool)
        changed = np.zeros(len(batch.y), dtype=np.int64)
        for theta in (1.0, -1.0):
            _, clipped, ok = JSMA(theta=theta)(
                model, batch.x, batch.criterion, epsilons=[self.features]
            )
            hit = ok[0].cpu().numpy() & ~fooled
            pixels_changed = l0_pixels(batch.x, clipped[0]).cpu().numpy()
            changed[hit] = pixels_changed[hit]
            fooled |= hit
        return {"fooled": fooled, "changed": changed}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: plain data every worker rebuilds its work from.

    Args:
        checkpoint: The model, as an advlab checkpoint file (a saved model or the model
            store's ``model.pt``, which `advlab.train.store.get_trained` returns the model of).
        dataset: Registered dataset name.
        n_images: The evaluation's images: ``load_dataset(dataset, split).take(n_images,
            seed=seed)``.
        seed: Seed of that sample.
        probes: Name -> probe, run on every chunk in this order.
        split: The dataset split.
        device: Where the model runs.
        targets: 0 for untargeted evaluations, where item ``i`` is image ``i``; else the class
            count, and item ``i`` attacks image ``i // targets`` towards class ``i % targets``.
    """

    checkpoint: str
    dataset: str
    n_images: int
    seed: int
    probes: Mapping[str, Probe] = field(default_factory=dict)
    split: str = "test"
    device: str = "cpu"
    targets: int = 0

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images and labels of the evaluation, on its device."""
        sample = load_dataset(self.dataset, self.split).take(self.n_images, seed=self.seed)
        return sample.tensors(torch.device(self.device))

    def open(self, model: nn.Module | None = None) -> _Opened:
        """The model (loaded from `checkpoint` unless given) and the images, once per shard."""
        if model is None:
            model = load_model(Path(self.checkpoint), device=self.device).eval()
        x, y = self.images()
        return _Opened(self, model, x, y)


@dataclass(frozen=True)
class _Opened:
    evaluation: Evaluation
    model: Any
    x: torch.Tensor
    y: torch.Tensor


def _open(evaluation: Evaluation) -> _Opened:
    return evaluation.open()


def _chunk(opened: _Opened, ids: np.ndarray) -> Arrays:
    """Every probe on the items `ids`; arrays keyed ``"<probe index>.<field>"``."""
    ev = opened.evaluation
    ids_t = torch.as_tensor(ids, device=opened.x.device)
    images = ids_t // ev.targets if ev.targets else ids_t
    target = ids_t % ev.targets if ev.targets else None
    batch = Batch(opened.x[images], opened.y[images], ids_t, target)
    out: Arrays = {}
    for i, probe in enumerate(ev.probes.values()):
        for name, value in probe(opened.model, batch).items():
            value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            out[f"{i}.{name}"] = np.asarray(value)
    return out


def evaluate(
    evaluation: Evaluation,
    ids: np.ndarray | Sequence[int] | torch.Tensor,
    *,
    folder: Path,
    chunk: int,
    shards: int = 1,
    backend: Backend | None = None,
    model: nn.Module | None = None,
    desc: str = "evaluation",
) -> dict[str, Arrays]:
    """Run the evaluation's probes on the items `ids`, in fixed chunks of `chunk` items.

    Args:
        evaluation: What to run, on which model and images.
        ids: Int (N,) item ids (image indices into the evaluation's images, or
            ``image * targets + target``), in the order of the result.
        folder: Where the chunks' files go (``chunks/<name>`` of a run folder); chunks found
            there are not evaluated again (``--resume``).
        chunk: Items per chunk (the result may depend on it, never on `shards`).
        shards: Tasks to cut the chunks into; 1 runs them here, one after another.
        backend: Where shards run when `shards` > 1 (an `advlab.backends.Backend`; None: a
            local pool).
        model: The model already in memory, used when the evaluation runs in this process
            (it must be the checkpoint's model: shards on other workers load the file).
        desc: Label of the progress bar.

    Returns:
        Per probe name, its fields as arrays with one row per id, in the order of `ids`.
    """
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    if not evaluation.probes:
        raise ConfigError("probes: expected at least one attack to evaluate, found none")
    state = evaluation.open(model) if model is not None and shards == 1 else None
    arrays = run_sharded(
        _chunk,
        evaluation,
        ids,
        folder=folder,
        chunk=chunk,
        shards=shards,
        backend=backend,
        desc=desc,
        prepare=_open,
        state=state,
    )
    out: dict[str, Arrays] = {name: {} for name in evaluation.probes}
    names = list(evaluation.probes)
    for key, value in arrays.items():
        index, _, fieldname = key.partition(".")
        out[names[int(index)]][fieldname] = value
    return out


def pgd_restarts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 100,
    restarts: int = 10,
    rel_stepsize: float = 2.5 / 100,
    seed: int = 0,
    image_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L-inf PGD with `restarts` random starts: an image counts as broken if any start breaks it.

    Restart r uses the seed ``seed + r`` and attacks only the images no earlier restart broke
    (those already broken keep their adversarial), so the first restart alone is exactly
    ``LinfPGD(steps, rel_stepsize, random_start=True, seed=seed)``. With `image_ids` (int64
    (N,), the images' indices in a whole evaluation) every image's starts come from its own
    streams, so a chunk of the evaluation gives each of its images the whole run's result.

    Returns:
        (fooled (N,) bool: misclassified after the attack, correct or not before; the
        adversarial images (N, C, H, W), the last restart's for images never broken).
    """
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    adversarial = x.clone()
    for r in range(restarts):
        todo = torch.nonzero(~fooled).flatten()
        if len(todo) == 0:
            break
        attack = LinfPGD(steps=steps, rel_stepsize=rel_stepsize, random_start=True, seed=seed + r)
        extra = {} if image_ids is None else {"image_ids": image_ids[todo]}
        _, clipped, success = attack(model, x[todo], y[todo], epsilons=[epsilon], **extra)
        adversarial[todo] = clipped[0]
        fooled[todo] = success[0]
    return fooled, adversarial
