"""Contract tests run over every attack in ATTACKS, plus the base classes, criteria and distances.

Every registered attack, built with its default parameters, must: return one raw and one clipped
batch per epsilon with the inputs' shape, dtype and device, inside the model's bounds; respect
each epsilon in its own `distance` (or, when `unbounded`, return clipped == raw and report true
distances); return a success mask equal to the criterion recomputed on the clipped inputs; leave
the model's parameters, buffers, gradients and train/eval flags as they were; and refuse bad
input with an AttackError that names the argument. Attacks added later are checked
automatically. Distances are checked against independent norm computations.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from advlab.attacks import (
    ATTACKS,
    Attack,
    Criterion,
    Distance,
    FixedEpsilonAttack,
    MinimizationAttack,
    Misclassification,
    TargetedMisclassification,
    create_attack,
    get_criterion,
    l0,
    l0_pixels,
    l2,
    linf,
)
from advlab.errors import AttackError
from advlab.models import ModelWrapper
from advlab.models.wrapper import eval_mode

NUM_CLASSES = 5
N = 6
EPSILONS: dict[str, list[float | None]] = {
    "linf": [0.0, 0.01, 0.1, 0.5],
    "l2": [0.0, 0.1, 1.0, 5.0],
    "l0": [0.0, 1.0, 5.0, 40.0],
    "l0-pixels": [0.0, 1.0, 2.0, 3.0],
}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


def _model(device: str = "cpu") -> ModelWrapper:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, NUM_CLASSES),
    )
    return ModelWrapper(net, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).to(device)


def _batch(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(N, 3, 8, 8, generator=gen)  # (N, C, H, W) in [0, 1]
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0  # pixels on both bounds
    labels = torch.randint(0, NUM_CLASSES, (N,), generator=gen)
    return x.to(device), labels.to(device)


def _true_distance(name: str, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    delta = (perturbed - reference).reshape(len(reference), -1).double()
    if name == "l0":
        return (delta != 0).sum(dim=1).double()
    if name == "l0-pixels":  # positions (h, w) where some channel changed
        changed = (perturbed != reference).any(dim=1)
        return changed.reshape(len(reference), -1).sum(dim=1).double()
    if name == "l2":
        return delta.pow(2).sum(dim=1).sqrt()
    if name == "linf":
        return delta.abs().max(dim=1).values
    raise AssertionError(f"no reference implementation for distance {name!r}")


def check_contract(
    attack: Attack,
    model: ModelWrapper,
    x: torch.Tensor,
    criterion: Criterion,
    epsilons: list[float | None],
    expected_success: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Asserts the attack contract for one call; `expected_success(logits)` is the oracle."""
    model.train()  # the attack must not run in train mode nor leave the model in eval mode
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x_before = x.clone()
    raws, clippeds, successes = attack(model, x, criterion, epsilons=epsilons)
    assert isinstance(raws, list) and isinstance(clippeds, list) and isinstance(successes, list)
    assert len(raws) == len(clippeds) == len(successes) == len(epsilons)
    low, high = model.bounds
    name = attack.distance.name
    for eps, raw, clipped, success in zip(epsilons, raws, clippeds, successes, strict=True):
        for adv in (raw, clipped):
            assert adv.shape == x.shape and adv.dtype == x.dtype and adv.device == x.device
            assert not adv.requires_grad
            assert float(adv.min()) >= low and float(adv.max()) <= high
        true = _true_distance(name, x, clipped)
        reported = attack.distance(x, clipped)
        assert reported.shape == (len(x),)
        torch.testing.assert_close(reported.double(), true, rtol=1e-5, atol=1e-6)
        if attack.unbounded:
            assert torch.equal(clipped, raw)
        elif eps is not None:
            assert bool((true <= eps * (1 + 1e-5) + 1e-6).all()), (eps, true)
        assert success.dtype == torch.bool and success.shape == (len(x),)
        assert success.device == x.device
        with eval_mode(model), torch.no_grad():
            assert torch.equal(success, expected_success(model(clipped)))
    assert torch.equal(x, x_before)
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())


# Budgets of queries for the contract calls, where an attack's default runs for minutes on
# targets the tiny model cannot reach (the contract does not judge the attack's strength):
# one-pixel's and C&W's defaults took about two minutes per test on 2 CPU cores.
CONTRACT: dict[str, dict[str, Any]] = {
    "sparse-rs": {"max_queries": 300},
    "one-pixel": {"population": 40, "max_generations": 10},
    "cw": {"binary_search_steps": 3, "steps": 50},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ATTACKS.names())
def test_registered_attack_contract_untargeted(name: str, device: str) -> None:
    attack = create_attack(name, **CONTRACT.get(name, {}))
    model = _model(device)
    x, labels = _batch(device)
    epsilons = EPSILONS[attack.distance.name]
    if isinstance(attack, MinimizationAttack):
        epsilons = [*epsilons, None]

    def oracle(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != labels

    check_contract(attack, model, x, Misclassification(labels), epsilons, oracle)
    # Labels given directly mean the same as Misclassification(labels).
    check_contract(attack, model, x, labels, epsilons, oracle)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_registered_attack_contract_targeted_or_refused(name: str) -> None:
    attack = create_attack(name, **CONTRACT.get(name, {}))
    model = _model()
    x, labels = _batch()
    target = (labels + 1) % NUM_CLASSES
    criterion = TargetedMisclassification(target)
    try:
        attack(model, x, criterion, epsilons=0.1)
    except AttackError as err:
        assert str(err).startswith("criterion:")
        return

    def oracle(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) == target

    check_contract(attack, model, x, criterion, EPSILONS[attack.distance.name], oracle)


def _seeded(name: str, seed: int = 0) -> Attack:
    """The attack with its own seed when it draws random numbers, so that calls repeat."""
    has_seed = "seed" in inspect.signature(ATTACKS.get(name)).parameters
    budget = CONTRACT.get(name, {})
    return create_attack(name, seed=seed, **budget) if has_seed else create_attack(name, **budget)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_deterministic_with_a_seed(name: str) -> None:
    model = _model()
    x, labels = _batch()
    eps = EPSILONS[_seeded(name).distance.name][2]
    first = _seeded(name)(model, x, labels, epsilons=eps)
    torch.manual_seed(123)  # the global generator must not matter once a seed is given
    second = _seeded(name)(model, x, labels, epsilons=eps)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    if "seed" in inspect.signature(ATTACKS.get(name)).parameters:
        other = _seeded(name, seed=1)(model, x, labels, epsilons=eps)
        assert not torch.equal(first[0], other[0])  # the seed is really used


@pytest.mark.parametrize("name", ATTACKS.names())
def test_single_epsilon_gives_single_items(name: str) -> None:
    attack = _seeded(name)
    model = _model()
    x, labels = _batch()
    eps = EPSILONS[attack.distance.name][2]
    raw, clipped, success = attack(model, x, labels, epsilons=eps)
    raws, clippeds, successes = attack(model, x, labels, epsilons=[eps])
    assert isinstance(raw, torch.Tensor) and isinstance(clipped, torch.Tensor)
    assert isinstance(success, torch.Tensor) and success.shape == (N,)
    assert torch.equal(raw, raws[0]) and torch.equal(clipped, clippeds[0])
    assert torch.equal(success, successes[0])


@pytest.mark.parametrize("name", ATTACKS.names())
def test_declaration_and_keyword_only_params_stored_unchanged(name: str) -> None:
    cls = ATTACKS.get(name)
    assert ATTACKS.help(name)
    assert issubclass(cls, FixedEpsilonAttack | MinimizationAttack)
    assert isinstance(cls.distance, Distance) and cls.distance.name in EPSILONS
    assert isinstance(cls.unbounded, bool)
    assert cls.__doc__ is not None
    for section in ("Args:", "Returns:", "References:"):
        assert section in cls.__doc__, section
    attack = create_attack(name)
    for param in inspect.signature(cls).parameters.values():
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, param
        assert param.default is not inspect.Parameter.empty, f"{param} needs a default"
        assert getattr(attack, param.name) == param.default


@dataclasses.dataclass(frozen=True)
class Call:
    model: Any
    inputs: Any
    criterion: Any
    epsilons: Any


def _nan_inputs(c: Call) -> Call:
    x = c.inputs.clone()
    x[0, 0, 0, 0] = math.nan
    return dataclasses.replace(c, inputs=x)


BAD_CALLS: dict[str, tuple[Callable[[Call], Call], str]] = {
    "wrong rank": (
        lambda c: dataclasses.replace(c, inputs=c.inputs[0]),
        r"^inputs: expected a float tensor of shape \(N, C, H, W\).*found shape \(3, 8, 8\)",
    ),
    "flattened": (
        lambda c: dataclasses.replace(c, inputs=c.inputs.flatten(1)),
        r"^inputs: .*found shape \(6, 192\)",
    ),
    "empty batch": (
        lambda c: dataclasses.replace(c, inputs=c.inputs[:0], criterion=c.criterion[:0]),
        r"^inputs: .*N >= 1.*found shape \(0, 3, 8, 8\)",
    ),
    "not a tensor": (
        lambda c: dataclasses.replace(c, inputs=c.inputs.numpy()),
        r"^inputs: .*found ndarray",
    ),
    "integer pixels": (
        lambda c: dataclasses.replace(c, inputs=(c.inputs * 255).to(torch.uint8)),
        r"^inputs: .*found dtype torch.uint8",
    ),
    "dtype differs from model": (
        lambda c: dataclasses.replace(c, inputs=c.inputs.double()),
        r"^inputs: expected dtype torch.float32 \(the model's\), found torch.float64",
    ),
    "nan pixel": (_nan_inputs, r"^inputs: expected finite values"),
    "pixels above bounds": (
        lambda c: dataclasses.replace(c, inputs=c.inputs * 255),
        r"^inputs: expected values in \[0.0, 1.0\] \(the model's bounds\), found values in",
    ),
    "pixels below bounds": (
        lambda c: dataclasses.replace(c, inputs=c.inputs - 0.5),
        r"^inputs: expected values in \[0.0, 1.0\].*found values in \[-0.5",
    ),
    "label out of range": (
        lambda c: dataclasses.replace(c, criterion=torch.full((N,), NUM_CLASSES)),
        r"^labels: expected an int64 tensor of shape \(6,\) with values in \[0, 5\), "
        r"found values in \[5, 5\]",
    ),
    "negative label": (
        lambda c: dataclasses.replace(c, criterion=c.criterion - 10),
        r"^labels: .*found values in \[-10,",
    ),
    "labels wrong length": (
        lambda c: dataclasses.replace(c, criterion=c.criterion[:-1]),
        r"^labels: expected an int64 tensor of shape \(6,\).*found shape \(5,\)",
    ),
    "labels 2-D": (
        lambda c: dataclasses.replace(c, criterion=c.criterion[:, None]),
        r"^labels: .*found shape \(6, 1\)",
    ),
    "labels float": (
        lambda c: dataclasses.replace(c, criterion=c.criterion.float()),
        r"^labels: .*found dtype torch.float32",
    ),
    "labels int32": (
        lambda c: dataclasses.replace(c, criterion=c.criterion.int()),
        r"^labels: .*found dtype torch.int32",
    ),
    "labels on another device": (
        lambda c: dataclasses.replace(c, criterion=c.criterion.to("meta")),
        r"^labels: expected on device cpu \(the inputs'\), found meta",
    ),
    "target out of range": (
        lambda c: dataclasses.replace(c, criterion=TargetedMisclassification(c.criterion + 10)),
        r"^target_classes: .*found values in \[10,",
    ),
    "labels as a list": (
        lambda c: dataclasses.replace(c, criterion=c.criterion.tolist()),
        r"^criterion_or_labels: expected a Criterion or an int64 label tensor.*found list",
    ),
    "negative epsilon": (
        lambda c: dataclasses.replace(c, epsilons=-0.1),
        r"^epsilons: expected a finite number >= 0.*found -0.1",
    ),
    "negative epsilon in a list": (
        lambda c: dataclasses.replace(c, epsilons=[0.1, -0.2]),
        r"^epsilons: .*found -0.2",
    ),
    "nan epsilon": (lambda c: dataclasses.replace(c, epsilons=math.nan), r"^epsilons: .*nan"),
    "inf epsilon": (lambda c: dataclasses.replace(c, epsilons=[math.inf]), r"^epsilons: .*inf"),
    "empty epsilons": (lambda c: dataclasses.replace(c, epsilons=[]), r"^epsilons: .*empty"),
    "string epsilon": (lambda c: dataclasses.replace(c, epsilons="0.1"), r"^epsilons: .*str"),
    "bool epsilon": (lambda c: dataclasses.replace(c, epsilons=True), r"^epsilons: .*bool"),
    "model without bounds": (
        lambda c: dataclasses.replace(c, model=c.model.inner),
        r"^model: expected a ModelWrapper-like nn.Module with .bounds",
    ),
    "model on another device": (
        lambda c: dataclasses.replace(c, model=_model("meta")),
        r"^inputs: expected on device meta \(the model's\), found cpu",
    ),
}


# Cheaper settings for the tests of input validation, which do not judge the attack's result.
FAST: dict[str, dict[str, Any]] = {
    "cw": {"binary_search_steps": 1, "steps": 10},
    "generator": {"max_rounds": 2},
    "one-pixel": {"population": 8, "max_generations": 2},
    "sparse-rs": {"max_queries": 20},
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
@pytest.mark.parametrize("name", ATTACKS.names())
def test_bad_input_raises_attack_error_naming_the_argument(name: str, case: str) -> None:
    attack = create_attack(name, **FAST.get(name, {}))
    x, labels = _batch()
    good = Call(_model(), x, labels, EPSILONS[attack.distance.name][1])
    attack(good.model, good.inputs, good.criterion, epsilons=good.epsilons)  # the baseline works
    mutate, pattern = BAD_CALLS[case]
    bad = mutate(good)
    with pytest.raises(AttackError, match=pattern):
        attack(bad.model, bad.inputs, bad.criterion, epsilons=bad.epsilons)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_fixed_epsilon_attacks_refuse_none_epsilon(name: str) -> None:
    attack = create_attack(name)
    if not isinstance(attack, FixedEpsilonAttack) or attack.unbounded:
        pytest.skip("accepts epsilon None")
    x, labels = _batch()
    with pytest.raises(AttackError, match=r"^epsilons: .*None"):
        attack(_model(), x, labels, epsilons=[0.1, None])


@pytest.mark.parametrize("name", ATTACKS.names())
def test_unexpected_keyword_argument_raises(name: str) -> None:
    x, labels = _batch()
    with pytest.raises(AttackError, match="unexpected keyword arguments \\['bogus'\\]"):
        create_attack(name)(_model(), x, labels, epsilons=0.1, bogus=1)


# The base classes, exercised through attacks that exist only here (not registered).


class _NoiseMinimization(MinimizationAttack):
    """Returns uniform noise, far from the inputs; only the base class makes it small.

    Args:
        None.

    Returns:
        As `Attack`.

    References:
        None; a test double.
    """

    distance = l2
    seen: ClassVar[list[float | None]] = []

    def run(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        *,
        epsilon: float | None,
        **kwargs: Any,
    ) -> torch.Tensor:
        self.seen.append(epsilon)
        gen = torch.Generator().manual_seed(2)
        return torch.rand(inputs.shape, generator=gen).to(inputs)


class _UnboundedNoise(FixedEpsilonAttack):
    """Adds noise of a fixed size whatever the epsilon; reports its Linf distance.

    Args:
        None.

    Returns:
        As `Attack`.

    References:
        None; a test double.
    """

    distance = linf
    unbounded = True

    def run(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        *,
        epsilon: float | None,
        **kwargs: Any,
    ) -> torch.Tensor:
        gen = torch.Generator().manual_seed(3)
        noise = torch.rand(inputs.shape, generator=gen).to(inputs) - 0.5
        return (inputs + 0.4 * noise).clamp(0.0, 1.0)


def test_minimization_attack_runs_once_and_projects_per_epsilon() -> None:
    attack = _NoiseMinimization()
    model = _model()
    x, labels = _batch()
    _NoiseMinimization.seen.clear()

    def oracle(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != labels

    epsilons: list[float | None] = [0.0, 0.5, 2.0, None]
    check_contract(attack, model, x, Misclassification(labels), epsilons, oracle)
    assert _NoiseMinimization.seen == [None]  # one run; None in epsilons means no early stop
    raws, clippeds, _ = attack(model, x, labels, epsilons=[2.0, 0.5])
    assert _NoiseMinimization.seen == [None, 0.5]  # min(epsilons) as the early-stop hint
    assert raws[0] is raws[1]
    torch.testing.assert_close(l2(x, clippeds[0]), torch.full((N,), 2.0))
    assert torch.equal(clippeds[0], l2.clip_perturbation(x, raws[0], 2.0))
    _, clipped_none, _ = attack(model, x, labels, epsilons=None)
    assert torch.equal(clipped_none, raws[0])


def test_unbounded_attack_reports_true_distances_and_is_not_clipped() -> None:
    attack = _UnboundedNoise()
    model = _model()
    x, labels = _batch()

    def oracle(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != labels

    check_contract(attack, model, x, Misclassification(labels), [0.0, 0.01, None], oracle)
    _, clipped, _ = attack(model, x, labels, epsilons=0.01)
    assert float(linf(x, clipped).max()) > 0.1  # no projection onto the 0.01 ball


def test_criterion_with_wrong_output_is_refused() -> None:
    class Shapeless(Criterion):
        def __call__(self, perturbed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            return logits.argmax(dim=1)  # int64, not bool

    x, _ = _batch()
    with pytest.raises(AttackError, match=r"^criterion: expected a bool tensor of shape \(6,\)"):
        _NoiseMinimization()(_model(), x, Shapeless(), epsilons=1.0)


def test_model_must_return_2d_logits() -> None:
    model = ModelWrapper(nn.Conv2d(3, 2, 1))
    x, labels = _batch()
    with pytest.raises(AttackError, match=r"^model: expected logits of shape \(N, num_classes\)"):
        _NoiseMinimization()(model, x, labels, epsilons=1.0)


# Criteria.


def test_criteria_values_and_combination() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 5.0]])
    x = torch.zeros(3, 1, 1, 1)
    labels = torch.tensor([0, 2, 2])
    targets = torch.tensor([1, 1, 0])
    mis = Misclassification(labels)
    tgt = TargetedMisclassification(targets)
    assert mis(x, logits).tolist() == [False, True, False]
    assert tgt(x, logits).tolist() == [False, True, False]
    assert (mis & TargetedMisclassification(torch.tensor([0, 1, 2])))(x, logits).tolist() == [
        False,
        True,
        False,
    ]
    assert get_criterion(labels).labels is labels  # type: ignore[attr-defined]
    assert get_criterion(tgt) is tgt


# Distances, against independent norm computations.


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    reference = torch.rand(5, 2, 3, 3, generator=gen)
    perturbed = torch.rand(5, 2, 3, 3, generator=gen)
    perturbed[0] = reference[0]  # one sample unchanged
    perturbed[1] = reference[1]
    perturbed[1, 0, 1, 1] += 0.01  # one sample with one tiny change
    return reference, perturbed


@pytest.mark.parametrize("distance", [l0, l0_pixels, l2, linf], ids=lambda d: d.name)
def test_distance_values(distance: Distance) -> None:
    reference, perturbed = _pair()
    values = distance(reference, perturbed)
    assert values.shape == (5,)
    torch.testing.assert_close(values.double(), _true_distance(distance.name, reference, perturbed))
    assert float(values[0]) == 0.0


@pytest.mark.parametrize(
    ("distance", "epsilon"),
    [(l0, 4.0), (l0, 4.7), (l0_pixels, 2.0), (l2, 0.5), (linf, 0.1)],
    ids=str,
)
def test_clip_perturbation_projects_onto_ball(distance: Distance, epsilon: float) -> None:
    reference, perturbed = _pair()
    clipped = distance.clip_perturbation(reference, perturbed, epsilon)
    true = _true_distance(distance.name, reference, clipped)
    assert bool((true <= epsilon + 1e-6).all())
    # Within bounds [0, 1] that both inputs satisfy, samples inside the ball untouched.
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0
    inside = _true_distance(distance.name, reference, perturbed) <= epsilon
    assert bool(inside[:2].all())
    assert torch.equal(clipped[inside], perturbed[inside])
    # Samples outside end on the boundary (the projection, not a shrink to zero).
    outside = ~inside
    if distance is l0:
        torch.testing.assert_close(true[outside], torch.full_like(true[outside], 4.0))
    else:
        torch.testing.assert_close(true[outside], torch.full_like(true[outside], epsilon).double())


def test_l0_clip_keeps_the_largest_changes() -> None:
    reference = torch.zeros(1, 1, 2, 3)
    perturbed = torch.tensor([[[[0.1, -0.9, 0.3], [0.0, 0.5, -0.2]]]])
    clipped = l0.clip_perturbation(reference, perturbed, 2)
    assert clipped.flatten().tolist() == pytest.approx([0.0, -0.9, 0.0, 0.0, 0.5, 0.0])
    assert torch.equal(l0.clip_perturbation(reference, perturbed, 0), reference)
    assert torch.equal(l0.clip_perturbation(reference, perturbed, 100), perturbed)


def test_l2_clip_direction_kept() -> None:
    reference = torch.zeros(1, 1, 1, 2)
    perturbed = torch.tensor([[[[0.6, 0.8]]]])  # length 1
    clipped = l2.clip_perturbation(reference, perturbed, 0.5)
    torch.testing.assert_close(clipped.flatten(), torch.tensor([0.3, 0.4]))
