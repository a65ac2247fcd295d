"""A core ComfyUI SAMPLER (KSamplerSelect & co.) used as the flow solver of the Talker-T2AV heads.

The core solver interface is ``solve(velocity(x, t, step), x, grid) -> x``; core samplers instead call a
model that returns the denoised sample, x0 = x - t * v for a rectified flow, at the times they choose.
"""

from __future__ import annotations

import torch

from t2av_core.errors import T2AVError

from . import host

# These need ComfyUI's CFG guider hooks (post-CFG functions) that a flow head does not have.
_NEEDS_GUIDER = ("cfg_pp",)


class CoreSamplerSolver:
    # ancestral / SDE samplers inject noise: generate_av hands solve() the run's seeded draw function
    stochastic = True

    def __init__(self, sampler):
        function = getattr(sampler, "sampler_function", None)
        if function is None or not callable(getattr(sampler, "sample", None)):
            raise T2AVError(f"{type(sampler).__name__} is not a core k-diffusion SAMPLER; use KSamplerSelect or "
                             "the Talker-T2AV Flow Solver node")
        name = getattr(function, "__name__", "")
        if any(tag in name for tag in _NEEDS_GUIDER):
            raise T2AVError(f"the core sampler '{name}' needs ComfyUI's own CFG guider and cannot drive the Talker "
                             "flow heads; pick a sampler without '_cfg_pp' (euler, heun, dpmpp_2m, uni_pc, ...)")
        self.sampler = sampler
        self.name = name

    def solve(self, velocity, x: torch.Tensor, grid: torch.Tensor, draw) -> torch.Tensor:
        def denoise(x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            t = sigma.reshape(-1)[0].to(grid.dtype)
            # the 1-based step whose interval holds t, so guidance can still zero the first step (CFG-Zero*)
            step = int((grid >= t - 1e-6).sum())
            return x_t - t * velocity(x_t, t, step)

        return host.run_core_sampler(self.sampler, denoise, x, grid, draw)
