"""The sizes of a WhisperX-VAE checkpoint: read from its tensor shapes, checked against the training config a
Lightning ``.ckpt`` keeps (``hyper_parameters["cfg"]``), and the one setting shapes cannot show, the Whisper
encoder's head count, taken from that config when it records it (else guessed as width / 64, with a note).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

import torch

from t2av_core.errors import CheckpointError
from t2av_core.interfaces import AUDIO_LATENT_DIM

# Audio encoder (width, heads, layers) of the public Whisper sizes; turbo has large-v3's encoder.
WHISPER_SIZES = {"tiny": (384, 6, 4), "base": (512, 8, 6), "small": (768, 12, 12), "medium": (1024, 16, 24),
                 "large": (1280, 20, 32), "turbo": (1280, 20, 32)}
_WHISPER_NAME = re.compile(r"(?:.*[/_-])?(?:whisper[-_])?(tiny|base|small|medium|large|turbo)(?:[-_.].*)?")
# Head-count keys of a training config: anywhere, or only inside a section whose name mentions Whisper (not
# "semantic": the training code has other semantic modules with their own heads).
_HEAD_KEYS = {"n_audio_head", "whisper_heads", "whisper_n_head", "whisper_num_heads"}
_SECTION_HEAD_KEYS = {"n_head", "n_heads", "num_heads", "heads", "num_attention_heads", "encoder_attention_heads"}
# What the official WhisperXVAE(cfg) reads from cfg.model, and the config field each must equal.
_CODEC_FIELDS = {("codec_encoder", "in_dim"): "enc_base_width", ("codec_encoder", "ratios"): "enc_strides",
                 ("codec_encoder", "hidden_dim"): "enc_out_dim", ("codec_decoder", "hidden_dim"): "dec_width",
                 ("codec_decoder", "ratios"): "dec_rates", ("codec_decoder", "z_dim"): "z_dim"}


@dataclass(frozen=True)
class WhisperXVAEConfig:
    """Sizes of the released model by default (Whisper-large-v3 semantic encoder)."""

    enc_base_width: int = 64
    enc_strides: tuple[int, ...] = (2, 4, 10, 12)
    enc_out_dim: int = 1280
    dec_width: int = 1536
    dec_rates: tuple[int, ...] = (12, 10, 4, 2)
    z_dim: int = AUDIO_LATENT_DIM
    whisper_n_mels: int = 128
    whisper_n_ctx: int = 1500
    whisper_width: int = 1280
    whisper_heads: int = 20
    whisper_layers: int = 32

    @classmethod
    def from_dict(cls, d: dict) -> "WhisperXVAEConfig":
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        for f in ("enc_strides", "dec_rates"):
            if f in known:
                known[f] = tuple(known[f])
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], whisper_heads: int | None = None) -> "WhisperXVAEConfig":
        """Read every size from the weight shapes (folded or weight-normalised names both work).

        ``whisper_heads`` defaults to width / 64, the head size of every released Whisper model
        (1280 -> 20 heads for the released WhisperX-VAE); pass it for other geometries. To also use a
        Lightning checkpoint's training config, see :func:`config_from_checkpoint`.
        """
        def weight(prefix: str) -> torch.Tensor:
            for suffix in (".weight", ".weight_v", ".parametrizations.weight.original1"):
                if prefix + suffix in sd:
                    return sd[prefix + suffix]
            raise CheckpointError(f"audio VAE weights: missing '{prefix}.weight_v' (or '.weight'); is this a "
                                  "WhisperX-VAE checkpoint?")

        n_enc = 0
        while any(k.startswith(f"CodecEnc.block.{n_enc + 1}.block.4.") for k in sd):
            n_enc += 1
        n_dec = 0
        while any(k.startswith(f"CodecDec.model.{n_dec + 1}.block.1.") for k in sd):
            n_dec += 1
        n_layers = 0
        while f"semantic_model.encoder.blocks.{n_layers}.attn.query.weight" in sd:
            n_layers += 1
        if n_enc == 0 or n_dec == 0 or n_layers == 0:
            raise CheckpointError("audio VAE weights: no CodecEnc / CodecDec / semantic_model.encoder blocks "
                                  "found; is this a WhisperX-VAE checkpoint?")
        conv1 = weight("semantic_model.encoder.conv1")
        width = conv1.shape[0]
        if "semantic_model.encoder.positional_embedding" not in sd:
            raise CheckpointError("audio VAE weights: missing 'semantic_model.encoder.positional_embedding'")
        heads = max(1, width // 64) if whisper_heads is None else check_whisper_heads(whisper_heads, width)
        return cls(
            enc_base_width=weight("CodecEnc.block.0").shape[0],
            enc_strides=tuple(weight(f"CodecEnc.block.{i}.block.4").shape[2] // 2 for i in range(1, n_enc + 1)),
            enc_out_dim=weight(f"CodecEnc.block.{n_enc + 2}").shape[0],
            dec_width=weight("CodecDec.model.0").shape[0],
            dec_rates=tuple(weight(f"CodecDec.model.{i}.block.1").shape[2] // 2 for i in range(1, n_dec + 1)),
            z_dim=weight("vae.out_proj").shape[1],
            whisper_n_mels=conv1.shape[1],
            whisper_n_ctx=sd["semantic_model.encoder.positional_embedding"].shape[0],
            whisper_width=width,
            whisper_heads=heads,
            whisper_layers=n_layers,
        )


def check_whisper_heads(heads, width: int) -> int:
    """``heads`` if it is a usable Whisper head count for ``width``, else CheckpointError saying why."""
    if type(heads) is not int or heads <= 0 or width % heads:
        raise CheckpointError(f"whisper_heads must be a positive whole number by which the Whisper width {width} "
                              f"is divisible (standard: width / 64 = {max(1, width // 64)}), got {heads!r}")
    return heads


def _leaves(tree, path=()):
    """(path of lower-case keys, value) of every value in a plain config tree."""
    if not isinstance(tree, (dict, list)):
        yield path, tree
        return
    for key, value in tree.items() if isinstance(tree, dict) else enumerate(tree):
        yield from _leaves(value, (*path, str(key).lower()))


def _recorded_heads(train: dict, cfg: WhisperXVAEConfig) -> int | None:
    """The head count a training config records (a head-count key or a Whisper model name), checked
    against the weights; None when it records neither."""
    found = {}
    for path, value in _leaves(train):
        where, in_section = ".".join(path), any("whisper" in p for p in path[:-1])
        named = isinstance(value, str) and _WHISPER_NAME.fullmatch(value.lower())
        if named and ("whisper" in value.lower() or "whisper" in path[-1] or in_section):
            width, heads, layers = WHISPER_SIZES[named.group(1)]
            if (width, layers) != (cfg.whisper_width, cfg.whisper_layers):
                raise CheckpointError(
                    f"the checkpoint's training config names Whisper '{value}' ({where}: width {width}, {layers} "
                    f"layers) but its weights have a Whisper encoder of width {cfg.whisper_width} with "
                    f"{cfg.whisper_layers} layers; the file is inconsistent")
            found[where] = heads
        elif type(value) is int and (path[-1] in _HEAD_KEYS or in_section and path[-1] in _SECTION_HEAD_KEYS):
            if value <= 0 or cfg.whisper_width % value:
                raise CheckpointError(f"the checkpoint's training config sets {where} = {value} Whisper heads, "
                                      f"which does not divide the Whisper width {cfg.whisper_width} of its weights")
            found[where] = value
    if len(set(found.values())) > 1:
        raise CheckpointError(f"the checkpoint's training config gives different Whisper head counts: {found}")
    return next(iter(found.values()), None)


def config_from_checkpoint(sd: dict[str, torch.Tensor], hyper_parameters: dict | None = None,
                           whisper_heads: int | None = None) -> tuple[WhisperXVAEConfig, str | None]:
    """(config, note) for the weights ``sd``: every size from the tensor shapes, checked against the training
    config of a Lightning checkpoint (``hyper_parameters["cfg"]`` as plain data, see
    ``checkpoint_io.plain_data``); a disagreement is a CheckpointError naming both values.

    The Whisper head count comes from ``whisper_heads``, else from the training config (a key such as
    ``n_audio_head``, or a Whisper model name such as "large-v3"), else it is guessed as width / 64 and the
    note says so (otherwise None). The official code hard-codes large-v3, so its file may not record it.
    """
    cfg = WhisperXVAEConfig.from_state_dict(sd, whisper_heads)
    train = (hyper_parameters or {}).get("cfg", hyper_parameters or {})
    model = train.get("model") if isinstance(train, dict) else None
    for (section, key), field in _CODEC_FIELDS.items():
        value = model.get(section) if isinstance(model, dict) else None
        value = value.get(key) if isinstance(value, dict) else None
        mine = list(getattr(cfg, field)) if field in ("enc_strides", "dec_rates") else getattr(cfg, field)
        numbers = value if isinstance(value, list) else [value]  # interpolations etc. are not compared
        if numbers and all(type(v) is int for v in numbers) and value != mine:
            raise CheckpointError(f"the checkpoint's training config says model.{section}.{key} = {value}, but its "
                                  f"weights have {mine}; the file is inconsistent (re-export or re-download it)")
    recorded = _recorded_heads(train, cfg) if isinstance(train, dict) else None
    if whisper_heads is not None or recorded is not None:
        return replace(cfg, whisper_heads=whisper_heads or recorded), None
    return cfg, (f"the checkpoint does not record the Whisper head count, so it was guessed as width / 64 = "
                 f"{cfg.whisper_heads} (right for every standard Whisper size); pass whisper_heads if the audio "
                 "sounds wrong")
