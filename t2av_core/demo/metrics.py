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


def dtw_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean frame distance along the best monotonic alignment of two latent sequences (T1, C), (T2, C).

    Used to check that the generated speech says the given sentence: it should lie closer to espeak-ng's
    rendering of the same sentence than to other sentences.
    """
    cost = torch.cdist(a.double(), b.double()).tolist()  # plain floats: the double loop stays fast
    n, m = len(cost), len(cost[0])
    inf = float("inf")
    total = [[inf] * (m + 1) for _ in range(n + 1)]
    steps = [[0] * (m + 1) for _ in range(n + 1)]
    total[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best_total, best_steps = min((total[i - 1][j - 1], steps[i - 1][j - 1]),
                                         (total[i - 1][j], steps[i - 1][j]), (total[i][j - 1], steps[i][j - 1]))
            total[i][j] = best_total + cost[i - 1][j - 1]
            steps[i][j] = best_steps + 1
    return total[n][m] / steps[n][m]
