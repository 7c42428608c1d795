"""Training: a small supervised trainer and checkpoints."""

from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.trainer import History, TrainConfig, evaluate, fit

__all__ = ["History", "TrainConfig", "evaluate", "fit", "load_checkpoint", "save_checkpoint"]
