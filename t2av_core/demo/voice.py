"""Demo-only voice embedding: fixed-function spectral statistics instead of WavLM + ECAPA.

The 256-d vector is the per-band mean and spread of a 128-band log-mel spectrogram over the loud frames,
standardised to zero mean and unit variance. It captures pitch range, brightness and loudness profile,
enough to tell the demo's espeak-ng voices apart. No learned weights.
"""

from __future__ import annotations

import torch

from ..errors import T2AVError
from ..interfaces import DEMO, SPEAKER_DIM
from .mel_codec import mel_filterbank

SAMPLE_RATE = 16000
_BANDS = SPEAKER_DIM // 2
_N_FFT = 1024
_HOP = 160


class SpectralVoiceEmbedder:
    """``SpeakerEncoder`` for the demo: (N,) 16 kHz wave -> (256,) voice vector."""

    family = DEMO  # fits only the demo generator (t2av_core.interfaces.family_of)

    sample_rate = SAMPLE_RATE

    def __init__(self, default_speaker: torch.Tensor | None = None):
        # The voice a pipeline uses when it is given no recording (pipeline.encode_voice without audio).
        self.default_speaker = default_speaker
        self.filters = mel_filterbank(_BANDS, _N_FFT, SAMPLE_RATE)
        self.window = torch.hann_window(_N_FFT)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 1 or wave.numel() < _N_FFT:
            raise T2AVError(f"the voice sample must be mono and at least {_N_FFT / SAMPLE_RATE:.2f} s long "
                            f"at {SAMPLE_RATE} Hz, got shape {tuple(wave.shape)}")
        if float(wave.abs().max()) < 1e-4:
            raise T2AVError("the voice sample is silent; give a recording with speech in it")
        spec = torch.stft(wave.float(), _N_FFT, _HOP, window=self.window, return_complex=True).abs()
        log_mel = torch.log(self.filters @ spec + 1e-5)                   # (128, frames)
        energy = log_mel.mean(dim=0)
        loud = energy > energy.max() - 4.0                                # ignore pauses and silence
        if int(loud.sum()) < 2:
            raise T2AVError("the voice sample has almost no speech in it; give a longer recording")
        frames = log_mel[:, loud]
        stats = torch.cat([frames.mean(dim=1), frames.std(dim=1)])
        return (stats - stats.mean()) / stats.std().clamp_min(1e-6)
