"""The simple-generator attack of seed 001 Ex. 2 on the trained digits MLP.

Measured on CPU with the digits fixture (first 50 held-out images, target = label + 1 mod 10,
seed 0): all fooled, 1.68 rounds on average, median L2 2.63 on [0, 1] pixels.
"""

from __future__ import annotations

import pytest
import torch

from advlab.attacks import SimpleGenerator, TargetedMisclassification, l2
from advlab.models import ModelWrapper

Data = tuple[ModelWrapper, torch.Tensor, torch.Tensor]  # the digits fixture of tests/conftest.py


def test_generators_reach_every_target_and_stop_there(digits: Data) -> None:
    model, x, y = digits
    x, y = x[:50], y[:50]
    target = (y + 1) % 10
    attack = SimpleGenerator(seed=0)
    found = attack.search(model, x, TargetedMisclassification(target))
    raw, success, rounds = found.adversarials, found.success, found.rounds
    assert bool(success.all())
    with torch.no_grad():
        assert torch.equal(model(raw).argmax(1), target)
    assert rounds.dtype == torch.int64 and rounds.shape == (len(x),)
    assert 1 <= float(rounds.float().mean()) <= 5  # measured 1.68
    assert float(l2(x, raw).median()) == pytest.approx(2.63, rel=0.3)
    # Fewer rounds leave the slow ones unfinished: the rounds are really needed.
    slow = rounds == rounds.max()
    if int(rounds.max()) > 1:
        short = SimpleGenerator(seed=0, max_rounds=int(rounds.max()) - 1)
        _, _, ok = short(model, x, TargetedMisclassification(target), epsilons=None)
        assert not bool(ok[slow].all())


def test_search_returns_the_rounds_and_the_attack_keeps_no_state(digits: Data) -> None:
    model, x, y = digits
    x, target = x[:20], (y[:20] + 1) % 10
    attack = SimpleGenerator(seed=0)
    before = dict(vars(attack))
    found = attack.search(model, x, TargetedMisclassification(target))
    raw, clipped, success = attack(model, x, TargetedMisclassification(target), epsilons=None)
    assert vars(attack) == before  # nothing of the calls is kept on the attack
    assert torch.equal(raw, clipped)  # unbounded: nothing is projected
    # The same seed, the same generators: search and the call agree bit for bit.
    assert torch.equal(found.adversarials, raw) and torch.equal(found.success, success)
    # The rounds are the generators' own count: one round fewer leaves those images unfooled
    # (an exact list would depend on the processor's rounding).
    assert bool((found.rounds >= 1).all()) and int(found.rounds.max()) >= 2
    for r in sorted(set(found.rounds.tolist()) - {1}):
        short = SimpleGenerator(seed=0, max_rounds=r - 1).search(
            model, x, TargetedMisclassification(target)
        )
        assert not bool(short.success[found.rounds == r].any())


def test_without_the_push_the_generator_just_copies_the_input(digits: Data) -> None:
    model, x, y = digits
    x = x[:20]
    attack = SimpleGenerator(seed=0, fit_steps=300, push_steps=1, lr=0.1, max_rounds=1)
    raw, _, _ = attack(model, x, TargetedMisclassification((y[:20] + 1) % 10), epsilons=None)
    # A sigmoid never reaches 0 or 1 exactly, but the fit gets close on every pixel.
    assert float((raw - x).abs().mean()) < 0.05
