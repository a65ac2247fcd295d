"""Every dimension of the Talker-T2AV generator, and how to read them back from a checkpoint.

Three parts: the Qwen3 backbone, the two llama4nar-style patch encoders, and the two flow-head DiTs.
Almost everything is visible in tensor shapes; the exceptions are documented in ``from_state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from ..errors import CheckpointError


@dataclass(frozen=True)
class BackboneConfig:
    """Qwen3 decoder geometry (the released model is Qwen3-0.6B)."""

    hidden: int = 1024
    layers: int = 28
    n_heads: int = 16  # query heads
    n_kv_heads: int = 8  # grouped-query attention: 2 query heads share one key/value head
    head_dim: int = 128  # n_heads * head_dim need not equal hidden (2048 != 1024 in the release)
    ffn: int = 3072
    vocab: int = 151936
    rope_theta: float = 1_000_000.0
    eps: float = 1e-6


@dataclass(frozen=True)
class EncoderConfig:
    """A stack of bidirectional llama4nar blocks (patch encoders and the DiT's decoder)."""

    layers: int = 4
    n_heads: int = 8
    width: int = 1024
    rope_rows: int = 1024  # rows of the stored RoPE table (positions it covers)
    eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.width // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return int(8 * self.width / 3)  # SwiGLU width rule of the reference: 2730 for 1024


@dataclass(frozen=True)
class TalkerConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    patch_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dit: EncoderConfig = field(default_factory=lambda: EncoderConfig(layers=8, n_heads=8))
    speech_dim: int = 32  # audio latent channels (WhisperX-VAE, 25 Hz)
    motion_dim: int = 40  # LIA-X motion channels, normalised
    speaker_dim: int = 256  # WavLM-ECAPA speaker embedding (speech head's global condition)
    patch_size: int = 4  # frames per backbone position: 4 frames = 0.16 s at 25 fps
    delay: int = 0  # the released model aligns speech and motion (the code default of 5 is stale)
    context_patches: int = 1  # history patches each flow head sees
    task_rows: int = 2  # task table: 0 = speech only, 1 = speech + video

    @property
    def hidden(self) -> int:
        return self.backbone.hidden

    @property
    def motion_cond_dim(self) -> int:
        return self.motion_dim  # the motion head is conditioned on the first (normalised) motion frame

    @classmethod
    def released(cls) -> "TalkerConfig":
        """The geometry of the released checkpoint (912,301,128 parameters)."""
        return cls()

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> "TalkerConfig":
        """Infer every dimension from tensor shapes and key counts.

        Backbone heads: head_dim from ``q_norm`` (it normalises one head), query / key-value head counts
        from the ``q_proj`` / ``k_proj`` rows divided by head_dim. Patch encoders and DiTs: their head
        count is not a parameter shape, but the stored RoPE table ``rope.w`` is (rows, head_dim/2, 2), so
        n_heads = width / head_dim. Not inferable at all (no tensor depends on them): rope_theta (1e6),
        the norm eps (1e-6), patch_size (4), delay (0) and context_patches (1); the released values are used
        here, and ``checkpoint_config.resolve_config`` replaces them with what a checkpoint records.
        """
        try:
            return _infer(sd)
        except KeyError as err:
            raise CheckpointError(
                f"this file is not a Talker-T2AV generator checkpoint: tensor {err} is missing "
                "(expected keys such as 'llm.model.embed_tokens.weight', 'speech_cfm.estimator.in_proj.weight')"
            ) from None


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of consecutive numbered children ``prefix{i}.`` present in the state dict."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in sd):
        n += 1
    return n


def _encoder(sd: Mapping[str, torch.Tensor], prefix: str) -> EncoderConfig:
    width = sd[f"{prefix}input_proj.weight"].shape[0]
    rope = sd[f"{prefix}rope.w"]
    head_dim = 2 * rope.shape[1]
    if width % head_dim:
        raise CheckpointError(f"{prefix}rope.w implies head_dim {head_dim}, which does not divide width {width}")
    return EncoderConfig(layers=_count(sd, f"{prefix}blocks."), n_heads=width // head_dim, width=width,
                         rope_rows=rope.shape[0])


def _infer(sd: Mapping[str, torch.Tensor]) -> TalkerConfig:
    vocab, hidden = sd["llm.model.embed_tokens.weight"].shape
    layer0 = "llm.model.layers.0."
    head_dim = sd[layer0 + "self_attn.q_norm.weight"].shape[0]
    backbone = BackboneConfig(
        hidden=hidden,
        layers=_count(sd, "llm.model.layers."),
        n_heads=sd[layer0 + "self_attn.q_proj.weight"].shape[0] // head_dim,
        n_kv_heads=sd[layer0 + "self_attn.k_proj.weight"].shape[0] // head_dim,
        head_dim=head_dim,
        ffn=sd[layer0 + "mlp.gate_proj.weight"].shape[0],
        vocab=vocab,
    )
    pe = _encoder(sd, "speech_patch_encoder.")
    dit = _encoder(sd, "speech_cfm.estimator.decoder.")
    return TalkerConfig(
        backbone=backbone,
        patch_encoder=pe,
        dit=dit,
        speech_dim=sd["projector_speech.linear1.weight"].shape[1],
        motion_dim=sd["projector_motion.linear1.weight"].shape[1],
        speaker_dim=sd["speech_cfm.estimator.global_cond_proj.weight"].shape[1],
        task_rows=sd["task_embedding.weight"].shape[0],
    )


def tiny_config() -> TalkerConfig:
    """The small geometry of the public parity fixtures (also handy for quick tests and benchmarks)."""
    return TalkerConfig(
        backbone=BackboneConfig(hidden=128, layers=2, n_heads=4, n_kv_heads=2, head_dim=32, ffn=384, vocab=1024),
        patch_encoder=EncoderConfig(layers=2, n_heads=4, width=128),
        dit=EncoderConfig(layers=2, n_heads=4, width=128),
    )


__all__ = ["BackboneConfig", "EncoderConfig", "TalkerConfig", "tiny_config"]
