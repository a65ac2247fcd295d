"""Whisper-style 128-bin log-mel spectrogram (the features WhisperX-VAE's semantic branch reads).

Matches openai-whisper's ``log_mel_spectrogram(pad_or_trim(x), n_mels=128)`` exactly: 16 kHz audio padded
or cut to 30 s, periodic-Hann STFT (n_fft 400, hop 160, centred, reflect padding), power with the last
frame dropped, Slaney mel filters (rebuilt here, bit for bit), log10 with a floor at max - 8, then
(x + 4) / 4. One utterance per call: the floor is taken over the whole padded matrix of that utterance.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from t2av_core.errors import T2AVError
from t2av_core.interfaces import FRAME_RATE

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 128
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000 samples in the 30-s window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames
MAX_SPEECH_FRAMES = CHUNK_SECONDS * FRAME_RATE  # 750 Talker frames in the 30-s window


def speech_frames(n16: int) -> int:
    """Talker's 25 Hz frame count of a clip with ``n16`` samples at 16 kHz (at most the 30-s window, at least 1).

    The reference computes ``int(n16 / 16000 * 25)`` in double precision, which for some exact multiples of
    640 (18,560 samples: 28.999999999999996) is one frame less than ``n16 // 640``. Kept on purpose for
    parity. The audio VAE's latents and the speaker encoder's input both use this count, so they cover the
    same frames.
    """
    return max(1, min(int(min(n16, N_SAMPLES) / SAMPLE_RATE * FRAME_RATE), MAX_SPEECH_FRAMES))


# Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    mel[high] = _MIN_LOG_MEL + np.log(hz[high] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = _F_SP * mel
    high = mel >= _MIN_LOG_MEL
    hz[high] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel[high] - _MIN_LOG_MEL))
    return hz


@functools.lru_cache(maxsize=4)
def _mel_filters_np(n_mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    fmax = sample_rate / 2
    fft_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    mel_lo, mel_hi = _hz_to_mel(np.array([0.0, fmax]))
    # n_mels + 2 band edges evenly spaced in mel; numpy's linspace rounding is part of the reference bits.
    edges = _mel_to_hz(np.linspace(mel_lo, mel_hi, n_mels + 2))
    widths = np.diff(edges)
    rising = (fft_hz[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - fft_hz[None, :]) / widths[1:, None]
    # Triangles are stored in float32 first and then area-normalised: this two-step rounding is the
    # reference's (doing both in float64 differs in the last bits of 0.3 % of the entries).
    tri = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    area_norm = 2.0 / (edges[2:] - edges[:-2])
    return (tri * area_norm[:, None]).astype(np.float32)


def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised mel filterbank (n_mels, n_fft // 2 + 1), float32, fmin 0, fmax sr/2."""
    return torch.from_numpy(_mel_filters_np(n_mels, n_fft, sample_rate).copy())


def pad_or_trim(audio: torch.Tensor, length: int = N_SAMPLES) -> torch.Tensor:
    """Zero-pad at the end, or cut, the last axis to exactly ``length`` samples."""
    n = audio.shape[-1]
    if n > length:
        return audio[..., :length]
    if n < length:
        return torch.nn.functional.pad(audio, (0, length - n))
    return audio


def log_mel_spectrogram(audio_16k: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Whisper log-mel of one 16 kHz mono utterance (N,) -> (n_mels, 3000), float32.

    The audio is padded or cut to 30 s first (anything after 30 s is ignored). A batch (B, N) is allowed
    and is computed utterance by utterance, so every item gets its own max - 8 floor.
    """
    if not isinstance(audio_16k, torch.Tensor) or audio_16k.dim() not in (1, 2):
        shape = tuple(audio_16k.shape) if isinstance(audio_16k, torch.Tensor) else type(audio_16k).__name__
        raise T2AVError(f"log-mel expects mono 16 kHz audio of shape (N,) or (B, N), got {shape}")
    if audio_16k.dim() == 2:
        return torch.stack([log_mel_spectrogram(a, n_mels) for a in audio_16k])
    if not audio_16k.is_floating_point():
        raise T2AVError(f"log-mel expects float audio in [-1, 1], got dtype {audio_16k.dtype}")
    audio = pad_or_trim(audio_16k.float())
    window = torch.hann_window(N_FFT, device=audio.device)  # periodic Hann, as the reference
    spec = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    power = spec[:, :-1].abs() ** 2  # 3001 centred frames; the reference drops the last one
    mel = mel_filters(n_mels).to(audio.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)  # 80 dB dynamic range over the whole window
    return (log_spec + 4.0) / 4.0
