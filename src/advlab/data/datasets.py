"""Dataset objects handed to the rest of advlab: uint8 arrays plus float tensors in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ArrayDataset:
    """One split of a dataset.

    Args:
        name: Registry name of the dataset.
        split: Split name (``train``, ``val``, ``test``, ...).
        images: uint8 array (N, H, W, C), often memory-mapped from the cache.
        labels: int64 array (N,).
        classes: Class names in label order.
    """

    name: str
    split: str
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image as (C, H, W), the layout of `tensors`."""
        h, w, c = self.images.shape[1:]
        return (c, h, w)

    def subset(self, index: np.ndarray | slice | list[int]) -> ArrayDataset:
        return ArrayDataset(
            self.name, self.split, self.images[index], self.labels[index], self.classes
        )

    def take(self, n: int, *, seed: int | None = None, stratified: bool = True) -> ArrayDataset:
        """The first `n` examples, or a seeded (class-stratified) random sample of `n`."""
        if seed is None:
            return self.subset(slice(0, n))
        rng = np.random.default_rng(seed)
        if not stratified:
            return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))
        order = rng.permutation(len(self))
        labels = np.asarray(self.labels)[order]
        # Round-robin over classes in a random order: as balanced as the counts allow.
        rank = np.empty(len(order), np.int64)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            rank[idx] = np.arange(len(idx))
        chosen = order[np.lexsort((labels, rank))[:n]]
        return self.subset(np.sort(chosen))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images as float32 (N, C, H, W) in [0, 1] and labels, in numpy."""
        x = np.asarray(self.images, dtype=np.float32).transpose(0, 3, 1, 2) / 255.0
        return np.ascontiguousarray(x), np.asarray(self.labels, dtype=np.int64)

    def tensors(
        self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as a float tensor (N, C, H, W) in [0, 1] on `device`, and int64 labels."""
        import torch

        # The NHWC -> NCHW copy is fastest on uint8 in numpy; it also detaches from the mmap.
        nchw = np.array(np.asarray(self.images).transpose(0, 3, 1, 2), order="C")
        x = torch.from_numpy(nchw).to(device).to(dtype or torch.float32).div_(255.0)
        y = torch.from_numpy(np.array(self.labels, dtype=np.int64)).to(device)
        return x, y
