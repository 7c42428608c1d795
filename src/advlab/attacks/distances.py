"""Distances between reference and perturbed batches, and projection onto their balls.

Every distance but `l0_pixels` treats a sample as one flat vector of all its C * H * W values,
so L0 counts changed values (a colour pixel changed in three channels counts three); `l0_pixels`
counts changed pixels, the budget of the one-pixel attack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


def _flat_delta(reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    return (perturbed - reference).flatten(start_dim=1)  # (N, C * H * W)


class Distance(ABC):
    """A norm of `perturbed - reference`, per sample.

    Args:
        None; use the module-level instances `l0`, `l2`, `linf`.

    Returns:
        Calling a distance with `(reference, perturbed)`, both (N, ...), returns a float
        tensor (N,); `clip_perturbation(reference, perturbed, epsilon)` returns perturbed
        inputs (N, ...) whose distance to `reference` is at most `epsilon`.

    References:
        Carlini, Wagner 2017, "Towards Evaluating the Robustness of Neural Networks"
        (section on the L0, L2 and Linf distance metrics).
    """

    name: str

    @abstractmethod
    def __call__(self, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def clip_perturbation(
        self, reference: torch.Tensor, perturbed: torch.Tensor, epsilon: float
    ) -> torch.Tensor: ...

    def __repr__(self) -> str:
        return self.name


class L0(Distance):
    """Number of changed values per sample.

    Args:
        None.

    Returns:
        Calling it returns the count of nonzero entries of `perturbed - reference`, (N,).
        `clip_perturbation` keeps, per sample, the `floor(epsilon)` changes of largest
        magnitude and resets the others to `reference`; this is the Euclidean projection onto
        the (non-convex) L0 ball, ties broken arbitrarily. It stays within any box bounds
        that both inputs satisfy, since every value comes from one of them.

    References:
        Papernot, McDaniel, Jha, Fredrikson, Celik, Swami 2016,
        "The Limitations of Deep Learning in Adversarial Settings".
    """

    name = "l0"

    def __call__(self, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        return (_flat_delta(reference, perturbed) != 0).sum(dim=1).to(reference.dtype)

    def clip_perturbation(
        self, reference: torch.Tensor, perturbed: torch.Tensor, epsilon: float
    ) -> torch.Tensor:
        delta = _flat_delta(reference, perturbed)
        k = min(int(epsilon), delta.shape[1])
        if k == 0:
            return reference.clone()
        keep = torch.zeros_like(delta, dtype=torch.bool)
        keep.scatter_(1, delta.abs().topk(k, dim=1).indices, True)
        return torch.where(keep.view_as(reference), perturbed, reference)


class L0Pixels(Distance):
    """Number of changed pixels per sample: positions (h, w) where any channel changed.

    Args:
        None.

    Returns:
        Calling it with (N, C, H, W) inputs returns the count of positions where
        `perturbed - reference` is nonzero in some channel, (N,). `clip_perturbation` keeps,
        per sample, the `floor(epsilon)` pixels whose change has the largest Euclidean norm
        over channels, and resets the others to `reference` (all channels of a pixel together).

    References:
        Su, Vargas, Sakurai 2019, "One Pixel Attack for Fooling Deep Neural Networks".
    """

    name = "l0-pixels"

    def __call__(self, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        changed = (perturbed - reference != 0).any(dim=1)  # (N, H, W)
        return changed.flatten(1).sum(dim=1).to(reference.dtype)

    def clip_perturbation(
        self, reference: torch.Tensor, perturbed: torch.Tensor, epsilon: float
    ) -> torch.Tensor:
        size = torch.linalg.vector_norm(perturbed - reference, dim=1).flatten(1)  # (N, H * W)
        k = min(int(epsilon), size.shape[1])
        if k == 0:
            return reference.clone()
        keep = torch.zeros_like(size, dtype=torch.bool)
        keep.scatter_(1, size.topk(k, dim=1).indices, True)
        keep = keep.view(reference.shape[0], 1, *reference.shape[2:])
        return torch.where(keep & (size.view_as(keep) > 0), perturbed, reference)


class L2(Distance):
    """Euclidean norm of the change per sample.

    Args:
        None.

    Returns:
        Calling it returns `||perturbed - reference||_2`, (N,). `clip_perturbation` scales
        perturbations longer than `epsilon` down to length `epsilon` (Euclidean projection).

    References:
        Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow, Fergus 2014,
        "Intriguing properties of neural networks".
    """

    name = "l2"

    def __call__(self, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(_flat_delta(reference, perturbed), ord=2, dim=1)

    def clip_perturbation(
        self, reference: torch.Tensor, perturbed: torch.Tensor, epsilon: float
    ) -> torch.Tensor:
        norms = self(reference, perturbed)
        # Only shrink: points already inside the ball come back bit-for-bit unchanged.
        factor = (epsilon / norms.clamp_min(1e-12)).clamp(max=1.0)
        shape = (-1,) + (1,) * (reference.ndim - 1)
        scaled = reference + (perturbed - reference) * factor.view(shape)
        # Rounding may overshoot the segment by an ulp; pulling back onto it keeps box bounds
        # that both inputs satisfy and can only shorten the perturbation.
        low, high = torch.minimum(reference, perturbed), torch.maximum(reference, perturbed)
        scaled = torch.minimum(torch.maximum(scaled, low), high)
        return torch.where((factor < 1).view(shape), scaled, perturbed)


class LInf(Distance):
    """Largest absolute change per sample.

    Args:
        None.

    Returns:
        Calling it returns `max |perturbed - reference|`, (N,). `clip_perturbation` clamps
        every value to `[reference - epsilon, reference + epsilon]` (Euclidean projection).

    References:
        Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples".
    """

    name = "linf"

    def __call__(self, reference: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(_flat_delta(reference, perturbed), ord=float("inf"), dim=1)

    def clip_perturbation(
        self, reference: torch.Tensor, perturbed: torch.Tensor, epsilon: float
    ) -> torch.Tensor:
        # min/max rather than reference + clamp(delta): values inside the ball stay exact, and
        # the result never leaves box bounds that both inputs satisfy.
        return torch.minimum(torch.maximum(perturbed, reference - epsilon), reference + epsilon)


l0 = L0()
l0_pixels = L0Pixels()
l2 = L2()
linf = LInf()
