"""Time grids for the flow heads: descending from 1 (noise) to 0 (data)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..errors import T2AVError


MAX_STEPS = 200  # the released recipe uses 10; far more only costs time (and 10**6 would never finish)
SWAY_RANGE = (-1.0, 1.0 / (math.pi / 2 - 1))


def check_step_count(steps) -> int:
    """``steps`` if it is a whole number from 1 to MAX_STEPS; T2AVError otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= MAX_STEPS:
        raise T2AVError(f"the flow sampler needs a whole number of steps from 1 to {MAX_STEPS} (the released "
                        f"recipe uses 10), got {steps!r}")
    return int(steps)


@dataclass(frozen=True)
class SwaySchedule:
    """The reference grid: uniform tau warped to tau + s*(cos(pi*tau/2) - 1 + tau).

    s = 1 (the released recipe) takes small steps near the noise end; s = 0 is the uniform grid.
    """

    steps: int = 10
    sway: float = 1.0

    def __post_init__(self):
        check_step_count(self.steps)
        # The warp keeps the grid strictly descending only for -1 < s < 1 / (pi/2 - 1) (about 1.75).
        if not (isinstance(self.sway, numbers.Real) and SWAY_RANGE[0] < self.sway < SWAY_RANGE[1]):
            raise T2AVError(f"sway must lie between {SWAY_RANGE[0]} and {SWAY_RANGE[1]:.3f} (1 is the released "
                            f"recipe, 0 a uniform grid), got {self.sway!r}")

    def grid(self, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
        tau = torch.linspace(1, 0, self.steps + 1, device=device, dtype=dtype)
        return tau + self.sway * (torch.cos(torch.pi / 2 * tau) - 1 + tau)


def UniformSchedule(steps: int = 10) -> SwaySchedule:
    """Evenly spaced times (sway 0)."""
    return SwaySchedule(steps, 0.0)


@dataclass(frozen=True)
class CustomSchedule:
    """A user grid, e.g. ComfyUI SIGMAS: strictly descending values from 1 (or below) down to 0."""

    times: tuple[float, ...]

    def __init__(self, times: Sequence[float] | Tensor):
        values = tuple(float(t) for t in (times.tolist() if isinstance(times, Tensor) else times))
        if len(values) < 2:
            raise T2AVError("a custom time grid needs at least 2 values (start and end)")
        check_step_count(len(values) - 1)
        if any(not math.isfinite(t) for t in values) or not all(a > b for a, b in zip(values, values[1:])):
            raise T2AVError(f"a custom time grid must be finite and strictly descending, got {values}")
        if values[0] > 1.0 + 1e-6 or values[-1] < -1e-6:
            raise T2AVError(f"flow times must lie in [0, 1] (1 = noise, 0 = data), got {values[0]} .. {values[-1]}")
        object.__setattr__(self, "times", values)

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def grid(self, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.tensor(self.times, device=device, dtype=dtype)
