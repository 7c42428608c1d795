"""BIM and PGD (Linf, L2) against hand-written loops and on the trained digits MLP.

Measured on CPU with the digits fixture (397 held-out images), accuracy at eps 0.05 / 0.1 / 0.2:
FGSM 0.834 / 0.474 / 0.035; BIM (5 steps of eps/5) 0.829 / 0.446 / 0.015; PGD-40 without random
start 0.829 / 0.433 / 0.008, with a random start (seed 0) 0.854 / 0.489 / 0.020. L2 PGD-50
(seed 0) at eps 0.5 / 1 / 2: 0.594 / 0.038 / 0.0.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import BIM, FGSM, L2PGD, LinfPGD, TargetedMisclassification, l2, linf
from advlab.attacks.gradient import _Draws, _StreamDraws
from advlab.errors import ConfigError
from advlab.models import ModelWrapper

Data = tuple[ModelWrapper, torch.Tensor, torch.Tensor]  # the digits fixture of tests/conftest.py


def _grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return g


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def test_bim_is_seed_002s_loop_and_one_step_is_fgsm(digits: Data) -> None:
    model, x, y = digits
    eps, k = 0.1, 5
    # Seed 002, part 3: k times x <- x + (eps/k) * sign(dL/dx), kept in [0, 1].
    expected = x.clone()
    for _ in range(k):
        expected = (expected + eps / k * _grad(model, expected, y).sign()).clamp(0, 1)
    raw, _, _ = BIM(steps=k)(model, x, y, epsilons=eps)
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)
    assert float(linf(x, raw).max()) <= eps + 1e-6
    one, _, _ = BIM(steps=1)(model, x, y, epsilons=eps)
    fgsm, _, _ = FGSM()(model, x, y, epsilons=eps)
    assert torch.equal(one, fgsm)


def test_fgsm_one_gradient_serves_every_epsilon_and_chunks_agree(digits: Data) -> None:
    model, x, y = digits
    epsilons = [0.0, 0.05, 0.2]
    raw, clipped, success = FGSM()(model, x, y, epsilons=epsilons)
    sign = _grad(model, x, y).sign()
    for eps, r, c, s in zip(epsilons, raw, clipped, success, strict=True):
        single, _, single_success = FGSM()(model, x, y, epsilons=eps)
        assert torch.equal(r, single) and torch.equal(c, r) and torch.equal(s, single_success)
        torch.testing.assert_close(r, (x + eps * sign).clamp(0, 1), rtol=0, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(success[0], model(x).argmax(1) != y)  # eps 0: the clean mistakes
    # Chunks of 50 (the CPU default is 128 per chunk) and one pass give the same attack.
    chunked, _, chunked_success = FGSM(batch_size=50)(model, x, y, epsilons=0.2)
    whole, _, whole_success = FGSM(batch_size=len(x))(model, x, y, epsilons=0.2)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    assert torch.equal(chunked_success, whole_success)
    assert 0.9 < float(whole_success.float().mean()) <= 1.0


def test_pgd_without_random_start_is_the_projected_loop(digits: Data) -> None:
    model, x, y = digits
    eps, steps, step = 0.1, 7, 0.03
    expected = x.clone()
    for _ in range(steps):
        moved = expected + step * _grad(model, expected, y).sign()
        expected = torch.minimum(torch.maximum(moved, x - eps), x + eps).clamp(0, 1)
    raw, _, _ = LinfPGD(steps=steps, abs_stepsize=step, random_start=False)(
        model, x, y, epsilons=eps
    )
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)
    # With steps of 0.03 the ball binds: many pixels end exactly on its surface.
    assert float((((raw - x).abs() - eps).abs() < 1e-6).float().mean()) > 0.2


def test_iterative_attacks_are_stronger_than_fgsm(digits: Data) -> None:
    model, x, y = digits
    eps = [0.05, 0.1, 0.2]
    acc = {}
    for name, attack in {
        "fgsm": FGSM(),
        "bim": BIM(),
        "pgd": LinfPGD(random_start=False),
        "pgd_rs": LinfPGD(seed=0),
    }.items():
        _, clipped, _ = attack(model, x, y, epsilons=eps)
        acc[name] = [_accuracy(model, c, y) for c in clipped]
    assert acc["fgsm"][1] == pytest.approx(0.474, abs=0.05)
    assert acc["bim"][1] == pytest.approx(0.446, abs=0.05)
    assert acc["pgd"][1] == pytest.approx(0.433, abs=0.05)
    assert acc["pgd_rs"][1] == pytest.approx(0.489, abs=0.06)
    for i in range(3):
        assert acc["pgd"][i] <= acc["fgsm"][i]
        assert acc["bim"][i] <= acc["fgsm"][i]
    assert acc["pgd"][2] <= 0.03  # measured 0.008


def test_l2_pgd_budget_and_strength(digits: Data) -> None:
    model, x, y = digits
    eps = [0.5, 1.0, 2.0]
    raws, _, successes = L2PGD(seed=0)(model, x, y, epsilons=eps)
    for e, raw in zip(eps, raws, strict=True):
        assert float(l2(x, raw).max()) <= e * (1 + 1e-5)
        assert float(raw.min()) >= 0 and float(raw.max()) <= 1
    robust = [1 - s.float().mean().item() for s in successes]
    assert robust[0] == pytest.approx(0.594, abs=0.07)
    assert robust[1] <= 0.10  # measured 0.038
    # The random start is uniform in the ball: in 64 dimensions, the mean radius is 64/65 of
    # eps and the directions are isotropic.
    # Both sources of numbers: one generator for the batch, or each image's own stream.
    for draw in (
        _Draws(torch.Generator().manual_seed(3), x),
        _StreamDraws(3, torch.arange(len(x)), x),
    ):
        start = L2PGD()._random_start(x, 1.0, draw)
        norms = l2(torch.zeros_like(x), start)
        assert float(norms.max()) <= 1.0 + 1e-5
        assert float(norms.mean()) == pytest.approx(64 / 65, abs=0.01)
        assert float(start.mean()) == pytest.approx(0.0, abs=0.01)


def test_targeted_pgd_reaches_targets(digits: Data) -> None:
    model, x, y = digits
    target = (y + 3) % 10
    _, clipped, success = LinfPGD(seed=0)(model, x, TargetedMisclassification(target), epsilons=0.3)
    with torch.no_grad():
        assert torch.equal(success, model(clipped).argmax(1) == target)
    assert success.float().mean().item() >= 0.95


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"steps": 0}, r"^steps: expected an int >= 1, found 0"),
        ({"rel_stepsize": -0.1}, r"^rel_stepsize: expected None or a finite number > 0"),
        ({"abs_stepsize": float("nan")}, r"^abs_stepsize: .*found nan"),
        ({"random_start": 1}, r"^random_start: expected True or False, found 1"),
        ({"seed": -1}, r"^seed: expected None or an int >= 0, found -1"),
        ({"batch_size": 0}, r"^batch_size: expected None or an int >= 1, found 0"),
    ],
)
def test_bad_parameters_are_one_clear_error(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        LinfPGD(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attack_cls, eps", [(LinfPGD, 0.1), (L2PGD, 1.0)])
def test_pgd_image_ids_start_every_image_the_same_in_any_chunk(
    digits: Data, attack_cls: type, eps: float
) -> None:
    model, x, y = digits
    x, y = x[:12], y[:12]
    ids = torch.arange(100, 112)
    attack = attack_cls(steps=1, abs_stepsize=1e-9, seed=3)  # a step too small to matter
    _, whole, _ = attack(model, x, y, epsilons=[eps], image_ids=ids)
    _, part, _ = attack(model, x[5:9], y[5:9], epsilons=[eps], image_ids=ids[5:9])
    torch.testing.assert_close(part[0], whole[0][5:9], rtol=0, atol=1e-6)
    # The starts are random, not one draw shared by all: the images' offsets differ.
    delta = (whole[0] - x).flatten(1)
    assert not torch.allclose(delta[0], delta[1], atol=1e-3)
    assert float(linf(x, whole[0]).max() if attack_cls is LinfPGD else l2(x, whole[0]).max()) <= (
        eps + 1e-5
    )
    # Without ids, the batch's shared generator gives the same image another start.
    _, alone, _ = attack(model, x[5:9], y[5:9], epsilons=[eps])
    assert not torch.allclose(alone[0], whole[0][5:9], atol=1e-3)
    with pytest.raises(Exception, match=r"^image_ids: expected an int64 tensor of shape \(12,\)"):
        attack(model, x, y, epsilons=[eps], image_ids=ids[:3])
