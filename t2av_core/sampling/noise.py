"""Where the flow heads' starting noise comes from.

By default a seeded generator on the host: the same seed gives the same noise on every device and every CPU
(the draw is then moved to the model's device). Tests inject recorded tensors instead.

Seeds are whole numbers from 0 to 2**64 - 1 (ComfyUI's seed range), and every bit counts: numpy's PCG64
is seeded through a SeedSequence, which hashes the whole number. (torch's CPU generator keeps only the low
32 bits of a seed, so seeds 0, 2**32 and 2**63 would all give the same noise.) Its float32 normals come from
integer arithmetic and lookup tables, so they are the same bits on AVX2, AVX-512 and ARM machines.
"""

from __future__ import annotations

import numbers
import secrets
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from ..errors import T2AVError

MAX_SEED = 2**64 - 1


def check_seed(seed) -> int:
    """``seed`` as an int if it is a whole number in 0 .. 2**64 - 1; T2AVError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise T2AVError(f"the seed must be a whole number from 0 to {MAX_SEED} (2**64 - 1), got {seed!r}")
    return int(seed)


def random_seed() -> int:
    """A fresh seed for runs that ask for a random one; report it so the run can be repeated."""
    return secrets.randbits(64)


class NoiseSource:
    """Standard-normal float32 draws from numpy's PCG64 seeded with ``seed`` (None: a random seed, kept in
    ``self.seed`` so the run can be repeated)."""

    def __init__(self, seed: int | None = 0):
        self.seed = random_seed() if seed is None else check_seed(seed)
        self.generator = np.random.Generator(np.random.PCG64(self.seed))

    def draw(self, shape: tuple[int, ...], device=None, dtype: torch.dtype = torch.float32) -> Tensor:
        values = self.generator.standard_normal(tuple(shape), dtype=np.float32)
        return torch.from_numpy(values).to(device=device, dtype=dtype)


class RecordedNoise:
    """Replays given standard-normal tensors in order (for parity tests and exact reproduction)."""

    def __init__(self, tensors: Iterable[Tensor]):
        self.tensors = list(tensors)
        self.used = 0

    def draw(self, shape: tuple[int, ...], device=None, dtype: torch.dtype = torch.float32) -> Tensor:
        if self.used >= len(self.tensors):
            raise T2AVError(f"recorded noise exhausted after {self.used} draws")
        t = self.tensors[self.used]
        if tuple(t.shape) != tuple(shape):
            raise T2AVError(f"recorded noise #{self.used} has shape {tuple(t.shape)}, the sampler needs {tuple(shape)}")
        self.used += 1
        return t.to(device=device, dtype=dtype)
