"""Quality figures of the demo model: lip sync, duration, stop reliability (used by eval script and tests)."""

from __future__ import annotations

import torch

from .face import mouth_openness
from .motion_track import frame_loudness


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denom) if denom > 0 else 0.0


def lip_sync_correlation(norm_motion: torch.Tensor, wave: torch.Tensor, sample_rate: int,
                         max_lag: int = 2) -> tuple[float, int]:
    """Best Pearson correlation between mouth opening (from the motion) and the loudness envelope (dB per
    40 ms frame of the audio) over lags of at most ``max_lag`` frames -> (correlation, lag in frames;
    positive = the mouth moves after the sound)."""
    mouth = mouth_openness(norm_motion.float())
    loudness = frame_loudness(wave, sample_rate)
    n = min(mouth.numel(), loudness.numel())
    mouth, loudness = mouth[:n], loudness[:n]
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            r = _pearson(mouth[lag:], loudness[: n - lag])
        else:
            r = _pearson(mouth[: n + lag], loudness[-lag:])
        best = max(best, (r, lag))
    return best
