"""One flow-matching patch: noise * temperature -> solver over the schedule, guided velocity from the DiT."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import T2AVError
from .guidance import CFGGuidance
from .schedules import SwaySchedule
from .solvers import EulerSolver


class HeadBuffers:
    """One flow head's inputs for a whole generation, allocated once and refilled in place every patch: the time
    grid, and the doubled batch classifier-free guidance evaluates (rows 0..B-1 conditional, B..2B-1 with
    mu = 0; history and global condition in both halves)."""

    def __init__(self, sampler: "FlowSampler", global_cond: Tensor, width: int, channels: int, history: int,
                 patch: int):
        b, dev, dtype = global_cond.shape[0], global_cond.device, global_cond.dtype
        self.grid = sampler.schedule.grid(dev, torch.float32)
        self.skip = sampler.guidance.zero_init_steps(self.grid.shape[0] - 1)
        self.mu2 = torch.zeros(2 * b, width, device=dev, dtype=dtype)  # the lower half stays zero
        self.cond2 = torch.empty(2 * b, channels, history, device=dev, dtype=dtype)
        self.glob2 = torch.cat([global_cond, global_cond])
        self.x2 = torch.empty(2 * b, channels, patch, device=dev, dtype=dtype)
        self.dt = torch.zeros(2 * b, device=dev, dtype=torch.float32)  # the DiT's delta time, 0 at inference

    def fill(self, mu: Tensor, cond: Tensor) -> None:
        b = mu.shape[0]
        self.mu2[:b].copy_(mu)
        self.cond2[:b].copy_(cond)
        self.cond2[b:].copy_(cond)


@dataclass
class FlowSampler:
    schedule: object = field(default_factory=SwaySchedule)
    guidance: CFGGuidance = field(default_factory=CFGGuidance)
    solver: object = field(default_factory=EulerSolver)
    temperature: float = 0.3

    def sample(self, estimator, mu: Tensor, cond: Tensor, global_cond: Tensor, noise: Tensor,
               trace: list | None = None, draw=None) -> Tensor:
        """mu (B, W), cond (B, C, H), global_cond (B, G), noise (B, C, P) standard normal -> patch (B, C, P).

        The time grid, the ODE state and the guidance run in float32 whatever the weights' dtype (as in the
        reference, whose flow heads see fp32 inputs): in bf16, times such as 0.9564 would round to 0.957
        and the time embedding (of 1000 t) would be off by most of a radian. Only the estimator's inputs
        take the model's dtype; the result comes back in ``mu.dtype``.
        ``trace``, if given, receives (t, raw estimator output (2B, C, P)) for every evaluation. ``draw(shape)``
        gives a stochastic solver (``solver.stochastic``) its extra noise from the run's seeded generator.
        """
        buffers = self.buffers(global_cond, mu.shape[1], cond.shape[1], cond.shape[2], noise.shape[2])
        return self.sample_into(buffers, estimator, mu, cond, noise, trace, draw)

    def buffers(self, global_cond: Tensor, width: int, channels: int, history: int, patch: int) -> HeadBuffers:
        """A head's buffers for a whole generation, for ``sample_into`` (global_cond (B, G) in the model dtype)."""
        return HeadBuffers(self, global_cond, width, channels, history, patch)

    def sample_into(self, buffers: HeadBuffers, estimator, mu: Tensor, cond: Tensor, noise: Tensor,
                    trace: list | None = None, draw=None) -> Tensor:
        """``sample`` with the head's inputs written into preallocated ``buffers`` instead of new tensors."""
        b, dtype = mu.shape[0], mu.dtype
        buffers.fill(mu, cond)
        grid, skip, x2 = buffers.grid, buffers.skip, buffers.x2

        def velocity(x: Tensor, t: Tensor, step: int) -> Tensor:
            if step <= skip:
                return torch.zeros_like(x)
            x2[:b].copy_(x)
            x2[b:].copy_(x)
            out = estimator(x2, buffers.mu2, t.float().expand(2 * b), buffers.cond2, buffers.glob2, buffers.dt)
            if trace is not None:
                trace.append((t.detach().clone(), out.detach().clone()))
            out = out.float()
            return self.guidance.combine(out[:b], out[b:])

        start = noise.float() * self.temperature
        if getattr(self.solver, "stochastic", False):
            if draw is None:
                raise T2AVError(f"the {type(self.solver).__name__} solver injects noise: give the sampler a draw "
                                "function (generate_av does)")
            return self.solver.solve(velocity, start, grid, draw=draw).to(dtype)
        return self.solver.solve(velocity, start, grid).to(dtype)
