"""Speech for the synthetic corpus from the espeak-ng program (needed for training and evaluation only).

Install it with ``apt-get install -y espeak-ng`` (Debian/Ubuntu) or your system's package manager.
The demo works at 16 kHz: espeak-ng writes 22.05 kHz, which we resample once here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import T2AVError

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class EspeakVoice:
    name: str   # espeak-ng voice, e.g. "en-us+m3"
    pitch: int  # 0..99, espeak default 50
    speed: int  # words per minute, espeak default 175


# A handful of clearly different voices, so the voice embedding has something to steer.
VOICES = (
    EspeakVoice("en-us", 45, 165), EspeakVoice("en-us+f2", 60, 160), EspeakVoice("en+m3", 35, 170),
    EspeakVoice("en+f4", 70, 155), EspeakVoice("en-us+m7", 50, 150), EspeakVoice("en+f3", 55, 175),
)


def _espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise T2AVError("espeak-ng is not installed; it is needed to make the demo corpus "
                        "(Debian/Ubuntu: apt-get install -y espeak-ng)")
    return path


def resample_fft(wave_in: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by cutting/zero-padding the spectrum (exact for whole clips, no dependency)."""
    n_out = int(round(len(wave_in) * rate_out / rate_in))
    spectrum = np.fft.rfft(wave_in)
    keep = min(len(spectrum), n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    out_spec[:keep] = spectrum[:keep]
    return (np.fft.irfft(out_spec, n_out) * (n_out / len(wave_in))).astype(np.float32)


def trim_silence(wave_in: np.ndarray, rate: int, margin_s: float = 0.08, threshold: float = 0.01) -> np.ndarray:
    """Cut espeak-ng's long leading/trailing silence down to a short margin, so clip length = speech length."""
    loud = np.flatnonzero(np.abs(wave_in) > threshold)
    if len(loud) == 0:
        return wave_in
    margin = int(margin_s * rate)
    return wave_in[max(0, loud[0] - margin): loud[-1] + margin]


def synthesize(text: str, voice: EspeakVoice = VOICES[0]) -> torch.Tensor:
    """Speak ``text`` with espeak-ng -> mono float32 wave (N,) at 16 kHz, silence trimmed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run([_espeak_binary(), "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed),
                        "-w", str(out), text], check=True, capture_output=True)
        with wave.open(str(out)) as f:
            rate = f.getframerate()
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    wave_out = resample_fft(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)
    return torch.from_numpy(trim_silence(wave_out, SAMPLE_RATE))
