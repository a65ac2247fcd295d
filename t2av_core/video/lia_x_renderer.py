"""LIA-X as a ``MotionRenderer``: reference face + raw 40-d motion -> frames, in bounded memory.

Follows the official ``infer.py`` rendering: the reference is encoded once (batch 1), the motion offsets
of all frames are computed in one go, and each frame is ``decode(z + offset_t, feats)``. Frames are
rendered ``batch_size`` at a time (the official code renders one at a time; batching changes the result
only by float rounding, ~3e-4 on the tiny parity model).

Output conversion, as in the official code: the image is clamped to [-1, 1] and mapped to 0..1 with
(x + 1) / 2. The official 8-bit frames are ``(that * 255)`` *truncated* (not rounded); use
``frames_to_uint8`` (or ``render_iter(..., uint8=True)``) to get exactly those bytes.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch

from ..cpu_convs import float32_cpu_convolutions
from ..errors import T2AVError
from ..interfaces import ProgressFn
from .face_prep import preprocess_face

if TYPE_CHECKING:
    from .lia_x import LiaX


@dataclass
class FaceState:
    """What ``prepare_face`` computes once per reference and ``render`` reuses for every frame."""
    image: torch.Tensor  # (1, 3, R, R) preprocessed reference in [-1, 1]
    z: torch.Tensor  # (1, style_dim) identity code
    feats: list[torch.Tensor]  # encoder feature maps, batch 1, coarsest first


def raw_to_unit(raw: torch.Tensor) -> torch.Tensor:
    """Decoder output (B, 3, R, R) -> frames (B, R, R, 3) float32 in 0..1 (clamp, then (x + 1) / 2)."""
    return ((raw.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)


def frames_to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in 0..1 from ``render`` -> uint8 with the official truncation (not rounding)."""
    return (frames * 255).to(torch.uint8)


@contextmanager
def _tf32(device: torch.device, allowed: bool):
    """Set whether CUDA convs/matmuls may use TF32 for the duration of one model call.

    cuDNN convs use TF32 by default on recent NVIDIA GPUs, which moves each conv by ~1e-3 relative; the
    official renders are plain fp32 (cuDNN is switched off there), so parity needs TF32 off.
    """
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise T2AVError(f"batch_size must be a positive integer, got {batch_size!r}")


class LiaXRenderer:
    """Implements ``t2av_core.interfaces.MotionRenderer`` around a loaded ``LiaX`` network.

    ``allow_tf32=True`` trades the official fp32 numerics for speed on recent NVIDIA GPUs (float32 models only).
    """

    def __init__(self, model: "LiaX", allow_tf32: bool = False):
        self.model = model
        self.allow_tf32 = allow_tf32
        self.image_size = model.cfg.image_size
        self.motion_dim = model.cfg.motion_dim

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _model_input(self, image) -> torch.Tensor:
        return preprocess_face(image, self.image_size).to(self.device, self.dtype)

    @torch.inference_mode()
    def prepare_face(self, image: torch.Tensor) -> FaceState:
        """Reference image (H, W, 3) float 0..1 (or uint8, greyscale, RGBA; any size) -> FaceState."""
        x = self._model_input(image)
        with _tf32(self.device, self.allow_tf32), float32_cpu_convolutions(self.model):
            z, feats = self.model.encode_identity(x)
        return FaceState(image=x, z=z, feats=feats)

    @torch.inference_mode()
    def encode_motion(self, frames: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Video frames (T, H, W, 3) float 0..1 or uint8 -> raw motion codes (T, 40) float32 on the CPU.

        Each frame goes through the reference preprocessing (8-bit quantisation, INTER_AREA resize to the
        model size); pass face crops, as the motion encoder was trained on aligned faces.
        """
        _check_batch_size(batch_size)
        if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
            raise T2AVError(f"frames must be shaped (T, H, W, 3), got {tuple(frames.shape)}")
        codes = []
        for start in range(0, frames.shape[0], batch_size):
            x = torch.cat([self._model_input(f) for f in frames[start:start + batch_size]])
            with _tf32(self.device, self.allow_tf32), float32_cpu_convolutions(self.model):
                codes.append(self.model.encode_motion(x).float().cpu())
        if not codes:
            return torch.zeros(0, self.motion_dim)
        return torch.cat(codes)

    def _check_motion(self, face: FaceState, motion_raw: torch.Tensor) -> None:
        if not isinstance(face, FaceState):
            raise T2AVError("face must be the result of prepare_face() of this renderer")
        if motion_raw.ndim != 2 or motion_raw.shape[1] != self.motion_dim:
            raise T2AVError(f"motion must be shaped (T, {self.motion_dim}), got {tuple(motion_raw.shape)}")
        if not torch.isfinite(motion_raw).all():
            raise T2AVError("motion contains NaN or infinite values")

    @torch.inference_mode()
    def render_iter(self, face: FaceState, motion_raw: torch.Tensor, batch_size: int = 8,
                    progress: ProgressFn | None = None, uint8: bool = False) -> Iterator[torch.Tensor]:
        """Yield consecutive chunks of up to ``batch_size`` frames, (n, R, R, 3) on the CPU, as they are
        rendered: float32 0..1, or the official uint8 bytes with ``uint8=True``. Nothing is kept, so
        memory does not grow with T. ``progress(done, total)`` runs as each chunk is ready."""
        _check_batch_size(batch_size)
        self._check_motion(face, motion_raw)
        total = motion_raw.shape[0]
        # All offsets at once, in float32, as the official code does; the basis is computed once here.
        device = self.device
        with _tf32(device, self.allow_tf32):
            offsets = self.model.motion_offset(motion_raw.to(device, torch.float32))
        # The face may have been prepared while the weights sat on another device (ComfyUI moves them).
        z = face.z.to(device).float()
        feats = [f.to(device) for f in face.feats]
        for start in range(0, total, batch_size):
            style = (z + offsets[start:start + batch_size]).to(self.dtype)
            with _tf32(device, self.allow_tf32), float32_cpu_convolutions(self.model):
                frames = raw_to_unit(self.model.decode(style, feats))
            chunk = (frames_to_uint8(frames) if uint8 else frames).cpu()
            if progress is not None:  # may raise to cancel
                progress(min(start + batch_size, total), total)
            yield chunk

    def render(self, face: FaceState, motion_raw: torch.Tensor, batch_size: int = 8,
               progress: ProgressFn | None = None) -> torch.Tensor:
        """Raw motion (T, 40) -> frames (T, R, R, 3) float32 in 0..1, in one preallocated tensor.

        That tensor alone is T * R * R * 12 bytes (9.4 GB for 60 s at 512x512); stream long videos
        with ``render_iter`` instead.
        """
        self._check_motion(face, motion_raw)
        out = torch.empty(motion_raw.shape[0], self.image_size, self.image_size, 3)
        done = 0
        for chunk in self.render_iter(face, motion_raw, batch_size, progress):
            out[done:done + chunk.shape[0]] = chunk
            done += chunk.shape[0]
        return out
