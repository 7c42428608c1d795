"""Sparse-RS (Croce, Andriushchenko, Singh, Flammarion, Hein 2022), k-pixel version: random search.

A query-efficient black-box attack that changes at most k pixels. Each image keeps one
candidate: a set of k distinct pixel positions and, for each, a colour at a vertex of the colour
cube (every channel at the lower or the upper bound). Every iteration proposes one change: m of
the k positions are swapped for m positions not in the set, with new random vertex colours, and
the proposal is kept when its loss is strictly lower. m = max(1, round(alpha_i * k)), where
alpha_i starts at `alpha_init` and halves on the schedule of Square Attack (iterations 10, 50,
200, 500, 1000, 2000, 4000, 6000, 8000 of 10,000, rescaled to `max_queries`). Loss: the margin
``logit_true - max_other`` (untargeted) or the cross-entropy of the target (targeted), both
minimised; an image stops once the model's prediction is adversarial. One query per image per
iteration; all running images are evaluated in one (chunked) forward pass.

Randomness comes from per-image counter-based streams (`random_streams`), so an image makes the
same proposals in any batch or shard.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from advlab.attacks.base import (
    FixedEpsilonAttack,
    check_float,
    check_inputs,
    check_int,
    chunked_logits,
    get_bounds,
    get_criterion,
    get_labels,
    raise_if_kwargs,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l0_pixels
from advlab.attacks.random_streams import uniform
from advlab.attacks.registry import ATTACKS
from advlab.errors import AttackError
from advlab.models.wrapper import eval_mode
from advlab.progress import progress

# Square Attack's schedule: alpha halves after these iterations of a 10,000-query run.
SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_INIT_POSITION, _INIT_COLOUR, _SWAP, _NEW_POSITION, _NEW_COLOUR = range(5)


@dataclasses.dataclass(frozen=True)
class SparseRSResult:
    """What the random search found, per image.

    Attributes:
        adversarials: The last accepted candidate of each image (N, C, H, W).
        found: Whether the model's prediction on it is adversarial, bool (N,).
        queries: Forward passes spent on the image, including the initial one, int64 (N,).
        loss: The final loss (margin or target cross-entropy), (N,).
    """

    adversarials: torch.Tensor
    found: torch.Tensor
    queries: torch.Tensor
    loss: torch.Tensor


def alpha_at(iteration: int, max_queries: int, alpha_init: float) -> float:
    """The fraction of the k pixels resampled at `iteration` (Square Attack's p schedule)."""
    scaled = int(iteration / max(max_queries, 1) * 10_000)
    halvings = sum(scaled > s for s in SCHEDULE)
    return alpha_init / 2**halvings


@ATTACKS.register(
    "sparse-rs", help="Sparse-RS random search over k pixels, black-box (Croce et al. 2022)"
)
class SparseRS(FixedEpsilonAttack):
    """Sparse-RS, k pixels: black-box random search over k-pixel changes at colour-cube vertices.

    The budget epsilon is k, the number of changed pixels (distance `l0_pixels`); a fractional
    epsilon is rounded down and epsilon < 1 returns the inputs. See the module docstring.

    Args:
        max_queries: Queries per image at most (the initial candidate counts as one);
            the paper uses 10,000.
        alpha_init: Initial fraction of the k pixels resampled per proposal; the paper's
            0.3 for pixels.
        seed: Seed of the per-image random streams; None draws one from torch's global RNG.
        batch_size: Images per forward pass; None for automatic.

    Returns:
        As `Attack`: `(raw, clipped, success)`. `search` returns a `SparseRSResult`.

    References:
        Croce, Andriushchenko, Singh, Flammarion, Hein 2022, "Sparse-RS: a Versatile Framework
        for Query-Efficient Sparse Black-Box Adversarial Attacks", AAAI.
    """

    distance = l0_pixels

    def __init__(
        self,
        *,
        max_queries: int = 10_000,
        alpha_init: float = 0.3,
        seed: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_int("max_queries", max_queries, minimum=1)
        check_float("alpha_init", alpha_init, strict=True)
        if alpha_init > 1:
            raise AttackError(f"alpha_init: expected a fraction in (0, 1], found {alpha_init!r}")
        check_int("seed", seed, minimum=0, optional=True)
        check_int("batch_size", batch_size, optional=True)
        self.max_queries = max_queries
        self.alpha_init = alpha_init
        self.seed = seed
        self.batch_size = batch_size

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
        raise_if_kwargs(kwargs)
        k = int(epsilon) if epsilon is not None else 0
        if k < 1:
            return inputs.detach().clone()
        return self.search(model, inputs, criterion, pixels=k, image_ids=image_ids).adversarials

    def search(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion_or_labels: Criterion | torch.Tensor,
        *,
        pixels: int,
        image_ids: torch.Tensor | None = None,
    ) -> SparseRSResult:
        """Runs the search on a batch; `image_ids` (int64 (N,)) select the random streams."""
        x = check_inputs(model, inputs)
        check_int("pixels", pixels)
        n, _, h, w = x.shape
        if pixels > h * w:
            raise AttackError(
                f"pixels: expected at most the {h * w} pixels of an image, found {pixels}"
            )
        criterion = get_criterion(criterion_or_labels)
        classes, targeted = get_labels(criterion)
        ids = torch.arange(n, device=x.device) if image_ids is None else image_ids
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.shape != (n,):
            raise AttackError(f"image_ids: expected an int64 tensor of shape ({n},), found {ids!r}")
        ids = ids.to(x.device)
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()).item())
        low, high = get_bounds(model)
        with eval_mode(model), torch.no_grad():
            num_classes = model(x[:1]).shape[1]
            criterion.validate(num_samples=n, num_classes=num_classes, device=x.device)
            return self._search(model, x, classes, targeted, pixels, ids, seed, low, high)

    def _loss(
        self, logits: torch.Tensor, classes: torch.Tensor, targeted: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, adversarial?) per row."""
        pred = logits.argmax(1)
        if targeted:
            return F.cross_entropy(logits.float(), classes, reduction="none"), pred == classes
        true = logits.gather(1, classes[:, None])[:, 0]
        other = logits.scatter(1, classes[:, None], float("-inf")).max(1).values
        return (true - other).float(), pred != classes

    def _search(
        self,
        model: nn.Module,
        x: torch.Tensor,
        classes: torch.Tensor,
        targeted: bool,
        k: int,
        ids: torch.Tensor,
        seed: int,
        low: float,
        high: float,
    ) -> SparseRSResult:
        n, c, h, w = x.shape
        hw = h * w
        # The initial candidate: k distinct positions, vertex colours.
        position = uniform(seed, _INIT_POSITION, ids, 0, (hw,)).topk(k, dim=1).indices  # (N, k)
        colour = uniform(seed, _INIT_COLOUR, ids, 0, (k, c)) < 0.5  # (N, k, C) bool
        best = _render(x, position, colour, low, high)
        loss, found = self._loss(chunked_logits(model, best, self.batch_size), classes, targeted)
        queries = torch.ones(n, dtype=torch.int64, device=x.device)
        for it in progress(
            range(1, self.max_queries), total=self.max_queries - 1, desc=f"sparse-rs k={k}"
        ):
            todo = torch.nonzero(~found).flatten()
            if len(todo) == 0:
                break
            m = max(1, round(alpha_at(it, self.max_queries, self.alpha_init) * k))
            m = min(m, k, hw - k) if hw > k else 0
            if m == 0:
                break  # every pixel is in the set: nothing to swap
            tid = ids[todo]
            pos, col = position[todo], colour[todo]
            out_slots = uniform(seed, _SWAP, tid, it, (k,)).topk(m, dim=1).indices  # (A, m)
            scores = uniform(seed, _NEW_POSITION, tid, it, (hw,))
            scores.scatter_(1, pos, -1.0)  # positions already in the set are never drawn
            new_pos = scores.topk(m, dim=1).indices
            new_col = uniform(seed, _NEW_COLOUR, tid, it, (m, c)) < 0.5
            cand_pos = pos.scatter(1, out_slots, new_pos)
            cand_col = col.scatter(1, out_slots[..., None].expand(-1, -1, c), new_col)
            cand = _render(x[todo], cand_pos, cand_col, low, high)
            cand_loss, cand_found = self._loss(
                chunked_logits(model, cand, self.batch_size), classes[todo], targeted
            )
            queries[todo] += 1
            better = cand_loss < loss[todo]
            keep = todo[better]
            position[keep], colour[keep] = cand_pos[better], cand_col[better]
            best[keep], loss[keep] = cand[better], cand_loss[better]
            found[keep] = cand_found[better]
        return SparseRSResult(adversarials=best, found=found, queries=queries, loss=loss)


def _render(
    x: torch.Tensor, position: torch.Tensor, colour: torch.Tensor, low: float, high: float
) -> torch.Tensor:
    """`x` with pixel `position[i, j]` (flat index) of image i set to vertex `colour[i, j]`."""
    n, c, h, w = x.shape
    values = torch.where(colour, high, low).to(x.dtype).transpose(1, 2)  # (N, C, k)
    out = x.reshape(n, c, h * w).clone()
    out.scatter_(2, position[:, None, :].expand(-1, c, -1), values)
    return out.view(n, c, h, w)
