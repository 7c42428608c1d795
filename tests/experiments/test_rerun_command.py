"""The rerun command a report prints rebuilds the run's config exactly."""

from __future__ import annotations

import shlex
from dataclasses import replace

from advlab.experiments import EXPERIMENTS, build_config
from advlab.experiments.base import rerun_command
from advlab.experiments.flowers_attacks import FlowersAttacksConfig


def _overrides(command: str) -> tuple[list[str], int]:
    words = shlex.split(command)
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    return sets, int(words[words.index("--seed") + 1])


def test_rerun_command_round_trips_lists_and_nested_floats() -> None:
    cfg = FlowersAttacksConfig()
    cfg = replace(
        cfg,
        pixels=(1, 3),
        epsilons=(1 / 255, 0.5),
        seed=7,
        cnn=replace(cfg.cnn, epochs=3),
        transfer=replace(cfg.transfer, phase_a_lr=1 / 3000),
    )
    command = rerun_command("flowers-attacks", cfg)
    assert command.startswith("advlab run flowers-attacks --set cnn.epochs=3 ")
    assert "--set 'pixels=[1,3]'" in command and command.endswith("--seed 7")
    sets, seed = _overrides(command)
    assert len(sets) == 4
    assert build_config(EXPERIMENTS.get("flowers-attacks").config, sets, seed=seed) == cfg
    assert rerun_command("flowers-attacks", FlowersAttacksConfig()) == (
        "advlab run flowers-attacks --seed 0"
    )
