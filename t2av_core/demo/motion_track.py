"""Face motion for the synthetic training videos, driven by the speech so the mouth is truly in sync.

Per 40 ms frame (25 fps): the mouth opens with the loudness of the voice, widens for bright sounds (high
spectral centroid, like "ee") and rounds for dark ones ("oo"), the jaw follows the mouth a little later,
the brows lift on stressed (loud) syllables and the head nods with them. Blinks and a slow head drift are
random but seeded. Values are in the normalised motion space of ``face.MOTION_DIMS``; other dims stay 0.
"""

from __future__ import annotations

import math

import torch

from ..interfaces import FRAME_RATE, MOTION_LATENT_DIM
from .face import BLINK, BROW, JAW, MOUTH, PITCH, ROLL, WIDTH, YAW


def frame_loudness(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(N,) -> (T,) RMS level in dB per 40 ms frame, T = ceil(N / hop)."""
    hop = sample_rate // FRAME_RATE
    frames = math.ceil(wave.numel() / hop)
    padded = torch.nn.functional.pad(wave.float(), (0, frames * hop - wave.numel())).view(frames, hop)
    return 10.0 * torch.log10(padded.pow(2).mean(dim=1) + 1e-8)


def mouth_from_loudness(level_db: torch.Tensor) -> torch.Tensor:
    """dB per frame -> mouth opening 0..1: closed below -40 dB, fully open at -12 dB."""
    return ((level_db + 40.0) / 28.0).clamp(0.0, 1.0)


def _brightness(wave: torch.Tensor, sample_rate: int, frames: int) -> torch.Tensor:
    """Spectral centroid per frame, mapped to about -1 (dark) .. 1 (bright)."""
    hop = sample_rate // FRAME_RATE
    padded = torch.nn.functional.pad(wave.float(), (0, frames * hop - wave.numel())).view(frames, hop)
    spectrum = torch.fft.rfft(padded * torch.hann_window(hop), dim=1).abs()
    freqs = torch.linspace(0, sample_rate / 2, spectrum.shape[1])
    centroid = (spectrum * freqs).sum(1) / spectrum.sum(1).clamp_min(1e-6)
    return ((centroid - 1500.0) / 1000.0).clamp(-1.5, 1.5)


def _smooth(x: torch.Tensor, width: int) -> torch.Tensor:
    kernel = torch.ones(1, 1, width) / width
    return torch.nn.functional.conv1d(x[None, None], kernel, padding=width // 2)[0, 0, : x.numel()]


def speech_driven_motion(wave: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """A speech wave -> normalised motion (T, 40) at 25 fps, one frame per 40 ms of audio."""
    level = frame_loudness(wave, sample_rate)
    frames = level.numel()
    opening = mouth_from_loudness(level)
    motion = torch.zeros(frames, MOTION_LATENT_DIM)
    motion[:, MOUTH] = opening * 4.0 - 1.0
    motion[:, WIDTH] = _brightness(wave, sample_rate, frames) * (opening > 0.05)
    jaw = torch.cat([opening[:1], opening[:-1]])  # the jaw trails the lips by one frame
    motion[:, JAW] = jaw * 2.0 - 0.5
    emphasis = _smooth(opening, 5)
    motion[:, BROW] = 1.5 * (emphasis - emphasis.mean()).clamp_min(0.0) * 3.0
    # Head: a seeded resting pose, a slow drift, and a nod with the loud syllables.
    rand = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    drift = torch.stack([_smooth(rand(frames) * 0.6, 25) for _ in range(3)], dim=1)
    motion[:, YAW:ROLL + 1] = rand(3) * 0.5 + drift
    motion[:, PITCH] += 0.8 * emphasis
    # Blinks: about every 2-4 s, closing over 3 frames.
    blink = torch.full((frames,), -0.5)
    t = int(torch.randint(10, 60, (1,), generator=generator))
    while t < frames:
        for offset, value in enumerate((1.0, 2.5, 1.0)):
            if t + offset < frames:
                blink[t + offset] = value
        t += int(torch.randint(50, 100, (1,), generator=generator))
    motion[:, BLINK] = blink
    return motion
