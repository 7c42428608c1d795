"""The registries: one entry per name, help from one place, one keyword check for every factory."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from advlab.attacks import ATTACKS, create_attack
from advlab.data import DATASETS
from advlab.defenses import DEFENSES, FGSMRandomStart, PGDExamples, create_defense
from advlab.defenses.training import EXAMPLES
from advlab.errors import ConfigError, RegistryError
from advlab.experiments import EXPERIMENTS, register_experiment
from advlab.models import MODELS, create_model
from advlab.models.weights import WEIGHTS
from advlab.registry import Registry, check_kwargs


def test_a_name_registered_twice_is_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1, "the first")
    with pytest.raises(RegistryError, match=r"^widget 'a' is registered twice$"):
        reg.add("a", 2, "the second")
    assert reg.get("a") == 1 and reg.help("a") == "the first"
    with pytest.raises(RegistryError, match=r"^unknown widget 'b'; known: a$"):
        reg.get("b")


def test_registering_an_experiment_twice_is_refused() -> None:
    exp = EXPERIMENTS.get("demo")
    with pytest.raises(RegistryError, match="experiment 'demo' is registered twice"):
        register_experiment(
            "demo", "again", config=exp.config, execute=exp.execute, report=exp.report
        )
    assert EXPERIMENTS.get("demo") is exp


def test_help_comes_from_the_entry_and_only_from_it() -> None:
    reg: Registry[dict[str, str]] = Registry("widget", describe=lambda item: item["line"])
    reg.add("a", {"line": "what a is"})
    assert reg.help("a") == "what a is"
    with pytest.raises(RegistryError, match="help expected from the entry itself"):
        reg.add("b", {"line": "what b is"}, "and a second description")
    assert "b" not in reg


def test_replace_and_copy() -> None:
    reg: Registry[int] = Registry("widget", describe=str)
    reg.add("a", 1)
    other = reg.copy()
    other.add("a", 2, replace=True)
    other.add("b", 3)
    assert (reg.get("a"), reg.names()) == (1, ["a"])
    assert (other.get("a"), other.help("a"), other.names()) == (2, "2", ["a", "b"])


def test_experiments_are_described_by_their_summary() -> None:
    assert len(EXPERIMENTS) >= 20
    for name in EXPERIMENTS:
        exp = EXPERIMENTS.get(name)
        assert exp.name == name
        assert EXPERIMENTS.help(name) == exp.summary != ""


def test_datasets_and_weights_are_described_by_their_own_fields() -> None:
    for name in DATASETS:
        spec = DATASETS.get(name)
        assert spec.name == name and DATASETS.help(name) == spec.summary
        assert DATASETS.help(name).startswith(spec.description + ": ")
    assert DATASETS.help("mnist") == (
        "MNIST handwritten digits, 28x28 grayscale (IDX files): 60,000 train / 10,000 test"
    )
    assert "3,589 val (PublicTest) / 3,589 test (PrivateTest)" in DATASETS.help("fer2013")
    for name in WEIGHTS:
        cfg = WEIGHTS.get(name)
        assert cfg.name == name and WEIGHTS.help(name) == cfg.description != ""


def test_every_registry_has_help_for_every_entry() -> None:
    for reg in (EXPERIMENTS, MODELS, ATTACKS, DEFENSES, DATASETS, WEIGHTS):
        assert all(reg.help(name) for name in reg), reg.kind


FACTORIES: list[tuple[str, Callable[..., Any], Registry[Any], str]] = [
    ("create_model", create_model, MODELS, "small_cnn"),
    ("create_attack", create_attack, ATTACKS, "fgsm"),
    ("create_defense", create_defense, DEFENSES, "pgd"),
]


@pytest.mark.parametrize(("factory", "create", "registry", "name"), FACTORIES)
def test_every_factory_refuses_an_unknown_keyword_with_one_message(
    factory: str, create: Callable[..., Any], registry: Registry[Any], name: str
) -> None:
    accepted = ", ".join(inspect.signature(registry.get(name)).parameters)
    expected = (
        f"{factory}('{name}'): unknown keyword parameter(s) 'bogus'; accepted keyword "
        f"parameters: {accepted}"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        create(name, epsilon=0.1, bogus=1) if name == "pgd" else create(name, bogus=1)
    with pytest.raises(RegistryError, match=f"unknown {registry.kind} 'nope'"):
        create("nope")


def test_factories_name_a_missing_required_keyword() -> None:
    expected = (
        "create_defense('pgd'): missing required keyword parameter(s) 'epsilon'; "
        "accepted keyword parameters: epsilon, steps, rel_stepsize"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        create_defense("pgd")
    with pytest.raises(
        ConfigError,
        match=r"^create_model\('pixel_attention'\): missing required "
        r"keyword parameter\(s\) 'base'",
    ):
        create_model("pixel_attention")


def test_check_kwargs_accepts_what_the_target_takes() -> None:
    def target(a: int, *, b: int = 0) -> None: ...

    def anything(**kwargs: Any) -> None: ...

    check_kwargs("make", "x", target, {"a": 1, "b": 2})
    check_kwargs("make", "x", anything, {"whatever": 1})
    with pytest.raises(
        ConfigError,
        match=r"^make\('x'\): unknown keyword parameter\(s\) 'c', 'd'; "
        r"accepted keyword parameters: a, b$",
    ):
        check_kwargs("make", "x", target, {"a": 1, "d": 0, "c": 0})


def test_defenses_registry_builds_the_objects_the_specs_name() -> None:
    for kind, cls in EXAMPLES.items():  # the kinds a DefenseObjective spec stores
        assert DEFENSES.get(kind) is cls
    assert create_defense("fgsm-rs", epsilon=0.3) == FGSMRandomStart(0.3)
    objective = create_defense(
        "adversarial-training", attack=create_defense("pgd", epsilon=0.1), adversarial_fraction=1.0
    )
    assert objective.attack == PGDExamples(0.1) and objective.adversarial_fraction == 1.0
    assert create_defense("apr", attention=False).parts() == "adversarial + regularisation"
