"""JSMA: the pair search against a brute force over all pairs, and the attack against a
per-image reference loop and on the trained digits MLP.

Measured on CPU with the digits fixture (397 held-out images, target = label + 1 mod 10):
success at a budget of 10 / 20 / 64 changed pixels: theta = +1: 0.637 / 0.914 / 1.0;
theta = -1: 0.592 / 0.851 / 0.889.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from advlab.attacks import JSMA, TargetedMisclassification, l0
from advlab.attacks.jsma import best_pairs, pareto_front, pareto_fronts
from advlab.errors import ConfigError
from advlab.models import ModelWrapper

Data = tuple[ModelWrapper, torch.Tensor, torch.Tensor]  # the digits fixture of tests/conftest.py


def _random_rows(seed: int, rows: int = 40, n: int = 30) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    # Few distinct values, so that ties (equal sums, identical points) are common.
    a = torch.randint(-3, 4, (rows, n), generator=gen).double()
    b = torch.randint(-3, 4, (rows, n), generator=gen).double()
    domain = torch.rand(rows, n, generator=gen) < 0.7
    domain[0] = False
    domain[0, :2] = True  # a row with exactly two features left
    return a, b, domain


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_the_definition(seed: int) -> None:
    u, v, alive = _random_rows(seed)
    front = pareto_front(u, v, alive)
    for r in range(len(u)):
        for i in range(u.shape[1]):
            dominated = any(
                alive[r, j]
                and u[r, j] >= u[r, i]
                and v[r, j] >= v[r, i]
                and (u[r, j], v[r, j]) != (u[r, i], v[r, i])
                for j in range(u.shape[1])
            )
            assert bool(front[r, i]) == (bool(alive[r, i]) and not dominated), (r, i)


@pytest.mark.parametrize("seed", range(5))
def test_second_front_is_the_front_of_the_rest(seed: int) -> None:
    u, v, alive = _random_rows(seed)
    first, second = pareto_fronts(u, v, alive)
    assert torch.equal(first, pareto_front(u, v, alive))
    assert torch.equal(second, pareto_front(u, v, alive & ~first))
    assert not bool((first & second).any()) and bool(second.any())


@pytest.mark.parametrize("seed", range(8))
def test_best_pairs_equals_brute_force_over_all_pairs(seed: int) -> None:
    a, b, domain = _random_rows(seed)
    p, q, valid = best_pairs(a, b, domain)
    for r in range(len(a)):
        scores = [
            (a[r, i] + a[r, j]) * -(b[r, i] + b[r, j])
            for i, j in itertools.permutations(range(a.shape[1]), 2)
            if domain[r, i] and domain[r, j] and a[r, i] + a[r, j] > 0 and b[r, i] + b[r, j] < 0
        ]
        assert bool(valid[r]) == bool(scores), r
        if scores:
            i, j = int(p[r]), int(q[r])
            assert i != j and domain[r, i] and domain[r, j]
            assert float((a[r, i] + a[r, j]) * -(b[r, i] + b[r, j])) == float(max(scores))


def _reference_jsma(
    model: ModelWrapper,
    x: torch.Tensor,
    target: torch.Tensor,
    budget: int,
    theta: float,
    pairs: bool = True,
) -> torch.Tensor:
    """Papernot's algorithm image by image, with a dense search over every pair (or, without
    `pairs`, the two features of largest target gradient: ART's rule)."""
    out = []
    for xi, t in zip(x, target, strict=True):
        adv = xi.clone().flatten()
        domain = adv < 1 if theta > 0 else adv > 0
        s = 1.0 if theta > 0 else -1.0
        while True:
            xa = adv.view(1, *xi.shape).requires_grad_(True)
            logits = model(xa)
            if int(logits.argmax()) == int(t) or int(domain.sum()) < 2:
                break
            if int((adv != xi.flatten()).sum()) + 2 > budget:
                break
            g_t = torch.autograd.grad(logits[0, t], xa, retain_graph=True)[0].flatten() * s
            g_o = torch.autograd.grad(logits.sum(), xa)[0].flatten() * s - g_t
            su = g_t[:, None] + g_t[None, :]
            sv = g_o[:, None] + g_o[None, :]
            ok = domain[:, None] & domain[None, :] & ~torch.eye(len(adv), dtype=torch.bool)
            ok &= (su > 0) & (sv < 0) & pairs
            if bool(ok.any()):
                flat = int(torch.where(ok, su * -sv, -1.0).flatten().argmax())
                pair = (flat // len(adv), flat % len(adv))
            else:
                pair = tuple(torch.where(domain, g_t, float("-inf")).topk(2).indices.tolist())
            adv = adv.detach().clone()
            for f in pair:
                adv[f] = (adv[f] + theta).clamp(0, 1)
            domain &= adv < 1 if theta > 0 else adv > 0
        out.append(adv.detach().view_as(xi))
    return torch.stack(out)


@pytest.mark.parametrize("theta", [1.0, -1.0, 0.3])
def test_jsma_equals_the_per_image_reference(digits: Data, theta: float) -> None:
    model, x, y = digits
    x, y = x[:12], y[:12]
    target = (y + 1) % 10
    raw, _, _ = JSMA(theta=theta)(model, x, TargetedMisclassification(target), epsilons=20)
    expected = _reference_jsma(model, x, target, 20, theta)
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)


def test_target_saliency_is_arts_rule(digits: Data) -> None:
    model, x, y = digits
    x, y = x[:12], y[:12]
    target = (y + 1) % 10
    raw, _, _ = JSMA(saliency="target")(model, x, TargetedMisclassification(target), epsilons=20)
    expected = _reference_jsma(model, x, target, 20, 1.0, pairs=False)
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)
    assert not torch.equal(raw, JSMA()(model, x, TargetedMisclassification(target), epsilons=20)[0])
    with pytest.raises(ConfigError, match=r"^saliency: expected one of \('pairs', 'target'\)"):
        JSMA(saliency="softmax")


def test_jsma_success_budget_and_direction(digits: Data) -> None:
    model, x, y = digits
    target = (y + 1) % 10
    criterion = TargetedMisclassification(target)
    raws, _, successes = JSMA()(model, x, criterion, epsilons=[10, 20, 64])
    rates = [s.float().mean().item() for s in successes]
    assert rates[0] == pytest.approx(0.637, abs=0.07)
    assert rates[1] == pytest.approx(0.914, abs=0.05)
    assert rates[2] >= 0.98
    for eps, raw in zip([10, 20, 64], raws, strict=True):
        assert float(l0(x, raw).max()) <= eps
        changed = raw != x
        assert bool((raw[changed] == 1.0).all())  # theta = +1 saturates what it touches
    down, _, ok = JSMA(theta=-1.0)(model, x, criterion, epsilons=20)
    assert bool((down <= x).all()) and bool((down[down != x] == 0.0).all())
    assert ok.float().mean().item() == pytest.approx(0.851, abs=0.06)


def test_jsma_untargeted_pushes_the_true_class_down(digits: Data) -> None:
    model, x, y = digits
    _, clipped, success = JSMA()(model, x, y, epsilons=10)
    with torch.no_grad():
        assert torch.equal(success, model(clipped).argmax(1) != y)
    assert success.float().mean().item() >= 0.9


@pytest.mark.parametrize("theta", [0.0, 1.5, -2.0, float("nan")])
def test_bad_theta(theta: float) -> None:
    with pytest.raises(ConfigError, match=r"^theta: expected"):
        JSMA(theta=theta)


@pytest.mark.parametrize("seed", range(6))
def test_shortlisted_search_equals_the_full_search(seed: int) -> None:
    # Shortlists of 2 to 7 out of 30 features: some rows certify the shortlist, the others
    # (ties and few features make them common) fall back to the full search.
    a, b, domain = _random_rows(seed)
    full = best_pairs(a, b, domain, shortlist=64)  # 30 <= 4 * 64: the full search
    for k in (2, 3, 5, 7):
        p, q, valid = best_pairs(a, b, domain, shortlist=k)
        assert torch.equal(valid, full[2])
        rows = torch.arange(len(a))
        score = (a[rows, p] + a[rows, q]) * -(b[rows, p] + b[rows, q])
        best = (a[rows, full[0]] + a[rows, full[1]]) * -(b[rows, full[0]] + b[rows, full[1]])
        assert torch.equal(score[valid], best[valid]), k
        assert bool((p != q)[valid].all()) and bool(domain[rows, p][valid].all())
        assert bool(domain[rows, q][valid].all())


def test_shortlisted_search_on_image_sized_rows() -> None:
    # 784 features with continuous values (the MNIST case): the shortlist certifies itself.
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 784, generator=gen), torch.randn(50, 784, generator=gen)
    domain = torch.rand(50, 784, generator=gen) < 0.9
    p, q, valid = best_pairs(a, b, domain)
    p0, q0, valid0 = best_pairs(a, b, domain, shortlist=1000)
    assert torch.equal(valid, valid0)
    assert torch.equal(torch.stack([p, q]).sort(0).values, torch.stack([p0, q0]).sort(0).values)
