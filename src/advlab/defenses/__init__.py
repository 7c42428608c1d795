"""Defences: Adaptive Pixel Resilience's parts and adversarial training, on advlab's attacks
and trainer (`advlab.train.fit(..., objective=DefenseObjective(...))`)."""

from advlab.defenses.attention import PixelAttention, attention_layer, with_pixel_attention
from advlab.defenses.training import (
    DefenseObjective,
    FGSMRandomStart,
    OnePixelExamples,
    PGDExamples,
    pixel_sensitivity,
)

__all__ = [
    "DefenseObjective",
    "FGSMRandomStart",
    "OnePixelExamples",
    "PGDExamples",
    "PixelAttention",
    "attention_layer",
    "pixel_sensitivity",
    "with_pixel_attention",
]
