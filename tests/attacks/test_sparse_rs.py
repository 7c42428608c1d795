"""Sparse-RS (k pixels): finds the one decisive pixel, vertex colours, schedule, streams, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import SparseRS
from advlab.attacks.sparse_rs import alpha_at
from advlab.errors import AttackError
from advlab.models import ModelWrapper


class Decisive(nn.Module):
    """Class 1 only if pixel (row 2, column 5) is much redder than green; class 0 otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 10 * (x[:, 0, 2, 5] - x[:, 1, 2, 5]) - 5
        return torch.stack([torch.full_like(score, 0.5), score], dim=1)


def _images(n: int = 4) -> tuple[ModelWrapper, torch.Tensor, torch.Tensor]:
    model = ModelWrapper(Decisive()).eval()
    x = 0.3 + 0.3 * torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return model, x, torch.zeros(n, dtype=torch.int64)


def test_finds_the_decisive_pixel_with_a_vertex_colour() -> None:
    model, x, y = _images()
    assert bool((model.predict(x) == 0).all())
    res = SparseRS(max_queries=3000, seed=0).search(model, x, y, pixels=1)
    assert bool(res.found.all())
    changed = (res.adversarials != x).any(dim=1)  # (N, H, W)
    assert changed.flatten(1).sum(1).tolist() == [1] * len(x)
    assert bool(changed[:, 2, 5].all())
    pixel = res.adversarials[:, :, 2, 5]
    assert bool((pixel[:, 0] == 1).all() and (pixel[:, 1] == 0).all())
    assert set(pixel[:, 2].tolist()) <= {0.0, 1.0}
    assert bool((res.queries >= 1).all() and (res.queries <= 3000).all())
    assert bool((model.predict(res.adversarials) == 1).all())
    assert bool((res.loss < 0).all())  # the margin of an adversarial


def test_k_pixels_budget_and_no_success_uses_every_query() -> None:
    model, x, y = _images(3)
    res = SparseRS(max_queries=40, seed=1).search(model, x, y, pixels=3)
    changed = (res.adversarials != x).any(dim=1).flatten(1).sum(1)
    assert bool((changed <= 3).all()) and bool((changed >= 1).all())
    values = res.adversarials[(res.adversarials != x)]
    assert set(values.unique().tolist()) <= {0.0, 1.0}
    assert bool((res.queries[~res.found] == 40).all())


def test_an_image_draws_the_same_in_any_batch() -> None:
    model, x, y = _images(6)
    whole = SparseRS(max_queries=300, seed=3).search(model, x, y, pixels=2)
    part = SparseRS(max_queries=300, seed=3).search(
        model, x[2:4], y[2:4], pixels=2, image_ids=torch.tensor([2, 3])
    )
    assert torch.equal(part.adversarials, whole.adversarials[2:4])
    assert torch.equal(part.queries, whole.queries[2:4])
    other = SparseRS(max_queries=300, seed=4).search(model, x, y, pixels=2)
    assert not torch.equal(other.adversarials, whole.adversarials)


def test_alpha_schedule() -> None:
    assert alpha_at(1, 10_000, 0.3) == 0.3
    assert alpha_at(10, 10_000, 0.3) == 0.3 and alpha_at(11, 10_000, 0.3) == 0.15
    assert alpha_at(9_000, 10_000, 0.3) == pytest.approx(0.3 / 512)
    assert alpha_at(1, 100, 0.3) == pytest.approx(0.3 / 4)  # 1 of 100 = 100 of 10,000


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda: SparseRS(max_queries=0), "max_queries"),
     (lambda: SparseRS(alpha_init=1.5), "alpha_init")],
)  # fmt: skip
def test_bad_settings(make: object, message: str) -> None:
    with pytest.raises(Exception, match=message):
        make()  # type: ignore[operator]


def test_more_pixels_than_the_image_has() -> None:
    model, x, y = _images(1)
    with pytest.raises(AttackError, match="at most the 64 pixels"):
        SparseRS(max_queries=5).search(model, x, y, pixels=65)
