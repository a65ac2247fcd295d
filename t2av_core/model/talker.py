"""The whole generator with the checkpoint's exact parameter names, and a strict loader for it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoint_io import load_state_dict_file
from ..errors import CheckpointError
from .blocks import PatchEncoder
from .checkpoint_config import resolve_config
from .config import TalkerConfig
from .dit import FlowHead
from .qwen3 import Qwen3Model

_log = logging.getLogger(__name__)


class Backbone(nn.Module):
    """``llm``: only ``llm.model`` holds weights; the LM head is tied to the embeddings and never used."""

    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        self.model = Qwen3Model(cfg.backbone)


class FrameProjector(nn.Module):
    """Per-frame Linear from latent channels to the backbone width (``projector_*.linear1``)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.linear1 = nn.Linear(channels, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear1(x)


class StopHead(nn.Module):
    """logit = head(silu(proj(h))); the head has no bias."""

    def __init__(self, width: int):
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.head = nn.Linear(width, 1, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        return self.head(torch.nn.functional.silu(self.proj(h))).squeeze(-1)


class TalkerT2AV(nn.Module):
    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        self.cfg = cfg
        self.config_notes: list[str] = []  # where load_talker found the settings the shapes do not show
        width = cfg.hidden
        if cfg.patch_encoder.width != width or cfg.dit.width != width:
            raise ValueError("patch encoders and DiTs must have the backbone width (the DiT adds mu to its time embedding)")
        self.llm = Backbone(cfg)
        self.projector_speech = FrameProjector(cfg.speech_dim, width)
        self.projector_motion = FrameProjector(cfg.motion_dim, width)
        self.speech_patch_encoder = PatchEncoder(width, cfg.patch_encoder)
        self.motion_patch_encoder = PatchEncoder(width, cfg.patch_encoder)
        self.speech_cfm = FlowHead(cfg.speech_dim, cfg.speaker_dim, cfg.dit)
        self.motion_cfm = FlowHead(cfg.motion_dim, cfg.motion_cond_dim, cfg.dit)
        self.head_stop = StopHead(width)
        self.task_embedding = nn.Embedding(cfg.task_rows, width)
        self.motion_pad_emb = nn.Parameter(torch.zeros(1, 1, width))  # speech-only mode; unused for T2AV

    @property
    def backbone(self) -> Qwen3Model:
        return self.llm.model

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.llm.model.embed_tokens(ids)

    def embed_patches(self, speech: Tensor, motion: Tensor) -> Tensor:
        """Latent frames (B, T, P, 32) and normalised motion (B, T, P, 40) -> one summed token per patch (B, T, D)."""
        return (self.speech_patch_encoder(self.projector_speech(speech))
                + self.motion_patch_encoder(self.projector_motion(motion)))

    def stop_logit(self, h: Tensor) -> Tensor:
        return self.head_stop(h)


# ------------------------------------------------------------------------------------------------
# loading


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        candidate = p / "model.safetensors"
        if not candidate.is_file():
            raise CheckpointError(f"folder {p} has no model.safetensors: point to the released Talker-T2AV weights file")
        return candidate
    if not p.is_file():
        raise CheckpointError(f"Talker-T2AV weights not found at {p}: expected model.safetensors or the folder holding it")
    if p.suffix != ".safetensors":
        raise CheckpointError(f"{p.name}: the generator loads only .safetensors files (the released model.safetensors)")
    return p


def read_safetensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of the generator's weights file (or of the folder holding model.safetensors), on the CPU."""
    return load_state_dict_file(_resolve(path))


# Keys an official save may hold that the model does not need: the tied LM head (an untied save writes it).
_IGNORED = ("llm.lm_head.weight",)


def check_state_dict(model: nn.Module, sd: dict[str, Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointError in plain words unless ``sd`` matches the model's keys and shapes exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(k for k in set(sd) - set(expected) if k not in _IGNORED)
    wrong = sorted(f"{k}: file has {tuple(sd[k].shape)}, model expects {tuple(expected[k].shape)}"
                   for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or wrong):
        return
    lines = [f"{source} does not match the Talker-T2AV generator:"]
    for title, items in (("missing tensors", missing), ("unexpected tensors", unexpected), ("shape mismatches", wrong)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            lines.append(f"  {len(items)} {title}: {shown}")
    lines.append("  Use the released model.safetensors of Talker-T2AV (or a file converted with the same key names).")
    raise CheckpointError("\n".join(lines))


def build_from_state_dict(sd: dict[str, Tensor], cfg: TalkerConfig | None = None, device="cpu",
                          dtype: torch.dtype = torch.float32, source: str = "checkpoint") -> TalkerT2AV:
    """Build on the meta device (no random init), check strictly, then adopt the tensors (``sd`` is consumed)."""
    cfg = cfg or TalkerConfig.from_state_dict(sd)
    with torch.device("meta"):
        model = TalkerT2AV(cfg)
    check_state_dict(model, sd, source)
    for k in _IGNORED:
        sd.pop(k, None)
    for k, v in sd.items():
        if not v.is_floating_point():
            raise CheckpointError(f"{source}: tensor {k} has dtype {v.dtype}, expected a floating-point tensor")
    # convert one tensor at a time and drop the source, so peak memory stays near one copy of the model
    model.load_state_dict({k: sd.pop(k).to(device=device, dtype=dtype) for k in list(sd)}, assign=True)
    model.llm.model.rotary.reset_buffers(device)
    return model.eval().requires_grad_(False)


def load_talker(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                context_patches: int | None = None) -> TalkerT2AV:
    """Load ``model.safetensors`` (bf16 or fp32 file; a folder holding it is accepted) into a TalkerT2AV.

    Settings the tensor shapes do not show (``context_patches`` above all) come from ``context_patches`` when
    given, else from what the checkpoint records (its header, or a config.json beside it), else the released
    values; ``model.config_notes`` says which, one line per setting (also logged)."""
    p = _resolve(path)
    sd = load_state_dict_file(p)
    cfg, notes = resolve_config(sd, p, context_patches)
    model = build_from_state_dict(sd, cfg, device=device, dtype=dtype, source=str(p))
    model.config_notes = notes
    for note in notes:
        _log.info("Talker-T2AV %s: %s", p.name, note)
    return model
