"""The contracts shared by the real side models and the bundled demo ones.

Nodes, the command line and the generation loop only rely on these, so the released WhisperX-VAE / LIA-X /
WavLM-ECAPA models and the small demo codecs are interchangeable.
All latents are frames-first at 25 frames per second: audio (T, 32), motion (T, 40).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch

FRAME_RATE = 25
AUDIO_LATENT_DIM = 32
MOTION_LATENT_DIM = 40
SPEAKER_DIM = 256

# progress(done, total); raising inside it (e.g. GenerationCancelled) aborts the work.
ProgressFn = Callable[[int, int], None]

# Which model family a part belongs to. The bundled demo's parts say ``family = DEMO``; anything without the
# attribute counts as released. Parts of different families do not fit together (a demo voice vector means
# nothing to the released generator), and the pipeline refuses to mix them.
RELEASED, DEMO = "released", "demo"


def family_of(part: Any) -> str:
    return getattr(part, "family", RELEASED)


@runtime_checkable
class AudioCodec(Protocol):
    sample_rate: int  # of decode() output and encode() input

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono wave (N,) at ``sample_rate`` -> latents (T, 32) at 25 Hz."""

    def decode(self, latents: torch.Tensor, progress: ProgressFn | None = None) -> torch.Tensor:
        """Latents (T, 32) -> mono wave (T * sample_rate / 25,) float32 in [-1, 1]."""


@runtime_checkable
class MotionRenderer(Protocol):
    image_size: int  # square output side, e.g. 512

    def prepare_face(self, image: torch.Tensor) -> Any:
        """RGB image (H, W, 3) float in 0..1 of any size -> an opaque face state used by render()."""

    def encode_motion(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames (T, H, W, 3) float 0..1 -> raw (not normalised) motion codes (T, 40)."""

    def render(self, face: Any, motion_raw: torch.Tensor, batch_size: int = 8,
               progress: ProgressFn | None = None) -> torch.Tensor:
        """Raw motion (T, 40) -> frames (T, image_size, image_size, 3) float32 in 0..1."""


@runtime_checkable
class SpeakerEncoder(Protocol):
    sample_rate: int  # 16000

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono wave (N,) at ``sample_rate`` -> speaker embedding (256,)."""
