"""Band-limited (windowed-sinc) resampling, numerically the same as torchaudio's default resampler.

Two official call paths exist and differ by up to ~1e-5, so both are reproduced:

* ``path="transform"`` (default): ``torchaudio.transforms.Resample(orig, new)``, the path of the official
  ``infer.py``. Its kernel is mostly computed in float64 (see :func:`sinc_resample_kernel`) and stored
  as float32.
* ``path="functional"``: ``torchaudio.functional.resample(x, orig, new)``, whose kernel is computed in the
  wave's own dtype (float32 for float32 audio).

Filter: Hann-windowed sinc, 6 zero crossings (``lowpass_filter_width``), cutoff at 0.99 of the lower
Nyquist frequency (``rolloff``). Output length is ceil(n * new / orig). When torchaudio is installed it is
used directly (``use_torchaudio=None`` means "if available").
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from t2av_core.errors import T2AVError

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99

try:  # optional; only used to defer to the reference implementation when present
    import torchaudio  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    torchaudio = None


def sinc_resample_kernel(orig_freq: int, new_freq: int, dtype: torch.dtype | None = None,
                         lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                         rolloff: float = ROLLOFF) -> tuple[torch.Tensor, int]:
    """Polyphase kernel (new', 1, 2 * width + orig') for the rates reduced by their gcd, and ``width``.

    Phase j of the kernel produces output sample j of every block of new' outputs; the input is padded
    by ``width`` before and ``width + orig'`` after and read with stride orig'.
    ``dtype=None`` is the transform's recipe: tap positions in float64 but the per-phase offsets j / new'
    in float32 (promoted when added), result cast to float32. A dtype computes everything in that dtype.
    """
    g = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // g, new_freq // g
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    # Time (in input samples / orig) of every tap relative to each output phase.
    taps = torch.arange(-width, width + orig, dtype=dtype or torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype or torch.float32)[:, None, None] / new + taps
    t *= cutoff
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)  # window support: +-6 zero crossings
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2  # Hann
    t *= math.pi
    gain = cutoff / orig
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * gain
    return (kernel.to(torch.float32) if dtype is None else kernel), width


@functools.lru_cache(maxsize=16)
def _cached_transform_kernel(orig_freq: int, new_freq: int) -> tuple[torch.Tensor, int]:
    return sinc_resample_kernel(orig_freq, new_freq, None)


def _apply_kernel(wave: torch.Tensor, orig: int, new: int, kernel: torch.Tensor, width: int) -> torch.Tensor:
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    n = flat.shape[-1]
    padded = F.pad(flat, (width, width + orig))
    out = F.conv1d(padded[:, None], kernel.to(device=wave.device, dtype=wave.dtype), stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)  # interleave the phases
    out = out[:, : math.ceil(new * n / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])


def resample(wave: torch.Tensor, orig_freq: int, new_freq: int, *, path: str = "transform",
             use_torchaudio: bool | None = None) -> torch.Tensor:
    """Resample the last axis of ``wave`` (..., N) from ``orig_freq`` to ``new_freq`` Hz.

    ``path="transform"`` reproduces ``torchaudio.transforms.Resample`` (the infer.py path),
    ``path="functional"`` reproduces ``torchaudio.functional.resample`` (kernel in the wave's dtype).
    Equal rates return the input unchanged.
    """
    if path not in ("transform", "functional"):
        raise T2AVError(f"resample: path must be 'transform' or 'functional', got {path!r}")
    if not isinstance(wave, torch.Tensor) or not wave.is_floating_point():
        raise T2AVError("resample expects a floating-point tensor (..., N)")
    for name, rate in (("orig_freq", orig_freq), ("new_freq", new_freq)):
        if int(rate) != rate or rate <= 0:
            raise T2AVError(f"resample: {name} must be a positive whole number of Hz, got {rate}")
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq == new_freq:
        return wave
    if use_torchaudio is None:
        use_torchaudio = torchaudio is not None
    if use_torchaudio:
        if torchaudio is None:
            raise T2AVError("use_torchaudio=True but torchaudio is not installed")
        if path == "functional":
            return torchaudio.functional.resample(wave, orig_freq, new_freq)
        return torchaudio.transforms.Resample(orig_freq, new_freq).to(wave.device)(wave)
    if path == "functional":
        kernel, width = sinc_resample_kernel(orig_freq, new_freq, wave.dtype)
    else:
        kernel, width = _cached_transform_kernel(orig_freq, new_freq)
    g = math.gcd(orig_freq, new_freq)
    return _apply_kernel(wave, orig_freq // g, new_freq // g, kernel, width)
