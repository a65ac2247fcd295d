"""What passes between the pipeline's stages: the condition objects, and checks shared by the stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import T2AVError
from ..interfaces import RELEASED
from ..text.prompt import TEMPLATE_IDS

PATCH_FRAMES = 4            # one backbone position carries 4 frames of each stream
MAX_REFERENCE_FRAMES = 750  # the released recipe reads at most 30 s of reference audio / motion


@dataclass(frozen=True)
class TextCondition:
    """What the backbone reads before the first audio/video patch."""
    text: str
    prompt_ids: torch.Tensor  # (L,) int64: chat-template ids up to the first speech placeholder
    template_ids: int = TEMPLATE_IDS  # how many of them are template, not text (sets the length budget)
    family: str = RELEASED  # of the tokenizer that made it (see pipeline.compat)


@dataclass(frozen=True)
class TextBatch:
    """Several prompts for one batched run, one clip each (e.g. one per line of a text box)."""
    conditions: tuple[TextCondition, ...]

    def __len__(self) -> int:
        return len(self.conditions)


@dataclass(frozen=True)
class VoiceCondition:
    """Who speaks: a speaker embedding, and optionally the reference clip's audio latents (for a prefix)."""
    speaker: torch.Tensor               # (256,) float32
    audio_latents: torch.Tensor | None  # (T, 32) at 25 fps, the whole reference (<= 30 s); None: identity only
    seconds: float                      # length of the reference that was used
    family: str = RELEASED              # of the speaker encoder that made it


@dataclass(frozen=True)
class FaceCondition:
    """Who is seen: the renderer's prepared face and the face's own raw motion code."""
    state: Any                  # renderer-specific (e.g. LIA-X identity code and feature maps)
    motion: torch.Tensor        # (40,) raw motion code of the face picture; conditions the motion head
    image_size: int             # side of the rendered square frames
    family: str = RELEASED      # of the renderer that prepared it


@dataclass(frozen=True)
class SamplerParts:
    """How each 4-frame patch is drawn by the two flow heads (defaults: the released recipe)."""
    solver: str | Any = "euler"          # a name in SOLVERS, or an object with solve(velocity, x, grid) -> x
    steps: int = 10
    sway: float = 1.0
    sigmas: torch.Tensor | None = None   # explicit time grid from <= 1 down to 0; overrides steps and sway
    cfg: float = 2.0
    zero_star: bool = True
    temperature: float = 0.3


def require_loaded(model, name: str):
    """``model``, or a T2AVError when that part was never loaded (e.g. a ``Models`` field left None)."""
    if model is None:
        raise T2AVError(f"no {name} is loaded: pass its file to load_models({name}=...) first")
    return model


def check_stream(x: torch.Tensor, dim: int, what: str) -> torch.Tensor:
    """``x`` as float32 if it is a non-empty, finite (frames, dim) tensor; T2AVError naming ``what`` otherwise."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != dim or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise T2AVError(f"{what} must be a (frames, {dim}) tensor; got {shape}")
    if not torch.isfinite(x).all():
        raise T2AVError(f"{what} contain NaN or inf values")
    return x.float()
