"""Training: a small supervised trainer, batch-wise augmentation and checkpoints."""

from advlab.train.augment import apply_crop_flip, crop_flip, crop_flip_params
from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.trainer import History, TrainConfig, evaluate, fit

__all__ = [
    "History",
    "TrainConfig",
    "apply_crop_flip",
    "crop_flip",
    "crop_flip_params",
    "evaluate",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
]
