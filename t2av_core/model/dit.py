"""The flow-head velocity estimator (a small DiT), one per modality: ``{speech,motion}_cfm.estimator``.

It sees one short sequence per sample, [mu + time embedding, global condition, history frames, noisy
frames], runs the bidirectional blocks over it and reads the velocity from the noisy-frame slots.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import BlockStack
from .config import EncoderConfig


def sinusoid(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """(N,) -> (N, dim): [sin | cos] of (scale*t) * exp(-k ln(1e4)/(dim/2 - 1)), sin half first."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=t.dtype, device=t.device) * -(math.log(10000) / (half - 1)))
    angles = scale * t.unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimeMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear_1 = nn.Linear(width, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class DiTEstimator(nn.Module):
    """velocity(x (N,C,P), mu (N,W), t (N,), cond (N,C,H), global_cond (N,G), dt (N,)) -> (N,C,P)."""

    def __init__(self, channels: int, global_dim: int, cfg: EncoderConfig):
        super().__init__()
        width = cfg.width
        self.in_proj = nn.Linear(channels, width)
        self.cond_proj = nn.Linear(channels, width)
        self.global_cond_proj = nn.Linear(global_dim, width)
        self.out_proj = nn.Linear(width, channels)
        self.time_mlp = TimeMLP(width)
        self.delta_time_mlp = TimeMLP(width)  # always fed dt = 0 at inference; its constant output still counts
        self.decoder = BlockStack(width, cfg)

    def forward(self, x: Tensor, mu: Tensor, t: Tensor, cond: Tensor, global_cond: Tensor,
                dt: Tensor | None = None) -> Tensor:
        width = mu.shape[-1]
        if dt is None:
            dt = torch.zeros_like(t)
        noisy = self.in_proj(x.transpose(1, 2))
        history = self.cond_proj(cond.transpose(1, 2))
        glob = self.global_cond_proj(global_cond.unsqueeze(1))
        time = self.time_mlp(sinusoid(t, width).to(x.dtype)) + self.delta_time_mlp(sinusoid(dt, width).to(x.dtype))
        seq = torch.cat([(mu + time).unsqueeze(1), glob, history, noisy], dim=1)
        hidden = self.decoder(seq)[:, -x.shape[2]:]
        return self.out_proj(hidden).transpose(1, 2)


class FlowHead(nn.Module):
    """Holds the estimator under the checkpoint's ``*_cfm.estimator`` name; sampling lives in t2av_core.sampling."""

    def __init__(self, channels: int, global_dim: int, cfg: EncoderConfig):
        super().__init__()
        self.channels = channels
        self.estimator = DiTEstimator(channels, global_dim, cfg)
