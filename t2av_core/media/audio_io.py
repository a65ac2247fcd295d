"""Reading, checking, converting and writing mono speech audio with PyAV.

While files are decoded or encoded, resampling and sample-format conversion go through PyAV's
``AudioResampler`` (FFmpeg's libswresample, default windowed-sinc filter). Tensors already in memory (ComfyUI
AUDIO) are resampled with ``t2av_core.audio.resample``, the torchaudio-exact resampler the model paths use. Stereo and multichannel audio is mixed down by averaging the channels
(done here in numpy, so the result does not depend on FFmpeg's downmix matrices).
"""

from __future__ import annotations

import itertools
import math
import numbers
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ..audio.resample import resample
from ..atomic import atomic_write
from ..errors import T2AVError
from ._container import first_stream, open_input

SILENCE_PEAK = 1e-4  # -80 dBFS: below this everywhere, a recording holds no usable speech
MAX_CHANNELS = 8  # 7.1 surround: an axis longer than this holds samples, not channels
MIN_SOURCE_RATE = 4000  # Hz; below this a file cannot hold intelligible speech (telephone audio is 8 kHz)

# Encoder per file extension for write_audio (the container is chosen by PyAV from the extension).
AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus",
                ".opus": "libopus", ".m4a": "aac"}  # fmt: skip


def read_audio(path: str | Path, sample_rate: int, mono: bool = True, max_seconds: float | None = None) -> torch.Tensor:
    """Decode the first audio track of any file FFmpeg reads (wav, flac, mp3, m4a, mp4, ...).

    Returns float32 samples in [-1, 1] at ``sample_rate``: shape (N,) when ``mono`` (channels averaged),
    else (C, N). With ``max_seconds`` decoding stops once that much audio is out (a 30-s voice sample from
    an hour-long file costs 30 s of memory); None reads it all. Silent or empty audio is returned as is; see
    ``check_audio_usable``. A track recorded below ``MIN_SOURCE_RATE`` (4 kHz) is refused.
    """
    sample_rate = _check_rate(sample_rate)
    limit = _sample_limit(max_seconds, sample_rate)
    with open_input(path, "audio") as container:
        stream = first_stream(container, "audio", path)
        _check_source_rate(stream.codec_context.sample_rate, path)
        chunks = _decode_resampled(container, stream, sample_rate, limit, path)
    channels = stream.codec_context.channels or 1
    wave = np.concatenate(chunks, axis=1)[:, :limit] if chunks else np.zeros((channels, 0), np.float32)
    wave = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    return wave.mean(dim=0) if mono else wave


def _decode_resampled(container: av.container.InputContainer, stream: av.AudioStream, sample_rate: int,
                      limit: int | None, path: str | Path) -> list[np.ndarray]:
    """(C, n) chunks at ``sample_rate`` until at least ``limit`` samples are out (None: the whole track)."""
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)  # keeps the channel layout
    chunks, total = [], 0
    for frame in itertools.chain(container.decode(stream), [None]):  # None flushes the filter's tail
        if frame is not None:
            _check_source_rate(frame.sample_rate, path)  # the header may not say, or may change mid-file
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
            total += out.samples
        if limit is not None and total >= limit:
            break
    return chunks


def _sample_limit(max_seconds: float | None, sample_rate: int) -> int | None:
    if max_seconds is None:
        return None
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, numbers.Real) or not max_seconds > 0:
        raise T2AVError(f"max_seconds must be a positive number of seconds (or None for all), got {max_seconds!r}")
    return math.ceil(max_seconds * sample_rate)


def _check_source_rate(rate: int, path: str | Path) -> None:
    # A header claiming e.g. 1 Hz makes a 96 KB file "13 hours" long, gigabytes once resampled.
    if 0 < rate < MIN_SOURCE_RATE:
        raise T2AVError(f"{path} says its audio is sampled at {rate} Hz; speech needs at least {MIN_SOURCE_RATE} Hz, "
                        "so the file is damaged or not a recording: export it again (e.g. WAV at 16 kHz or more)")


def channels_first(wave: torch.Tensor) -> torch.Tensor:
    """A 2-D audio array as (channels, samples), whichever way round it came: the short axis (at most
    ``MAX_CHANNELS``) holds the channels, so soundfile's samples-first (N, 2) is transposed. Shapes where
    neither or both axes could be channels are refused."""
    rows, cols = wave.shape
    if rows <= MAX_CHANNELS < cols:
        return wave
    if cols <= MAX_CHANNELS < rows:
        return wave.T
    raise T2AVError(f"cannot tell channels from samples in audio of shape {tuple(wave.shape)}: pass it as "
                    f"(channels, samples) with at most {MAX_CHANNELS} channels, or as a mono (samples,) wave")


def check_audio_usable(
    wave: torch.Tensor, sample_rate: int, *, min_seconds: float = 1.0, what: str = "reference audio"
) -> None:
    """Raise T2AVError when ``wave`` (mono (N,)) cannot serve as a speech sample: wrong shape, empty,
    non-finite, shorter than ``min_seconds`` or silent."""
    if not isinstance(wave, torch.Tensor) or wave.dim() != 1:
        shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
        raise T2AVError(f"{what} must be a mono 1-D waveform, got {shape}; mix the channels down first")
    if wave.numel() == 0:
        raise T2AVError(f"{what} is empty: give a recording with a few seconds of clear speech")
    if not torch.isfinite(wave).all():
        raise T2AVError(f"{what} contains NaN or infinite samples: the file or the node before is broken")
    seconds = wave.numel() / sample_rate
    if seconds < min_seconds:
        raise T2AVError(f"{what} is only {seconds:.2f} s long; give at least {min_seconds:g} s of clear speech")
    if wave.abs().max() < SILENCE_PEAK:
        raise T2AVError(f"{what} is silent (peak below -80 dBFS): check the recording, its gain and muting")


def audio_from_comfy(audio: dict, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """ComfyUI AUDIO ``{"waveform": (B, C, T), "sample_rate": int}`` -> (mono wave (N,) float32, rate).

    Channels are averaged; a batch must hold one clip. With ``sample_rate`` the wave is resampled to it.
    """
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise T2AVError("expected a ComfyUI AUDIO value: a dict with 'waveform' (B, C, T) and 'sample_rate'")
    waveform, rate = audio["waveform"], int(audio["sample_rate"])
    if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise T2AVError(f"AUDIO waveform must be a (batch, channels, samples) tensor, got {shape}")
    if waveform.shape[0] != 1:
        raise T2AVError(f"AUDIO holds a batch of {waveform.shape[0]} clips; pass one clip at a time")
    wave = waveform[0].float().mean(dim=0)
    if sample_rate is not None and sample_rate != rate:
        return resample(wave, rate, _check_rate(sample_rate)), sample_rate
    return wave, rate


def audio_to_comfy(wave: torch.Tensor, sample_rate: int) -> dict:
    """Mono wave (N,) -> ComfyUI AUDIO dict with waveform (1, 1, N) float32 on the CPU."""
    return {"waveform": torch.as_tensor(as_mono_array(wave)).reshape(1, 1, -1), "sample_rate": int(sample_rate)}


def write_audio(path: str | Path, wave: torch.Tensor, sample_rate: int) -> None:
    """Write a mono wave (N,) in [-1, 1]; the format follows the extension (.wav, .flac, .mp3, .ogg, .opus, .m4a).
    The file appears only once complete (``t2av_core.atomic``): an existing one is replaced, never damaged."""
    path = Path(path)
    codec = AUDIO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise T2AVError(f"cannot write audio as {path.suffix!r}; use one of {', '.join(AUDIO_CODECS)}")
    samples = as_mono_array(wave)
    with atomic_write(path, "audio file") as partial:  # same suffix: PyAV picks the container from it
        with av.open(str(partial), "w") as container:
            track = AudioTrack(container, codec, sample_rate)
            track.write(samples)
            track.close()


class AudioTrack:
    """An output audio stream fed with mono float32 chunks of any size at ``sample_rate``.

    Converts to the encoder's sample format, rate and frame size on the way (Opus only accepts some rates;
    the nearest higher one is used), so callers can push samples as they get them.
    """

    def __init__(self, container: av.container.OutputContainer, codec: str, sample_rate: int, bit_rate: int = 128_000):
        sample_rate = _check_rate(sample_rate)
        rate = _encoder_rate(codec, sample_rate)
        self.container, self.sample_rate = container, sample_rate
        self.stream = container.add_stream(codec, rate=rate, layout="mono")
        if codec in ("aac", "libmp3lame", "libopus"):
            self.stream.codec_context.bit_rate = bit_rate
        self.stream.codec_context.open()  # fixes the encoder's frame size, which the resampler must produce
        context = self.stream.codec_context
        self.resampler = av.AudioResampler(context.format, "mono", rate, context.frame_size or None)
        self.samples_out = 0

    def write(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        samples = np.clip(np.nan_to_num(np.asarray(samples, np.float32)), -1.0, 1.0)[None]  # encoders expect [-1, 1]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        self._encode(self.resampler.resample(frame))

    def close(self) -> None:
        """Flush the resampler and the encoder. The container is closed by its owner."""
        self._encode(self.resampler.resample(None))
        self.container.mux(self.stream.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self.samples_out, Fraction(1, self.stream.codec_context.sample_rate)
            self.samples_out += frame.samples
            self.container.mux(self.stream.encode(frame))


def _encoder_rate(codec: str, sample_rate: int) -> int:
    """``sample_rate`` if the encoder takes it, else its nearest higher rate (Opus: 8/12/16/24/48 kHz)."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    return min((rate for rate in rates if rate >= sample_rate), default=max(rates))


def as_mono_array(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 1-D float32 numpy copy of a mono wave; anything else is refused with a clear message."""
    array = wave.detach().cpu().float().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave, np.float32)
    if array.ndim != 1:
        raise T2AVError(f"expected a mono wave of shape (N,), got {array.shape}; average the channels first")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise T2AVError(f"sample rate must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)
