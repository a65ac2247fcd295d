"""WhisperX-VAE: the 24 kHz audio autoencoder whose 32-d, 25 Hz latents Talker-T2AV generates.

encode: acoustic features of the 24 kHz wave (DAC-style conv encoder, hop 960) plus semantic features of
the 16 kHz Whisper log-mel (Whisper audio encoder at 50 Hz, averaged over frame pairs to 25 Hz) ->
a 1x1 conv -> the first 32 channels (the posterior mean; the log-scale half is unused).
decode: 1x1 conv 32 -> hidden, then a DAC-style transposed-conv decoder -> tanh wave, 960 samples/frame.

Weights: the released Lightning ``whisperx-vae/model.ckpt`` (read without executing its pickle), the
official key names as safetensors, or a file written by ``t2av_core.convert``. Only the keys needed for
encode/decode are kept (the Whisper text decoder and any training-only modules are ignored), weight
norm is folded once at load, and every size is read from the weight shapes, except the number of Whisper
attention heads, which shapes do not reveal (see :func:`config_from_checkpoint`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from t2av_core.audio.dac_blocks import CodecDecoder, CodecEncoder
from t2av_core.audio.mel import SAMPLE_RATE as MEL_SAMPLE_RATE, N_SAMPLES as MEL_WINDOW_SAMPLES
from t2av_core.audio.mel import log_mel_spectrogram, speech_frames
from t2av_core.audio.resample import resample
from t2av_core.audio.whisper_encoder import WhisperAudioEncoder
from t2av_core.audio.whisperx_config import (WhisperXVAEConfig, check_whisper_heads,  # noqa: F401  (re-exported)
                                            config_from_checkpoint)
from t2av_core.checkpoint_io import load_weights_and_hyper_parameters, read_component_config
from t2av_core.cpu_convs import float32_cpu_convolutions
from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.interfaces import FRAME_RATE, ProgressFn

SAMPLE_RATE = 24000
HOP = SAMPLE_RATE // FRAME_RATE  # 960 samples of 24 kHz audio per latent frame
COMPONENT = "audio_vae"
# Key prefixes used by encode/decode; everything else in the released file is ignored.
KEPT_PREFIXES = ("CodecEnc.", "CodecDec.", "vae.", "semantic_model.encoder.")
_log = logging.getLogger(__name__)
class _Namespace(nn.Module):
    """An empty container so submodule paths match the released key names (``vae.in_proj``, ...)."""


class WhisperXVAE(nn.Module):
    """Batched model. Inputs/outputs follow the reference: waves (B, 1, L), latents (B, T, z_dim)."""

    def __init__(self, cfg: WhisperXVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.CodecEnc = CodecEncoder(cfg.enc_base_width, list(cfg.enc_strides), cfg.enc_out_dim)
        self.CodecDec = CodecDecoder(cfg.enc_out_dim, cfg.dec_width, list(cfg.dec_rates))
        self.vae = _Namespace()
        self.vae.in_proj = nn.Conv1d(cfg.enc_out_dim, 2 * cfg.z_dim, 1)  # mean and log-scale
        self.vae.out_proj = nn.Conv1d(cfg.z_dim, cfg.enc_out_dim, 1)
        self.semantic_model = _Namespace()
        self.semantic_model.encoder = WhisperAudioEncoder(cfg.whisper_n_mels, cfg.whisper_n_ctx, cfg.whisper_width,
                                                          cfg.whisper_heads, cfg.whisper_layers)

    @property
    def hop(self) -> int:
        return math.prod(self.cfg.dec_rates)

    def acoustic_features(self, wav: torch.Tensor) -> torch.Tensor:
        """Wave (B, L) or (B, 1, L) -> (B, enc_out_dim, T) with T = L // 960."""
        return self.CodecEnc(wav[:, None] if wav.dim() == 2 else wav)

    def semantic_features(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Log-mel (B, n_mels, 3000) or (B, 1, n_mels, 3000) -> 25 Hz features (B, width, n_frames).

        The 50 Hz Whisper states are cropped to 2 * n_frames and averaged in pairs (2t, 2t + 1).
        """
        mel = mel[:, 0] if mel.dim() == 4 else mel
        states = self.semantic_model.encoder(mel)  # (B, 1500, width)
        if 2 * n_frames > states.shape[1]:
            raise T2AVError(f"audio VAE encode: {n_frames} latent frames exceed the 30-s Whisper window "
                            f"({states.shape[1] // 2} frames); encode at most 30 s of audio")
        b, _, w = states.shape
        pairs = states[:, : 2 * n_frames].reshape(b, n_frames, 2, w)
        return ((pairs[:, :, 0] + pairs[:, :, 1]) / 2).transpose(1, 2)

    def encode(self, wav: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Posterior mean latents (B, T, z_dim) of a 24 kHz wave and the Whisper log-mel of the same audio."""
        acoustic = self.acoustic_features(wav)
        h = acoustic + self.semantic_features(mel, acoustic.shape[-1])
        return self.vae.in_proj(h)[:, : self.cfg.z_dim].transpose(1, 2)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, z_dim) -> wave (B, 1, T * 960) in [-1, 1]."""
        return self.CodecDec(self.vae.out_proj(latents.transpose(1, 2)))

    def decoder_context_frames(self) -> int:
        """Latent frames each side that can influence a decoded sample (a safe upper bound).

        Walks the decoder backwards: k7 convs reach 3 samples, each residual stack 3 * (1 + 3 + 9)
        samples, and a transposed conv with kernel 2s reaches at most 2 input positions.
        """
        reach = 3  # last k7 conv, in output samples
        for rate in reversed(self.cfg.dec_rates):
            reach += 3 * (1 + 3 + 9)
            reach = math.ceil(reach / rate) + 2
        return reach + 3  # first k7 conv at the latent rate

    @torch.no_grad()
    def decode_chunked(self, latents: torch.Tensor, chunk_frames: int = 250, context_frames: int | None = None,
                       progress: ProgressFn | None = None) -> torch.Tensor:
        """Same as :meth:`decode` but decodes ``chunk_frames`` at a time with ``context_frames`` of overlap
        each side, so memory stays bounded for long audio. Output (B, 1, T * 960) on the CPU."""
        if chunk_frames < 1:
            raise T2AVError(f"chunk_frames must be >= 1, got {chunk_frames}")
        context = self.decoder_context_frames() if context_frames is None else context_frames
        b, t, _ = latents.shape
        hop = self.hop
        out = torch.empty(b, 1, t * hop, dtype=torch.float32)
        n_chunks = math.ceil(t / chunk_frames)
        for i, start in enumerate(range(0, t, chunk_frames)):
            stop = min(t, start + chunk_frames)
            lo, hi = max(0, start - context), min(t, stop + context)
            wave = self.decode(latents[:, lo:hi])
            out[..., start * hop: stop * hop] = wave[..., (start - lo) * hop: (stop - lo) * hop].float().cpu()
            if progress is not None:
                progress(i + 1, n_chunks)
        return out


_WN_SUFFIXES = {  # weight-norm tensor names -> role; hook-era names and parametrization names
    ".weight_g": "g", ".weight_v": "v",
    ".parametrizations.weight.original0": "g", ".parametrizations.weight.original1": "v",
}


def _split_weight_norm(name: str) -> tuple[str, str] | None:
    """('conv.prefix', 'g' | 'v') for a weight-norm tensor name, else None."""
    for suffix, role in _WN_SUFFIXES.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], role
    return None


def folded_keys(keys) -> set[str]:
    """The key names a state dict will have once its weight norm is folded."""
    out = set()
    for k in keys:
        split = _split_weight_norm(k)
        out.add(k if split is None else split[0] + ".weight")
    return out


def fold_weight_norm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every (g, v) pair by the effective ``weight`` = g * v / ||v|| (norm over all axes but 0, i.e.
    per input channel for transposed convs), computed with the op the reference's hook calls."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    out = {}
    for name, t in sd.items():
        split = _split_weight_norm(name)
        if split is None:
            out[name] = t
        else:
            parts.setdefault(split[0], {})[split[1]] = t
    for base, gv in parts.items():
        if set(gv) != {"g", "v"}:
            raise CheckpointError(f"audio VAE weights: '{base}' has only half of its weight-norm pair ({sorted(gv)})")
        out[base + ".weight"] = torch._weight_norm(gv["v"].float(), gv["g"].float(), 0)
    return out


def select_audio_vae_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the tensors encode/decode use (drops the Whisper text decoder and training-only modules)."""
    kept = {k: v for k, v in sd.items() if k.startswith(KEPT_PREFIXES)}
    if not kept:
        raise CheckpointError("no WhisperX-VAE tensors (CodecEnc.*, CodecDec.*, vae.*, semantic_model.encoder.*) "
                              "found; is this the whisperx-vae model.ckpt?")
    return kept


def check_audio_vae_keys(sd: dict[str, torch.Tensor], cfg: WhisperXVAEConfig) -> None:
    """Strict key matching (after folding names) against a model of ``cfg``, built on the meta device."""
    with torch.device("meta"):
        expected = set(WhisperXVAE(cfg).state_dict())
    have = folded_keys(sd)
    missing, unexpected = sorted(expected - have), sorted(have - expected)
    if missing or unexpected:
        raise CheckpointError(f"audio VAE weights do not match the model: missing {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{'...' if len(unexpected) > 5 else ''}")


def build_audio_vae(sd: dict[str, torch.Tensor], cfg: WhisperXVAEConfig | None = None,
                    whisper_heads: int | None = None, hyper_parameters: dict | None = None) -> WhisperXVAE:
    """A float32 CPU model from a (released-format) state dict, with strict key matching. Without ``cfg`` the
    config comes from :func:`config_from_checkpoint`."""
    sd = select_audio_vae_keys(sd)
    if cfg is None:
        cfg, note = config_from_checkpoint(sd, hyper_parameters, whisper_heads)
        if note:
            _log.warning("audio VAE: %s", note)
    if cfg.whisper_width % cfg.whisper_heads:
        raise CheckpointError(f"Whisper width {cfg.whisper_width} is not divisible by {cfg.whisper_heads} heads")
    check_audio_vae_keys(sd, cfg)
    with torch.device("meta"):  # no throw-away random init: the loaded tensors become the parameters
        model = WhisperXVAE(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in fold_weight_norm(sd).items()}, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"audio VAE weights have unexpected shapes: {e}") from e
    return model.eval().requires_grad_(False)


@dataclass
class ReferenceAudio:
    """The two copies of a reference clip that encoding needs, as ``infer.py`` prepares them."""

    audio_16k: torch.Tensor  # (N16,) at most 30 s, for the Whisper log-mel
    audio_24k: torch.Tensor  # (N24,) at most 30 s, for the acoustic encoder
    speech_len: int  # latent frames to encode


def prepare_reference_audio(raw: torch.Tensor, sample_rate: int) -> ReferenceAudio:
    """Mono mix, 16 kHz and 24 kHz copies (transform-path resampler, no clamping), 30-s cut, frame count."""
    if not isinstance(raw, torch.Tensor) or raw.dim() not in (1, 2) or not raw.is_floating_point():
        raise T2AVError("reference audio must be a float tensor (N,) or (channels, N)")
    if raw.dim() == 1:
        raw = raw[None]
    if raw.shape[0] > 16:
        raise T2AVError(f"reference audio has {raw.shape[0]} channels; pass (channels, N), not (N, channels)")
    if not torch.isfinite(raw).all():
        raise T2AVError("reference audio contains NaN or infinite samples")
    mono = raw.float().mean(dim=0)
    min_samples = math.ceil(sample_rate / FRAME_RATE)
    if mono.shape[0] < min_samples:
        raise T2AVError(f"reference audio is too short ({mono.shape[0]} samples at {sample_rate} Hz); "
                        f"it needs at least one 40-ms frame ({min_samples} samples)")
    a16 = resample(mono, sample_rate, MEL_SAMPLE_RATE)[:MEL_WINDOW_SAMPLES]
    a24 = resample(mono, sample_rate, SAMPLE_RATE)[: 30 * SAMPLE_RATE]
    return ReferenceAudio(a16, a24, speech_frames(a16.shape[0]))


class WhisperXVAECodec:
    """:class:`~t2av_core.interfaces.AudioCodec` over a :class:`WhisperXVAE`.

    ``encode`` returns float32 latents on the model's device; ``decode`` returns a float32 CPU wave and
    decodes in chunks of ``chunk_frames`` latent frames (bounded memory for minutes of audio).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, model: WhisperXVAE, chunk_frames: int = 250):
        self.model = model
        self.chunk_frames = chunk_frames

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def encode_prepared(self, ref: ReferenceAudio) -> torch.Tensor:
        """Latents (speech_len, 32) of a prepared clip (mel of the whole clip, wave cut to whole frames)."""
        mel = log_mel_spectrogram(ref.audio_16k.float().cpu())  # on the CPU in float32, as the reference
        wave = ref.audio_24k[: int(ref.speech_len * SAMPLE_RATE / FRAME_RATE)]
        if wave.shape[0] < HOP:
            raise T2AVError("audio is too short to encode: at least 40 ms (960 samples at 24 kHz) are needed")
        dev, dt = self.device, self.dtype
        with float32_cpu_convolutions(self.model):  # 16-bit weights on the CPU: see t2av_core.cpu_convs
            latents = self.model.encode(wave.to(dev, dt)[None, None], mel.to(dev, dt)[None])
        return latents[0].float()

    def encode_reference(self, raw: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The official reference-audio path: any rate, mono or (channels, N) -> latents (T, 32), <= 30 s."""
        return self.encode_prepared(prepare_reference_audio(raw, sample_rate))

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """Mono 24 kHz wave (N,) -> latents (T, 32) at 25 Hz (only the first 30 s are encoded)."""
        if not isinstance(wave, torch.Tensor) or wave.dim() != 1:
            shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
            raise T2AVError(f"encode expects a mono 24 kHz wave of shape (N,), got {shape}; mix stereo to mono "
                            "or use encode_reference(raw, sample_rate)")
        return self.encode_reference(wave, SAMPLE_RATE)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, progress: ProgressFn | None = None) -> torch.Tensor:
        """Latents (T, 32) -> mono 24 kHz wave (T * 960,) float32 on the CPU, in [-1, 1]."""
        z = self.model.cfg.z_dim
        if not isinstance(latents, torch.Tensor) or latents.dim() != 2 or latents.shape[1] != z:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise T2AVError(f"decode expects audio latents of shape (T, {z}), got {shape}")
        if latents.shape[0] == 0:
            raise T2AVError("decode got zero latent frames; nothing to decode")
        if not torch.isfinite(latents).all():
            raise T2AVError("audio latents contain NaN or infinite values")
        x = latents.to(self.device, self.dtype)[None]
        with float32_cpu_convolutions(self.model):
            return self.model.decode_chunked(x, self.chunk_frames, progress=progress)[0, 0]


def load_audio_vae(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, *,
                   whisper_heads: int | None = None, chunk_frames: int = 250) -> WhisperXVAECodec:
    """Load WhisperX-VAE from the released ``model.ckpt``, an official-key safetensors, or a converted file.

    A converted file carries its config in the header; otherwise sizes come from the weight shapes and the
    Whisper head count from ``whisper_heads``, else the released file's training config, else width / 64
    (see :func:`config_from_checkpoint`).
    """
    sd, hyper_parameters = load_weights_and_hyper_parameters(path)
    cfg = None
    header = read_component_config(path)
    if header is not None:
        component, config = header
        if component != COMPONENT:
            raise CheckpointError(f"{path} holds the '{component}' component, not '{COMPONENT}'")
        cfg = WhisperXVAEConfig.from_dict(config)
        if whisper_heads is not None:
            cfg = replace(cfg, whisper_heads=check_whisper_heads(whisper_heads, cfg.whisper_width))
    model = build_audio_vae(sd, cfg, whisper_heads, hyper_parameters)
    return WhisperXVAECodec(model.to(device=device, dtype=dtype), chunk_frames)
