"""One flow-matching patch: noise * temperature -> solver over the schedule, guided velocity from the DiT."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import T2AVError
from .guidance import CFGGuidance
from .schedules import SwaySchedule
from .solvers import EulerSolver


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
        b, dtype = mu.shape[0], mu.dtype
        grid = self.schedule.grid(mu.device, torch.float32)
        skip = self.guidance.zero_init_steps(grid.shape[0] - 1)
        # the doubled batch is fixed for the whole patch: rows 0..B-1 conditional, B..2B-1 with mu = 0
        mu2 = torch.cat([mu, torch.zeros_like(mu)])
        cond2, glob2 = torch.cat([cond, cond]), torch.cat([global_cond, global_cond])
        zeros = torch.zeros(2 * b, device=mu.device, dtype=torch.float32)

        def velocity(x: Tensor, t: Tensor, step: int) -> Tensor:
            if step <= skip:
                return torch.zeros_like(x)
            out = estimator(torch.cat([x, x]).to(dtype), mu2, t.float().expand(2 * b), cond2, glob2, zeros)
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
