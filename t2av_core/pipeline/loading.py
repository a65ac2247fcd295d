"""Loading the models a run needs, at the precision and on the device asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import T2AVError
from ..interfaces import AudioCodec, MotionRenderer, SpeakerEncoder

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_accelerates_bf16() -> bool:
    """True on CPUs with bf16 arithmetic (AMX tiles or AVX-512 BF16): there bf16 weights run a patch of the
    generator about 2.35x faster than fp32 (an AMX CPU: 3.46 -> 1.47 s, patch values within 0.03-0.05). On
    AVX2-only CPUs bf16 is emulated and slower than fp32."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """"auto" is bfloat16 on a GPU that supports it and on a CPU that accelerates it, float16 on other GPUs
    and MPS, float32 on other CPUs."""
    if precision not in PRECISIONS:
        raise T2AVError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return _DTYPES[precision]
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_accelerates_bf16() else torch.float32


def describe_precision(precision: str, device: torch.device | str, side_model: bool = False) -> str:
    """What "auto" (or the given precision) picks on ``device``, and why, for the console."""
    dtype = model_dtype(precision, device, side_model)
    name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if precision != "auto":
        return f"{name} (as chosen)"
    if side_model:
        return f"{name} (auto: side models stay in fp32)"
    if torch.device(device).type == "cpu":
        why = "this CPU computes bf16 natively" if dtype == torch.bfloat16 else "this CPU has no bf16 arithmetic"
        return f"{name} (auto: {why})"
    return f"{name} (auto on {torch.device(device).type})"


def model_dtype(precision: str, device: torch.device | str, side_model: bool = False) -> torch.dtype:
    """The dtype to load a model's weights in. Under "auto" only the generator drops to 16 bits (on a GPU, or a
    CPU with bf16 arithmetic): the side models (audio VAE, LIA-X, speaker encoder) are small, their decoders are
    sensitive to rounding, and oneDNN's bf16 convolutions are wrong on some CPUs (see t2av_core.cpu_convs)."""
    if side_model and precision == "auto":
        return torch.float32
    return resolve_dtype(precision, device)


def _existing(path: str | Path, what: str) -> str:
    if not Path(path).exists():
        raise T2AVError(f"{what} not found: {path}")
    return str(path)


def load_talker(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                context_patches: int | None = None):
    """Backbone + flow heads from the released model.safetensors (or a folder holding it, or a converted file).
    ``context_patches`` overrides what the checkpoint records; ``model.config_notes`` says what was used."""
    from ..model.talker import load_talker as load
    return load(_existing(path, "Talker-T2AV model"), device=device, dtype=dtype, context_patches=context_patches)


def load_tokenizer(path: str | Path):
    """The Qwen3 tokenizer: a tokenizer.json, or the folder holding it."""
    from ..text.prompt import TalkerTokenizer
    return TalkerTokenizer.from_dir(_existing(path, "tokenizer"))


def load_audio_codec(path: str | Path, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> AudioCodec:
    """WhisperX-VAE from the released model.ckpt or a converted .safetensors."""
    from ..audio.whisperx_vae import load_audio_vae
    return load_audio_vae(_existing(path, "audio VAE"), device=device, dtype=dtype)


def load_renderer(path: str | Path, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> MotionRenderer:
    """LIA-X from the released lia-x.pt or a converted .safetensors."""
    from ..video.lia_x import load_lia_x
    return load_lia_x(_existing(path, "LIA-X video model"), device=device, dtype=dtype)


def load_speaker_encoder(path: str | Path, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> SpeakerEncoder:
    """WavLM-Large + ECAPA from the released wavlm_large_finetune.pth or a converted .safetensors."""
    from ..speaker.encoder import load_speaker_encoder as load
    return load(_existing(path, "speaker encoder"), device=device, dtype=dtype)


@dataclass
class Models:
    talker: Any = None
    tokenizer: Any = None
    audio_codec: AudioCodec | None = None
    renderer: MotionRenderer | None = None
    speaker_encoder: SpeakerEncoder | None = None


def load_models(talker: str | Path | None = None, tokenizer: str | Path | None = None,
                audio_codec: str | Path | None = None, renderer: str | Path | None = None,
                speaker_encoder: str | Path | None = None, device: torch.device | str = "cpu",
                precision: str = "auto", context_patches: int | None = None) -> Models:
    """Load whichever parts are given, at the dtypes of :func:`model_dtype`."""
    dtype = model_dtype(precision, device)
    side_dtype = model_dtype(precision, device, side_model=True)
    return Models(
        talker=None if talker is None else load_talker(talker, device, dtype, context_patches),
        tokenizer=None if tokenizer is None else load_tokenizer(tokenizer),
        audio_codec=None if audio_codec is None else load_audio_codec(audio_codec, device, side_dtype),
        renderer=None if renderer is None else load_renderer(renderer, device, side_dtype),
        speaker_encoder=None if speaker_encoder is None else load_speaker_encoder(speaker_encoder, device, side_dtype),
    )


def torch_module(model) -> torch.nn.Module | None:
    """The nn.Module holding a model's weights: the model itself, or the one a thin wrapper keeps in
    ``model``/``net``/``module``. A memory manager moves this module between devices."""
    if isinstance(model, torch.nn.Module):
        return model
    for name in ("model", "net", "module"):
        inner = getattr(model, name, None)
        if isinstance(inner, torch.nn.Module):
            return inner
    return None
