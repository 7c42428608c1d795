"""The one-pixel attack: differential evolution over d pixels, every image's population at once.

Su, Vargas and Sakurai encode a candidate as d pixels of (x, y, r, g, b) and evolve a population
of candidates per image with DE/rand/1 (F = 0.5, no crossover); a child replaces its parent only
when it is fitter. Here the populations of all images still running are stacked into one
(images x population) batch, rendered with one indexed write and evaluated with chunked forward
passes, so a generation costs one pass over `images * population` candidates whatever the number
of images. Randomness comes from per-image counter-based streams (`random_streams`), so an
image draws the same random numbers in any batch, chunk or shard (its trajectory is then the
same up to the floating-point differences a model's logits may have between batch sizes; on
CPU, in the tests, it is bit for bit the same).

Constraint handling: coordinates are clipped to the image ([0, W - 1], [0, H - 1]) after every
mutation and rounded to the nearest pixel when a candidate is rendered; colours are clipped to
[0, 255] and rounded to whole 8-bit levels, so every adversarial is an 8-bit image again. Where
two of a candidate's pixels land on the same position, the later one is written (the pixels are
written one after another, so this holds on every device).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import (
    FixedEpsilonAttack,
    check_float,
    check_inputs,
    check_int,
    chunk_size,
    get_bounds,
    get_criterion,
    get_labels,
    raise_if_kwargs,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l0_pixels
from advlab.attacks.random_streams import normal, uniform
from advlab.attacks.registry import ATTACKS
from advlab.errors import AttackError, ConfigError
from advlab.models.frozen import freeze_for_inference
from advlab.models.wrapper import eval_mode
from advlab.progress import progress

STRATEGIES = ("rand1", "best1", "currenttobest1")
STOP_RULES = ("threshold", "misclassified")
PAPER_THRESHOLD_UNTARGETED = 0.05
"""Stop when the true class's probability falls below this (Su et al., the untargeted runs)."""
PAPER_THRESHOLD_TARGETED = 0.5
"""Stop when the target class's probability exceeds this (Su et al., targeted on CIFAR-10)."""

GPU_CANDIDATES = 4096
"""Candidates per forward pass on an accelerator when no batch size is given."""

# Random streams (see random_streams): one number per drawn quantity.
_INIT_POSITION, _INIT_COLOUR, _PICK = 0, 1, 3  # _INIT_COLOUR uses streams 1 and 2
COLOUR_MEAN, COLOUR_STD = 128.0, 127.0
"""The initial colours: N(128, 127) per channel on the 0-255 scale, clipped (Su et al.)."""


@dataclasses.dataclass(frozen=True)
class OnePixelResult:
    """What the differential evolution found, per image.

    Attributes:
        adversarials: The returned images (N, C, H, W): the fittest adversarial candidate
            found, or the fittest candidate when none was adversarial.
        pixels: That candidate as (N, d, 5) rows of (x, y, r, g, b), whole numbers in a float
            tensor: column and row, colour on the 0-255 scale.
        probability: The model's probability for the true class (untargeted) or the target
            class (targeted) on the returned image, (N,).
        found: Whether some evaluated candidate was adversarial, bool (N,).
        first_success_generation: The generation at which the first adversarial candidate was
            evaluated (0 = the initial population), -1 where none was; int64 (N,).
        generations: Generations run before the image stopped, int64 (N,).
        queries: Candidates evaluated for the image: population * (1 + generations), (N,).
        queries_to_success: population * (1 + first_success_generation), -1 where not found.
    """

    adversarials: torch.Tensor
    pixels: torch.Tensor
    probability: torch.Tensor
    found: torch.Tensor
    first_success_generation: torch.Tensor
    generations: torch.Tensor
    queries: torch.Tensor
    queries_to_success: torch.Tensor


def _distinct_others(u: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (A, P, count), distinct per row and different from the row's own index i.

    `u` holds uniform values (A, P, count). Value k is drawn from the P - 1 - k indices not yet
    taken and mapped onto [0, P) by stepping over the taken ones in ascending order.
    """
    a, p, _ = u.shape
    own = torch.arange(p, device=u.device).expand(a, p)[..., None]  # (A, P, 1)
    taken = own
    picks = []
    for k in range(count):
        r = (u[..., k] * (p - 1 - k)).long().clamp_max(p - 2 - k)[..., None]
        for e in torch.sort(taken, dim=-1).values.unbind(-1):
            r = r + (r >= e[..., None]).long()
        picks.append(r)
        taken = torch.cat([taken, r], dim=-1)
    return torch.cat(picks, dim=-1)


@ATTACKS.register(
    "one-pixel", help="One-pixel attack, differential evolution over d pixels (Su et al. 2019)"
)
class OnePixel(FixedEpsilonAttack):
    """One-pixel attack: differential evolution of d-pixel changes, batched over images.

    Each image gets `population` candidates of d pixels (x, y, r, g, b): x, y uniform over the
    image, colours ~ N(128, 127) on the 0-255 scale, clipped. Every generation makes one child
    per candidate by mutation without crossover: "rand1" `x_r1 + F (x_r2 - x_r3)` (the paper's
    DE/rand/1), "best1" `x_best + F (x_r1 - x_r2)`, "currenttobest1"
    `x_i + F (x_best - x_i) + F (x_r1 - x_r2)`, with r1, r2, r3 distinct and different from i.
    The fitness is the model's probability of the true class (untargeted, minimised) or of the
    target class (targeted, maximised), compared as log-probabilities (same order, no float32
    saturation near 1); a child replaces its parent only when strictly fitter.
    An image stops after `max_generations`, or early: with `stop="threshold"` (the paper's)
    once the best true-class probability is below `threshold` (default 0.05) or the best
    target probability above it (default 0.5); with `stop="misclassified"` as soon as some
    candidate is adversarial. See the module docstring for the constraint handling.

    The budget epsilon is the number of changed pixels d (distance `l0_pixels`): 1, 3 or 5 in
    the paper; a fractional epsilon is rounded down, and epsilon < 1 returns the inputs.
    Inputs must be RGB, (N, 3, H, W).

    Args:
        population: Candidates per image (>= 4); the paper uses 400.
        max_generations: Generations at most (>= 0); the paper uses 100.
        mutation_factor: F, the scale of difference vectors; the paper uses 0.5.
        strategy: "rand1" (the paper's), "best1" or "currenttobest1".
        stop: "threshold" (the paper's early stop) or "misclassified".
        threshold: The probability for `stop="threshold"`; None for the paper's 0.05
            (untargeted) or 0.5 (targeted).
        seed: Seed of the per-image random streams; None draws one from torch's global RNG.
        batch_size: Candidates per forward pass; None for automatic (128 on CPU,
            `GPU_CANDIDATES` on an accelerator).
        frozen: Evaluate candidates with a frozen TorchScript copy of the model
            (`advlab.models.frozen.freeze_for_inference`: batch norm folded, oneDNN kernels on
            CPU), the same function up to float rounding and about 1.4x faster on CPU for a
            ResNet-18; the returned images' probabilities still come from the model itself.
            A model that cannot be traced raises AttackError.

    Returns:
        As `Attack`: `(raw, clipped, success)`; raw changes at most epsilon pixels. `search`
        returns the full `OnePixelResult` (generations and queries per image).

    References:
        Su, Vargas, Sakurai 2019, "One Pixel Attack for Fooling Deep Neural Networks", IEEE
        Transactions on Evolutionary Computation 23(5).
    """

    distance = l0_pixels

    def __init__(
        self,
        *,
        population: int = 400,
        max_generations: int = 100,
        mutation_factor: float = 0.5,
        strategy: str = "rand1",
        stop: str = "threshold",
        threshold: float | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        frozen: bool = False,
    ) -> None:
        check_int("population", population, minimum=4)
        check_int("max_generations", max_generations, minimum=0)
        check_float("mutation_factor", mutation_factor, strict=True)
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy: expected one of {STRATEGIES}, found {strategy!r}")
        if stop not in STOP_RULES:
            raise ConfigError(f"stop: expected one of {STOP_RULES}, found {stop!r}")
        check_float("threshold", threshold, optional=True)
        if threshold is not None and not 0 <= threshold <= 1:
            raise ConfigError(f"threshold: expected None or a probability, found {threshold!r}")
        check_int("seed", seed, minimum=0, optional=True)
        check_int("batch_size", batch_size, optional=True)
        self.population = population
        self.max_generations = max_generations
        self.mutation_factor = mutation_factor
        self.strategy = strategy
        self.stop = stop
        self.threshold = threshold
        self.seed = seed
        self.batch_size = batch_size
        if not isinstance(frozen, bool):
            raise ConfigError(f"frozen: expected True or False, found {frozen!r}")
        self.frozen = frozen

    def run(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        *,
        epsilon: float | None,
        **kwargs: Any,
    ) -> torch.Tensor:
        image_ids = kwargs.pop("image_ids", None)
        allowed = kwargs.pop("allowed", None)
        raise_if_kwargs(kwargs)
        pixels = int(epsilon) if epsilon is not None else 0
        if pixels < 1:
            return inputs.detach().clone()
        return self.search(
            model, inputs, criterion, pixels=pixels, image_ids=image_ids, allowed=allowed
        ).adversarials

    def search(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion_or_labels: Criterion | torch.Tensor,
        *,
        pixels: int,
        image_ids: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
    ) -> OnePixelResult:
        """Runs the evolution on a batch and returns everything it found.

        Args:
            model: Classifier on pixels in its `bounds`, (N, 3, H, W) -> logits.
            inputs: Images (N, 3, H, W) in the model's bounds.
            criterion_or_labels: Misclassification / TargetedMisclassification, or labels.
            pixels: d, the number of pixels a candidate changes (>= 1).
            image_ids: Int64 (N,) ids that select each image's random stream; None for
                0..N-1. Give the images' indices in the whole evaluation to make a shard's
                results equal those of one unsharded run.
            allowed: Bool (N, H, W): the positions the attack may change (an attacker who
                knows where a defence lets pixels through), None for anywhere. Initial
                positions are then drawn uniformly among each image's allowed ones, and a
                mutated position moves to the nearest allowed one (squared distance, the
                first in row-major order on ties).

        Returns:
            A `OnePixelResult`.
        """
        x = check_inputs(model, inputs)
        if x.shape[1] != 3:
            raise AttackError(
                f"inputs: the one-pixel attack changes RGB pixels, expected (N, 3, H, W), "
                f"found {x.shape[1]} channels"
            )
        check_int("pixels", pixels)
        criterion = get_criterion(criterion_or_labels)
        classes, targeted = get_labels(criterion)
        n = x.shape[0]
        ids = torch.arange(n, device=x.device) if image_ids is None else image_ids
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.shape != (n,):
            raise AttackError(f"image_ids: expected an int64 tensor of shape ({n},), found {ids!r}")
        ids = ids.to(x.device)
        if allowed is not None:
            shape = (n, *x.shape[2:])
            if (
                not isinstance(allowed, torch.Tensor)
                or allowed.dtype != torch.bool
                or tuple(allowed.shape) != shape
            ):
                raise AttackError(
                    f"allowed: expected a bool tensor of shape {shape}, found "
                    f"{getattr(allowed, 'dtype', type(allowed))} "
                    f"{tuple(getattr(allowed, 'shape', ()))}"
                )
            if not bool(allowed.flatten(1).any(dim=1).all()):
                raise AttackError("allowed: every image needs at least one allowed position")
            allowed = allowed.to(x.device)
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        with eval_mode(model), torch.no_grad():
            num_classes = model(x[:1]).shape[1]
            criterion.validate(num_samples=n, num_classes=num_classes, device=x.device)
            query = freeze_for_inference(model, x[:16]) if self.frozen else model
            evolution = _Evolution(self, model, query, x, classes, targeted, pixels, ids, seed)
            if allowed is not None:
                evolution.restrict(allowed)
            return evolution.run()


class _Evolution:
    """The state of one `OnePixel.search` call: populations (N, P, d, 5) and their fitness."""

    def __init__(
        self,
        attack: OnePixel,
        model: nn.Module,
        query: nn.Module,
        x: torch.Tensor,
        classes: torch.Tensor,
        targeted: bool,
        pixels: int,
        ids: torch.Tensor,
        seed: int,
    ) -> None:
        # `query` evaluates candidates (the model or its frozen copy); `model` the results.
        self.a, self.model, self.query, self.x = attack, model, query, x
        self.classes = classes
        self.targeted, self.d, self.ids, self.seed = targeted, pixels, ids, seed
        self.low, self.high = get_bounds(model)
        _, _, h, w = x.shape
        self.upper = torch.tensor([w - 1, h - 1, 255.0, 255.0, 255.0], device=x.device)
        # Candidates per forward pass: on CPU small chunks stay in cache (`chunk_size`); on an
        # accelerator the whole generation of every image at once, up to GPU_CANDIDATES.
        on_cpu = x.device.type == "cpu"
        self.chunk = attack.batch_size or (chunk_size(x, None) if on_cpu else GPU_CANDIDATES)
        if attack.threshold is not None:
            self.threshold = attack.threshold
        else:
            self.threshold = PAPER_THRESHOLD_TARGETED if targeted else PAPER_THRESHOLD_UNTARGETED
        self.order: torch.Tensor | None = None  # these three are set by `restrict`
        self.count: torch.Tensor | None = None
        self.snap: torch.Tensor | None = None

    def restrict(self, allowed: torch.Tensor) -> None:
        """Positions limited to `allowed` (N, H, W): the allowed flat indices of each image in
        row-major order (`order`, `count` of them) and the nearest allowed index of every
        position (`snap`, (N, H * W)), from one distance table shared by all images."""
        _, _, h, w = self.x.shape
        flat = allowed.flatten(1)
        self.order = torch.argsort((~flat).to(torch.int8), dim=1, stable=True)
        self.count = flat.sum(dim=1)
        rows, cols = torch.meshgrid(
            torch.arange(h, device=flat.device), torch.arange(w, device=flat.device), indexing="ij"
        )
        coords = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
        dist = torch.cdist(coords, coords).square()  # (HW, HW), exact integers in float32
        step = max(1, 2**24 // dist.numel())  # about 64 MiB of distances at a time
        self.snap = torch.cat(
            [torch.where(f[:, None, :], dist, float("inf")).argmin(dim=2) for f in flat.split(step)]
        )

    def _snap(self, cand: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """`cand` (A, P, d, 5) with every position moved to its image's nearest allowed one."""
        if self.snap is None:
            return cand
        w = self.x.shape[3]
        a = cand.shape[0]
        flat = (cand[..., 1].round().long() * w + cand[..., 0].round().long()).view(a, -1)
        near = self.snap[idx].gather(1, flat).view(cand.shape[:-1])
        position = torch.stack([near % w, near // w], dim=-1).to(cand.dtype)
        return torch.cat([position, cand[..., 2:]], dim=-1)

    def initial(self, idx: torch.Tensor) -> torch.Tensor:
        p, d = self.a.population, self.d
        _, _, h, w = self.x.shape
        u = uniform(self.seed, _INIT_POSITION, self.ids[idx], 0, (p, d, 2))
        size = torch.tensor([w, h], dtype=u.dtype, device=u.device)
        position = torch.minimum(torch.floor(u * size), size - 1)
        if self.order is not None and self.count is not None:
            count = self.count[idx].to(u.dtype)[:, None, None]
            k = torch.minimum(torch.floor(u[..., 0] * count), count - 1).long()
            flat = self.order[idx].gather(1, k.view(len(idx), -1)).view(k.shape)
            position = torch.stack([flat % w, flat // w], dim=-1).to(u.dtype)
        colour = COLOUR_MEAN + COLOUR_STD * normal(
            self.seed, _INIT_COLOUR, self.ids[idx], 0, (p, d, 3)
        )
        return torch.cat([position, colour.clamp(0, 255)], dim=-1).to(torch.float32)

    def mutate(
        self, pop: torch.Tensor, fit: torch.Tensor, idx: torch.Tensor, g: int
    ) -> torch.Tensor:
        a, p = pop.shape[:2]
        u = uniform(self.seed, _PICK, self.ids[idx], g, (p, 3))
        r = _distinct_others(u, 3)  # (A, P, 3)
        rows = torch.arange(a, device=pop.device)[:, None]
        f = self.a.mutation_factor
        pick = [pop[rows, r[..., k]] for k in range(3)]  # each (A, P, d, 5)
        best = pop[torch.arange(a, device=pop.device), fit.argmin(dim=1)][:, None]  # (A, 1, d, 5)
        if self.a.strategy == "rand1":
            child = pick[0] + f * (pick[1] - pick[2])
        elif self.a.strategy == "best1":
            child = best + f * (pick[0] - pick[1])
        else:
            child = pop + f * (best - pop) + f * (pick[0] - pick[1])
        return self._snap(torch.minimum(child.clamp_min(0), self.upper), idx)

    def render(self, cand: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Images (K, C, H, W) for candidates (K, d, 5) of the images `image` (K,)."""
        out = self.x[image]  # advanced indexing: a copy
        k = torch.arange(len(cand), device=cand.device)
        col, row = cand[..., 0].round().long(), cand[..., 1].round().long()
        colour = cand[..., 2:].round() / 255.0 * (self.high - self.low) + self.low  # (K, d, 3)
        for j in range(self.d):  # each write hits K distinct images: no duplicate indices
            out[k, :, row[:, j], col[:, j]] = colour[:, j].to(out.dtype)
        return out

    def evaluate(
        self, pop: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fitness (minimised), probability of the tracked class and adversarial mask, (A, P).

        The fitness is the log of the paper's probability (negated when targeted): the same
        order, so the same selections, but it still tells candidates apart where float32
        probabilities round to 1.
        """
        a, p = pop.shape[:2]
        flat = pop.reshape(a * p, self.d, 5)
        image = idx.repeat_interleave(p)
        cls = self.classes[image]
        probs, hits = [], []
        for start in range(0, a * p, self.chunk):
            end = min(start + self.chunk, a * p)
            logits = self.query(self.render(flat[start:end], image[start:end]))
            c = cls[start:end]
            probs.append(torch.log_softmax(logits.float(), dim=1).gather(1, c[:, None])[:, 0])
            top = logits.argmax(dim=1)
            hits.append(top == c if self.targeted else top != c)
        log_prob = torch.cat(probs).view(a, p)
        hit = torch.cat(hits).view(a, p)
        return (-log_prob if self.targeted else log_prob), log_prob.exp(), hit

    def run(self) -> OnePixelResult:
        n, dev = self.x.shape[0], self.x.device
        p, d = self.a.population, self.d
        everyone = torch.arange(n, device=dev)
        pop = self.initial(everyone)
        fit, _, hit = self.evaluate(pop, everyone)
        generations = torch.zeros(n, dtype=torch.int64, device=dev)
        first = torch.full((n,), -1, dtype=torch.int64, device=dev)
        adv_fit = torch.full((n,), float("inf"), device=dev)
        adv_cand = torch.zeros(n, d, 5, device=dev)
        self._record(everyone, pop, fit, hit, 0, first, adv_fit, adv_cand)
        gens = self.a.max_generations
        for g in progress(range(1, gens + 1), total=gens, desc=f"one-pixel d={d}, {n} images"):
            done = self._stopped(fit, first)
            if bool(done.all()):
                break
            idx = everyone[~done]
            child = self.mutate(pop[idx], fit[idx], idx, g)
            c_fit, _, c_hit = self.evaluate(child, idx)
            better = c_fit < fit[idx]
            pop[idx] = torch.where(better[..., None, None], child, pop[idx])
            fit[idx] = torch.where(better, c_fit, fit[idx])
            generations[idx] = g
            self._record(idx, child, c_fit, c_hit, g, first, adv_fit, adv_cand)
        found = first >= 0
        best = pop[everyone, fit.argmin(dim=1)]
        chosen = torch.where(found[:, None, None], adv_cand, best)
        adversarials = self.render(chosen, everyone)
        with torch.no_grad():
            logits = torch.cat([self.model(c) for c in adversarials.split(self.chunk)])
        final = torch.softmax(logits.float(), dim=1).gather(1, self.classes[:, None])[:, 0]
        pixels = torch.cat([chosen[..., :2].round(), chosen[..., 2:].round()], dim=-1)
        return OnePixelResult(
            adversarials=adversarials,
            pixels=pixels,
            probability=final,
            found=found,
            first_success_generation=first,
            generations=generations,
            queries=p * (1 + generations),
            queries_to_success=torch.where(found, p * (1 + first), -1),
        )

    def _stopped(self, fit: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        if self.a.stop == "misclassified":
            return first >= 0
        best = fit.min(dim=1).values  # the log-probability, negated when targeted
        return (-best).exp() > self.threshold if self.targeted else best.exp() < self.threshold

    @staticmethod
    def _record(
        idx: torch.Tensor,
        cand: torch.Tensor,
        fit: torch.Tensor,
        hit: torch.Tensor,
        g: int,
        first: torch.Tensor,
        adv_fit: torch.Tensor,
        adv_cand: torch.Tensor,
    ) -> None:
        """Keeps, per image, the first generation with an adversarial candidate and the
        fittest adversarial candidate evaluated so far."""
        masked = torch.where(hit, fit, float("inf"))
        value, where = masked.min(dim=1)
        rows = torch.arange(len(idx), device=idx.device)
        newly = (first[idx] < 0) & hit.any(dim=1)
        first[idx] = torch.where(newly, g, first[idx])
        improve = value < adv_fit[idx]
        adv_fit[idx] = torch.where(improve, value, adv_fit[idx])
        adv_cand[idx] = torch.where(improve[:, None, None], cand[rows, where], adv_cand[idx])
