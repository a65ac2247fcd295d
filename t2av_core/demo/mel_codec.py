"""Demo-only audio codec: 32 log-mel bands averaged over 40 ms (25 Hz), decoded with Griffin-Lim.

It plays the role of WhisperX-VAE for the demo model: the same ``AudioCodec`` interface (wave <-> (T, 32)
latents at 25 Hz), but no learned weights. Quality is "robot voice", which is all the demo needs.
Analysis runs on a finer 10 ms grid (hop 160 at 16 kHz); four fine frames are averaged into one latent
frame, and the decoder interpolates back to the fine grid before phase reconstruction.
"""

from __future__ import annotations

import math

import torch

from ..errors import T2AVError
from ..interfaces import AUDIO_LATENT_DIM, DEMO, FRAME_RATE, ProgressFn

SAMPLE_RATE = 16000
N_FFT = 512
FINE_HOP = 160                                # 10 ms analysis grid
HOP = SAMPLE_RATE // FRAME_RATE               # 640 samples per latent frame
FINE_PER_FRAME = HOP // FINE_HOP              # 4
LOG_FLOOR = 1e-4
WINDOW_FRAMES = 250                           # 10 s decoded at a time
OVERLAP_FRAMES = 5                            # 0.2 s cross-faded on each side of a window join


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 40.0) -> torch.Tensor:
    """Triangular HTK-mel filters (n_mels, n_fft // 2 + 1), each normalised to unit area."""
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(sample_rate / 2), n_mels + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (center - lower)
    falling = (upper - bins) / (upper - center)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return filters / filters.sum(dim=1, keepdim=True).clamp_min(1e-8)


class MelCodec:
    """``AudioCodec`` for the demo: (N,) 16 kHz wave <-> (T, 32) normalised log-mel latents."""

    family = DEMO  # fits only the demo generator (t2av_core.interfaces.family_of)

    sample_rate = SAMPLE_RATE

    def __init__(self, mean: float = -2.5, std: float = 2.7, griffin_lim_iters: int = 32):
        # One global affine map keeps the latents near unit scale for flow matching; the bundle stores it.
        self.mean, self.std, self.iters = float(mean), float(std), int(griffin_lim_iters)
        self.filters = mel_filterbank(AUDIO_LATENT_DIM, N_FFT, SAMPLE_RATE)
        self.inverse_filters = torch.linalg.pinv(self.filters)
        self.window = torch.hann_window(N_FFT)

    def _stft(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.stft(wave, N_FFT, FINE_HOP, window=self.window, center=True, return_complex=True)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(N,) -> (T, 32) natural-log mel magnitudes at 25 Hz, T = ceil(N / 640)."""
        if wave.ndim != 1 or wave.numel() == 0:
            raise T2AVError(f"MelCodec.encode expects a non-empty mono wave (N,), got shape {tuple(wave.shape)}")
        frames = math.ceil(wave.numel() / HOP)
        wave = torch.nn.functional.pad(wave.float(), (0, frames * HOP - wave.numel()))
        magnitude = self._stft(wave).abs()[:, : frames * FINE_PER_FRAME]          # (F, 4T)
        mel = torch.log(self.filters @ magnitude + LOG_FLOOR)                      # (32, 4T)
        return mel.T.reshape(frames, FINE_PER_FRAME, AUDIO_LATENT_DIM).mean(dim=1)

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        return (self.log_mel(wave) - self.mean) / self.std

    def decode(self, latents: torch.Tensor, progress: ProgressFn | None = None) -> torch.Tensor:
        """(T, 32) -> (T * 640,) wave. Long clips are decoded in windows of WINDOW_FRAMES latent frames that
        overlap by OVERLAP_FRAMES and are cross-faded, so memory stays flat however long the clip is."""
        if latents.ndim != 2 or latents.shape[1] != AUDIO_LATENT_DIM:
            raise T2AVError(f"MelCodec.decode expects latents (T, {AUDIO_LATENT_DIM}), got {tuple(latents.shape)}")
        frames = latents.shape[0]
        starts = [0]  # a window reaching the end is the last one, so every cross-fade has two full sides
        while starts[-1] + WINDOW_FRAMES + OVERLAP_FRAMES < frames:
            starts.append(starts[-1] + WINDOW_FRAMES)
        out = torch.zeros(frames * HOP)
        for n, start in enumerate(starts):
            lo, hi = max(0, start - OVERLAP_FRAMES), min(frames, start + WINDOW_FRAMES + OVERLAP_FRAMES)
            wave = self._griffin_lim(latents[lo:hi])
            weight = torch.ones(wave.numel())
            fade = OVERLAP_FRAMES * 2 * HOP  # each overlap region is shared by two windows
            if lo > 0:  # fade in over the overlap with the previous window
                weight[:fade] = torch.linspace(0.0, 1.0, fade)
            if hi < frames:
                weight[-fade:] = torch.linspace(1.0, 0.0, fade)
            out[lo * HOP: hi * HOP] += wave * weight
            if progress is not None:
                progress(n + 1, len(starts))
        return out.clamp(-1.0, 1.0)

    def _griffin_lim(self, latents: torch.Tensor) -> torch.Tensor:
        frames = latents.shape[0]
        log_mel = latents.float() * self.std + self.mean                           # (T, 32)
        fine = torch.nn.functional.interpolate(log_mel.T[None], scale_factor=FINE_PER_FRAME, mode="linear",
                                               align_corners=False)[0]            # (32, 4T)
        mel = (fine.exp() - LOG_FLOOR).clamp_min(0.0)
        magnitude = (self.inverse_filters @ mel).clamp_min(0.0)                    # (F, 4T)
        length = frames * HOP
        # Griffin-Lim: keep the target magnitude, iterate the phase towards a consistent spectrogram.
        generator = torch.Generator().manual_seed(0)
        phase = torch.exp(2j * math.pi * torch.rand(magnitude.shape, generator=generator))
        pad = magnitude.shape[1] * FINE_HOP - length
        for _ in range(self.iters):
            wave = torch.istft(magnitude * phase, N_FFT, FINE_HOP, window=self.window, center=True,
                               length=length + pad)
            rebuilt = self._stft(wave)[:, : magnitude.shape[1]]
            phase = rebuilt / rebuilt.abs().clamp_min(1e-8)
        return torch.istft(magnitude * phase, N_FFT, FINE_HOP, window=self.window, center=True,
                           length=length).float()
