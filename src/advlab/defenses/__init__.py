"""Defences: Adaptive Pixel Resilience's parts and adversarial training, on advlab's attacks
and trainer (`advlab.train.fit(..., objective=DefenseObjective(...))`).

Every defence is registered in `DEFENSES`; build one with `create_defense(name, **settings)`.
"""

from advlab.defenses.apr import APRConfig, apr_model, apr_objective, fine_tune
from advlab.defenses.attention import (
    PixelAttention,
    attention_layer,
    gate_map,
    logits_and_gate,
    open_pixels,
    with_pixel_attention,
)
from advlab.defenses.registry import DEFENSES, create_defense
from advlab.defenses.training import (
    DefenseObjective,
    FGSMRandomStart,
    OnePixelExamples,
    PGDExamples,
    pixel_sensitivity,
)

__all__ = [
    "DEFENSES",
    "APRConfig",
    "DefenseObjective",
    "FGSMRandomStart",
    "OnePixelExamples",
    "PGDExamples",
    "PixelAttention",
    "apr_model",
    "apr_objective",
    "attention_layer",
    "create_defense",
    "fine_tune",
    "gate_map",
    "logits_and_gate",
    "open_pixels",
    "pixel_sensitivity",
    "with_pixel_attention",
]
