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


def flow_times_from_sigmas(sigmas: Sequence[float] | Tensor) -> tuple[tuple[float, ...], list[str]]:
    """ComfyUI SIGMAS of any core scheduler -> flow times from <= 1 down to 0, and notes on what was changed.

    * A grid that starts above 1 (Karras, exponential, VP: noise levels of the x = x0 + sigma * noise kind) is
      mapped to t = sigma / (1 + sigma). That is the flow time with the same noise-to-signal ratio: a flow
      sample (1 - t) x0 + t * noise is x0 + sigma * noise divided by 1 + sigma, with sigma = t / (1 - t).
      Dividing by the first sigma instead would keep the start at 1 but change every step's noise level.
      Grids within [0, 1] are flow times already (ComfyUI's flow models read sigmas as t) and are kept.
    * A grid that stops above 0 (SplitSigmas' high half, ManualSigmas "1, 0.5") would leave every patch half
      denoised: it is completed with a last step to 0.
    * Grids that cannot be times (fewer than 2 values, not finite, not strictly descending, below 0) are refused.
    """
    values = [float(v) for v in (sigmas.reshape(-1).tolist() if isinstance(sigmas, Tensor) else sigmas)]
    if len(values) < 2:
        raise T2AVError(f"a sigma schedule needs at least 2 values (start and end), got {values}")
    if any(not math.isfinite(v) for v in values) or not all(a > b for a, b in zip(values, values[1:])):
        raise T2AVError(f"sigmas must be finite and strictly descending (noise first), got {values}")
    if values[-1] < -1e-6:
        raise T2AVError(f"sigmas must not go below 0, got {values[-1]}")
    notes = []
    if values[0] > 1.0 + 1e-6:
        values = [v / (1.0 + v) for v in values]
        notes.append(f"sigmas above 1 were mapped to flow times t = sigma / (1 + sigma): {values[0]:.4f} .. "
                     f"{values[-1]:.4f}")
    if values[-1] > 1e-6:
        notes.append(f"the schedule stopped at {values[-1]:.4f} instead of 0; a last step to 0 was added so each "
                     "patch is fully denoised")
        values.append(0.0)
    return tuple(values), notes
