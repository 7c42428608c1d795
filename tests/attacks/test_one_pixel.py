"""The one-pixel attack: DE operators, constraint handling, streams and budgets on tiny models.

`Decisive` makes class 1 exactly when a red pixel sits at row 5, column 7 of a 16 x 16 image,
with a smooth pull towards that spot, so the single decisive pixel is the known optimum.
Measured (seed 0, population 40, the paper's other settings): every strategy ends on that pixel
for all 8 images, pure red to within 2 of 255; the paper's stop (true class below 5%) comes
after 16-80 generations with rand/1, 3-9 with best/1 and 3-14 with current-to-best/1.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import OnePixel, TargetedMisclassification, l0_pixels
from advlab.attacks.one_pixel import _distinct_others
from advlab.attacks.random_streams import mix64, uniform
from advlab.errors import AttackError, ConfigError
from advlab.models import ModelWrapper

ROW, COL = 5, 7


class Decisive(nn.Module):
    """Logits (0, 6 (s - 0.5)), s = max over pixels of redness times closeness to (5, 7)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        close = torch.exp(-((rr - ROW) ** 2 + (cc - COL) ** 2) / 8.0)
        red = x[:, 0] - x[:, 1] - x[:, 2]
        s = (red * close).flatten(1).max(1).values
        return torch.stack([torch.zeros_like(s), 6 * (s - 0.5)], 1)


def _setup(n: int = 8) -> tuple[ModelWrapper, torch.Tensor, torch.Tensor]:
    x = torch.full((n, 3, 16, 16), 0.4)
    x[:, :, 0, 0] = torch.linspace(0, 1, n)[:, None]  # images differ a little
    return ModelWrapper(Decisive()), x, torch.zeros(n, dtype=torch.int64)


def test_splitmix64_matches_the_unsigned_reference() -> None:
    mask = (1 << 64) - 1

    def reference(z: int) -> int:
        z = (z + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    values = [0, 1, 2, 12345, -1, 2**62, -(2**63)]
    got = mix64(torch.tensor(values)).tolist()
    assert [g & mask for g in got] == [reference(v & mask) for v in values]
    u = uniform(0, 1, torch.arange(2000), 3, (50,))
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert float(u.mean()) == pytest.approx(0.5, abs=0.005)


def test_mutation_indices_are_distinct_and_not_the_parent() -> None:
    p = 7
    u = uniform(3, 0, torch.arange(300), 1, (p, 3))
    r = _distinct_others(u, 3)  # (300, 7, 3)
    own = torch.arange(p)[None, :, None]
    assert bool(((r >= 0) & (r < p)).all())
    assert bool((r != own).all())
    assert bool((r[..., 0] != r[..., 1]).all() & (r[..., 1] != r[..., 2]).all())
    assert bool((r[..., 0] != r[..., 2]).all())
    # Every other index is drawn about equally often: 300 * 7 * 3 draws over 6 choices each.
    counts = torch.stack([(r == k).sum() for k in range(p)]).float()
    assert float(counts.min()) > 0.85 * float(counts.mean())


@pytest.mark.parametrize("strategy", ["rand1", "best1", "currenttobest1"])
def test_the_attack_finds_the_single_decisive_pixel(strategy: str) -> None:
    model, x, y = _setup()
    found = OnePixel(population=40, seed=0, strategy=strategy).search(model, x, y, pixels=1)
    assert bool(found.found.all())
    assert found.pixels[:, 0, :2].tolist() == [[COL, ROW]] * len(x)  # (x, y) = (column, row)
    assert bool((found.probability < 0.05).all())  # the paper's untargeted stop reached
    assert bool((found.first_success_generation <= found.generations).all())
    assert torch.equal(found.queries, 40 * (1 + found.generations))
    changed = (found.adversarials != x).any(dim=1)  # (N, H, W)
    assert bool(changed[:, ROW, COL].all()) and int(changed.sum()) == len(x)


def test_constraints_budget_and_8_bit_colours() -> None:
    model, x, y = _setup(4)
    attack = OnePixel(population=12, max_generations=5, seed=1, stop="misclassified")
    raws, _, successes = attack(model, x, y, epsilons=[0, 1, 3, 5.7])
    assert torch.equal(raws[0], x) and not bool(successes[0].any())
    for eps, raw in zip([0, 1, 3, 5], raws, strict=True):
        assert bool((l0_pixels(x, raw) <= eps).all())
        assert float(raw.min()) >= 0 and float(raw.max()) <= 1
        delta = raw != x
        levels = raw[delta] * 255
        torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)
    found = attack.search(model, x, y, pixels=3)
    px = found.pixels
    assert bool((px[..., :2] >= 0).all() & (px[..., :2] <= 15).all())
    assert bool((px[..., 2:] >= 0).all() & (px[..., 2:] <= 255).all())
    assert torch.equal(px, px.round())


def test_misclassified_stop_and_targeted_threshold() -> None:
    model, x, y = _setup(4)
    fast = OnePixel(population=40, seed=0, stop="misclassified").search(model, x, y, pixels=1)
    assert bool(fast.found.all()) and torch.equal(fast.generations, fast.first_success_generation)
    targeted = OnePixel(population=40, seed=0, threshold=0.9).search(
        model, x, TargetedMisclassification(torch.ones(4, dtype=torch.int64)), pixels=1
    )
    assert bool(targeted.found.all()) and bool((targeted.probability > 0.9).all())


def test_each_image_has_its_own_stream_whatever_the_batch() -> None:
    model, x, y = _setup(6)
    attack = OnePixel(population=16, max_generations=8, seed=5, threshold=0.0)
    whole = attack.search(model, x, y, pixels=3)
    again = OnePixel(population=16, max_generations=8, seed=5, threshold=0.0, batch_size=7)
    part = again.search(model, x[3:5], y[3:5], pixels=3, image_ids=torch.tensor([3, 4]))
    assert torch.equal(part.pixels, whole.pixels[3:5])
    assert torch.equal(part.adversarials, whole.adversarials[3:5])
    other = OnePixel(population=16, max_generations=8, seed=6, threshold=0.0)
    assert not torch.equal(other.search(model, x, y, pixels=3).pixels, whole.pixels)


def test_allowed_positions_restrict_the_search() -> None:
    model, x, y = _setup(4)
    attack = OnePixel(population=24, max_generations=30, seed=2)
    allowed = torch.zeros(4, 16, 16, dtype=torch.bool)
    allowed[:, ROW - 1 : ROW + 2, COL - 1 : COL + 2] = True  # the decisive pixel's 3 x 3
    allowed[:2, ROW, COL] = False  # images 0, 1: every neighbour but the decisive pixel
    allowed[3] = False
    allowed[3, 0, 15] = True  # image 3: one far corner only
    found = attack.search(model, x, y, pixels=2, allowed=allowed)
    changed = (found.adversarials != x).any(dim=1)
    assert not bool((changed & ~allowed).any())
    col, row = found.pixels[..., 0].long(), found.pixels[..., 1].long()
    assert bool(allowed[torch.arange(4)[:, None], row, col].all())
    assert found.found[2:3].tolist() == [True]  # the decisive pixel is allowed there
    assert found.pixels[3, :, :2].tolist() == [[15, 0], [15, 0]]
    assert not bool(changed[:2, ROW, COL].any())
    with pytest.raises(AttackError, match=r"^allowed: expected a bool tensor of shape \(4, 16,"):
        attack.search(model, x, y, pixels=1, allowed=allowed[:, :8])
    with pytest.raises(AttackError, match=r"^allowed: every image needs at least one"):
        attack.search(model, x, y, pixels=1, allowed=torch.zeros_like(allowed))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"population": 3}, r"^population: expected an int >= 4, found 3"),
        ({"strategy": "rand2"}, r"^strategy: expected one of"),
        ({"stop": "never"}, r"^stop: expected one of"),
        ({"threshold": 1.5}, r"^threshold: expected None or a probability"),
        ({"mutation_factor": 0}, r"^mutation_factor: expected a finite number > 0"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        OnePixel(**kwargs)  # type: ignore[arg-type]


def test_bad_input() -> None:
    model, x, y = _setup(2)
    attack = OnePixel(population=4, max_generations=1)
    with pytest.raises(AttackError, match=r"^inputs: the one-pixel attack changes RGB pixels"):
        attack(
            ModelWrapper(nn.Sequential(nn.Flatten(), nn.Linear(256, 2))), x[:, :1], y, epsilons=1
        )
    with pytest.raises(AttackError, match=r"^inputs: expected values in \[0.0, 1.0\]"):
        attack(model, x * 2, y, epsilons=1)
    with pytest.raises(ConfigError, match=r"^pixels: expected an int >= 1, found 0"):
        attack.search(model, x, y, pixels=0)
    with pytest.raises(AttackError, match=r"^target_classes: expected .* values in \[0, 2\)"):
        attack(model, x, TargetedMisclassification(torch.tensor([1, 2])), epsilons=1)
    with pytest.raises(AttackError, match=r"^image_ids: expected an int64 tensor of shape"):
        attack.search(model, x, y, pixels=1, image_ids=torch.tensor([0.0, 1.0]))
