"""Where the flow heads' starting noise comes from.

By default a seeded CPU generator: the same seed gives the same noise on every device (the draw is then
moved to the model's device). Tests inject recorded tensors instead.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..errors import T2AVError


class NoiseSource:
    """Standard-normal draws from a seeded CPU ``torch.Generator`` (seed None = random seed)."""

    def __init__(self, seed: int | None = 0):
        self.generator = torch.Generator(device="cpu")
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def draw(self, shape: tuple[int, ...], device=None, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(shape, generator=self.generator, dtype=torch.float32).to(device=device, dtype=dtype)


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
