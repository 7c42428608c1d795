"""Counter-based random numbers: every value is a hash of (seed, stream, image, step, slot).

An attack that draws its randomness here gives each image its own stream, whatever batch,
chunk or shard the image is processed in: the numbers drawn for image 17 at generation 3 are the
same whether it is attacked alone, in a batch of 500, or on another machine. (Streams are keyed
by `stream * 1_000_003 + step`, so they stay apart for steps below 1,000,003.) All draws are batched
tensor ops (SplitMix64's finaliser on int64 tensors) on the device of the ids.
"""

from __future__ import annotations

import math

import torch


def _signed(value: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


_GAMMA = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's `>>` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64: `z + golden gamma` through Stafford's variant 13 finaliser, int64 wrapping.

    Args:
        z: int64 tensor, any shape.

    Returns:
        int64 tensor of the same shape; the bits equal those of the unsigned reference.

    References:
        Steele, Lea, Flood 2014, "Fast Splittable Pseudorandom Number Generators".
    """
    z = z + _GAMMA
    z = (z ^ _shift_right(z, 30)) * _MUL1
    z = (z ^ _shift_right(z, 27)) * _MUL2
    return z ^ _shift_right(z, 31)


def stream_keys(seed: int, stream: int, ids: torch.Tensor, step: int) -> torch.Tensor:
    """One int64 key per id for (seed, stream, step); ids int64 (A,) on the wanted device."""
    base = mix64(torch.tensor(_signed(seed % (1 << 64)), dtype=torch.int64, device=ids.device))
    key = mix64(base ^ mix64(torch.tensor(stream * 1_000_003 + step, device=ids.device)))
    return mix64(key ^ mix64(ids.to(torch.int64)))


def uniform(
    seed: int, stream: int, ids: torch.Tensor, step: int, shape: tuple[int, ...]
) -> torch.Tensor:
    """Float64 values in [0, 1), (A, *shape): slot j of id a is a hash of (key_a, j).

    Args:
        seed: The attack's seed.
        stream: Which quantity is drawn (each has its own number).
        ids: Image ids, int64 (A,).
        step: The generation or iteration.
        shape: Values per id.

    Returns:
        Float64 tensor (A, *shape) of 53-bit uniform values.
    """
    keys = stream_keys(seed, stream, ids, step)  # (A,)
    slots = torch.arange(math.prod(shape), dtype=torch.int64, device=ids.device)
    bits = mix64(keys[:, None] ^ mix64(slots)[None, :])
    values = _shift_right(bits, 11).to(torch.float64) * 2.0**-53
    return values.view(len(ids), *shape)


def normal(
    seed: int, stream: int, ids: torch.Tensor, step: int, shape: tuple[int, ...]
) -> torch.Tensor:
    """Standard normal float64 values (A, *shape) by Box-Muller from streams `stream` and
    `stream + 1` of `uniform`."""
    u1 = 1.0 - uniform(seed, stream, ids, step, shape)  # in (0, 1]
    u2 = uniform(seed, stream + 1, ids, step, shape)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
