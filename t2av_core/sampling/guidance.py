"""Classifier-free guidance for the flow heads.

The unconditional branch is the same sample with mu (the backbone state) set to zero; history and global
condition are kept. CFG-Zero* rescales the unconditional velocity by the projection coefficient
s* = <v_c, v_u> / (|v_u|^2 + 1e-8) and skips the first step(s) (velocity zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class CFGGuidance:
    scale: float = 2.0
    zero_star: bool = True

    def zero_init_steps(self, n_steps: int) -> int:
        """How many leading steps use velocity 0 (the reference: max(1, int(0.04 * (n + 1))))."""
        return max(1, int((n_steps + 1) * 0.04)) if self.zero_star else 0

    def combine(self, v_cond: Tensor, v_uncond: Tensor) -> Tensor:
        if self.zero_star:
            b = v_cond.shape[0]
            pos, neg = v_cond.reshape(b, -1), v_uncond.reshape(b, -1)
            s = (pos * neg).sum(1, keepdim=True) / ((neg ** 2).sum(1, keepdim=True) + 1e-8)
            s = s.view(b, *([1] * (v_cond.dim() - 1)))
        else:
            s = 1.0
        return v_uncond * s + self.scale * (v_cond - v_uncond * s)
