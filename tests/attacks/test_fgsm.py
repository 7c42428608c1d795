"""Tests of advlab.attacks.gradient.FGSM against a hand-written autograd oracle and a trained model.

Data: scikit-learn's bundled digits (1797 images of 8x8, values 0..16, no download), scaled to
[0, 1] and shaped (N, 1, 8, 8). Model: a 64-32-10 MLP trained in the test (300 full-batch Adam
steps, seed 0). Measured on CPU with seed 0 (seeds 1 and 2 in brackets):
clean test accuracy 0.972 (0.975, 0.977); FGSM accuracy at eps 0.05 / 0.1 / 0.2 / 0.3:
0.834 / 0.474 / 0.035 / 0.015 (0.851 / 0.496 / 0.071 / 0.025, 0.821 / 0.464 / 0.068 / 0.020).
Targeted FGSM at eps 0.1 (target = label + 1 mod 10): mean target probability 0.0012 -> 0.133,
raised for 100 % of the samples; the untargeted step raises it to 0.059 only.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import (
    ATTACKS,
    FGSM,
    Misclassification,
    TargetedMisclassification,
    create_attack,
    linf,
    loss_gradient,
)
from advlab.errors import AttackError, ConfigError, RegistryError
from advlab.models import ModelWrapper

Data = tuple[ModelWrapper, torch.Tensor, torch.Tensor]  # the digits fixture of tests/conftest.py

EPSILONS = [0.0, 0.05, 0.1, 0.2, 0.3]


def _manual_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return (x.detach() + eps * grad.sign()).clamp(0.0, 1.0)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def test_fgsm_equals_manual_autograd_sign_step(digits: Data) -> None:
    model, x, y = digits
    for eps in (0.05, 0.2):
        raw, clipped, _ = FGSM()(model, x, y, epsilons=eps)
        expected = _manual_fgsm(model, x, y, eps)
        assert torch.equal(raw, expected)
        assert torch.equal(clipped, expected)


def test_loss_gradient_matches_autograd_and_targeted_is_its_negative(digits: Data) -> None:
    model, x, y = digits
    x, y = x[:50], y[:50]
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    assert torch.equal(loss_gradient(model, x, y), expected)
    assert torch.equal(loss_gradient(model, x, y, targeted=True), -expected)
    chunked = loss_gradient(model, x, y, batch_size=7)
    # batches of 7 take other GEMM kernels than one batch of 50: equal up to float32 rounding
    torch.testing.assert_close(chunked, expected, rtol=1e-4, atol=1e-6)


def test_eps_zero_leaves_inputs_and_success_is_clean_misclassification(digits: Data) -> None:
    model, x, y = digits
    raw, clipped, success = FGSM()(model, x, y, epsilons=0.0)
    assert torch.equal(raw, x) and torch.equal(clipped, x)
    with torch.no_grad():
        assert torch.equal(success, model(x).argmax(dim=1) != y)


def test_budget_range_and_honest_success_for_every_eps(digits: Data) -> None:
    model, x, y = digits
    epsilons = [0.0, 0.01, 0.05, 0.1, 0.3, 1.0]
    raws, clippeds, successes = FGSM()(model, x, y, epsilons=epsilons)
    assert len(raws) == len(clippeds) == len(successes) == len(epsilons)
    for eps, raw, clipped, success in zip(epsilons, raws, clippeds, successes, strict=True):
        for adv in (raw, clipped):
            assert float((adv - x).abs().max()) <= eps + 1e-6
            assert float(linf(x, adv).max()) <= eps + 1e-6
            assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        with torch.no_grad():
            assert torch.equal(success, model(clipped).argmax(dim=1) != y)
        assert success.dtype == torch.bool and success.shape == (len(x),)


def test_accuracy_falls_monotonically_with_eps(digits: Data) -> None:
    model, x, y = digits
    clean = _accuracy(model, x, y)
    _, _, successes = FGSM()(model, x, y, epsilons=EPSILONS)
    robust = [1.0 - s.float().mean().item() for s in successes]
    assert clean >= 0.93  # measured 0.972
    assert robust[0] == pytest.approx(clean)
    assert all(a > b for a, b in itertools.pairwise(robust)), robust
    assert 0.30 <= robust[2] <= 0.65  # eps 0.1, measured 0.474
    assert robust[-1] <= 0.10  # eps 0.3, measured 0.015
    assert clean - robust[-1] >= 0.80


def test_targeted_fgsm_raises_target_probability(digits: Data) -> None:
    model, x, y = digits
    target = (y + 1) % 10
    criterion = TargetedMisclassification(target)
    _, clipped, success = FGSM()(model, x, criterion, epsilons=0.1)
    with torch.no_grad():
        before = F.softmax(model(x), dim=1).gather(1, target[:, None]).squeeze(1)
        after = F.softmax(model(clipped), dim=1).gather(1, target[:, None]).squeeze(1)
        assert torch.equal(success, model(clipped).argmax(dim=1) == target)
    assert (after > before).float().mean().item() >= 0.95  # measured 1.0
    assert after.mean().item() >= 10 * before.mean().item()  # measured 0.0012 -> 0.133
    # Aiming matters: the untargeted step raises the same class's probability far less.
    _, untargeted, _ = FGSM()(model, x, Misclassification(y), epsilons=0.1)
    with torch.no_grad():
        aimless = F.softmax(model(untargeted), dim=1).gather(1, target[:, None]).squeeze(1)
    assert after.mean().item() >= 1.5 * aimless.mean().item()  # measured 0.133 vs 0.059


def test_model_params_untouched_and_train_flags_restored(digits: Data) -> None:
    model, x, y = digits
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 10))
    model = ModelWrapper(net)
    model.train()
    net[1].eval()  # mixed flags must come back as they were; dropout stays in train mode
    flags = [m.training for m in model.modules()]
    params = [p.detach().clone() for p in model.parameters()]
    raw, _, _ = FGSM()(model, x, y, epsilons=0.1)
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))
    # Eval mode during the attack: dropout off, so the result is the eval-mode oracle.
    model.eval()
    expected = _manual_fgsm(model, x, y, 0.1)
    assert torch.equal(raw, expected)


def test_batch_size_chunks_give_the_same_result(digits: Data) -> None:
    model, x, y = digits
    full, _, success_full = FGSM()(model, x, y, epsilons=0.1)
    chunked, _, success_chunked = FGSM(batch_size=16)(model, x, y, epsilons=0.1)
    # Per-sample gradients do not depend on the chunk; allow for a rare sign flip of a
    # gradient entry that is zero up to rounding.
    assert (full == chunked).float().mean().item() >= 0.999
    assert (success_full == success_chunked).float().mean().item() >= 0.99


def test_inputs_not_modified_and_outputs_detached(digits: Data) -> None:
    model, x, y = digits
    x_req = x.clone().requires_grad_(True)
    raw, clipped, _ = FGSM()(model, x_req, y, epsilons=0.1)
    assert torch.equal(x_req.detach(), x)
    assert not raw.requires_grad and not clipped.requires_grad


def test_registered_and_built_by_name() -> None:
    assert ATTACKS.get("fgsm") is FGSM
    attack = create_attack("fgsm", batch_size=4)
    assert isinstance(attack, FGSM) and attack.batch_size == 4
    assert attack.distance is linf and not attack.unbounded
    assert repr(attack) == "FGSM(batch_size=4)"
    with pytest.raises(ConfigError, match="accepted keyword parameters: batch_size"):
        create_attack("fgsm", steps=3)
    with pytest.raises(RegistryError, match="unknown attack"):
        create_attack("no-such-attack")


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_bad_batch_size_raises_config_error(batch_size: object) -> None:
    with pytest.raises(ConfigError, match=r"^batch_size: expected"):
        FGSM(batch_size=batch_size)  # type: ignore[arg-type]


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        FGSM(4)  # type: ignore[misc]


def test_unsupported_criterion_raises_attack_error(digits: Data) -> None:
    model, x, y = digits
    both = Misclassification(y) & TargetedMisclassification((y + 1) % 10)
    with pytest.raises(AttackError, match=r"^criterion: expected Misclassification"):
        FGSM()(model, x, both, epsilons=0.1)
