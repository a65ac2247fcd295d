"""The generation pipeline as plain stage functions, shared by the ComfyUI nodes and the command line.

Each stage takes loaded models and small condition objects and returns tensors; nothing here knows about
ComfyUI. A full text-to-video run is::

    models = load_models(talker="model.safetensors", tokenizer="tokenizer.json", audio_codec="model.ckpt",
                         renderer="lia-x.pt", speaker_encoder="wavlm_large_finetune.pth")
    text  = encode_text(models.tokenizer, "Hello there.")
    voice = encode_voice(models.speaker_encoder, models.audio_codec, ref_wave, ref_rate)   # who speaks
    face  = encode_face(models.renderer, ref_image)                                        # who is seen
    av    = sample_av(models.talker, text, voice, face, SamplerParts(), seed=0)            # 25 fps latents
    wave, rate = decode_audio(models.audio_codec, av)
    frames     = decode_video(models.renderer, face, av)
    mux("out.mp4", frames, wave, rate)

Streams are frames-first at 25 frames per second: audio latents (T, 32) and raw LIA-X motion codes
(T, 40), the form the renderer reads and writes. The generator normalises motion internally; the joint
result (``AVLatents``) keeps it normalised, with ``motion_raw()`` to get raw codes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import T2AVError
from .generate import AVLatents, GenerationSettings, generate_av
from .sampling import SOLVERS as CORE_SOLVERS
from .interfaces import (AUDIO_LATENT_DIM, FRAME_RATE, MOTION_LATENT_DIM, SPEAKER_DIM, AudioCodec,
                         MotionRenderer, ProgressFn, SpeakerEncoder)
from .motion_stats import motion_stats, normalize_motion

PATCH_FRAMES = 4            # one backbone position carries 4 frames of each stream
MAX_REFERENCE_FRAMES = 750  # the released recipe reads at most 30 s of reference audio / motion
SOLVERS = tuple(CORE_SOLVERS)  # the core flow solvers, by name
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------------------------------------
# What passes between the stages


@dataclass(frozen=True)
class TextCondition:
    """What the backbone reads before the first audio/video patch."""
    text: str
    prompt_ids: torch.Tensor  # (L,) int64: chat-template ids up to the first speech placeholder


@dataclass(frozen=True)
class VoiceCondition:
    """Who speaks: a speaker embedding, and optionally the reference clip's audio latents (for a prefix)."""
    speaker: torch.Tensor               # (256,) float32
    audio_latents: torch.Tensor | None  # (T, 32) at 25 fps, the whole reference (<= 30 s); None: identity only
    seconds: float                      # length of the reference that was used


@dataclass(frozen=True)
class FaceCondition:
    """Who is seen: the renderer's prepared face and the face's own raw motion code."""
    state: Any                  # renderer-specific (e.g. LIA-X identity code and feature maps)
    motion: torch.Tensor        # (40,) raw motion code of the face picture; conditions the motion head
    image_size: int             # side of the rendered square frames


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


# ----------------------------------------------------------------------------------------------------------
# Loading


def resolve_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """"auto" is bfloat16 on a GPU that supports it, float16 on other GPUs and MPS, float32 on the CPU."""
    if precision not in PRECISIONS:
        raise T2AVError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return _DTYPES[precision]
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.float32


def model_dtype(precision: str, device: torch.device | str, side_model: bool = False) -> torch.dtype:
    """The dtype to load a model's weights in. Under "auto" only the backbone drops to 16 bits on a GPU: the
    side models (audio VAE, LIA-X, speaker encoder) are small and their decoders are sensitive to rounding."""
    if side_model and precision == "auto":
        return torch.float32
    return resolve_dtype(precision, device)


def _existing(path: str | Path, what: str) -> str:
    if not Path(path).exists():
        raise T2AVError(f"{what} not found: {path}")
    return str(path)


def load_talker(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """Backbone + flow heads from the released model.safetensors (or a folder holding it, or a converted file)."""
    from .model.talker import load_talker as load
    return load(_existing(path, "Talker-T2AV model"), device=device, dtype=dtype)


def load_tokenizer(path: str | Path):
    """The Qwen3 tokenizer: a tokenizer.json, or the folder holding it."""
    from .text.prompt import TalkerTokenizer
    return TalkerTokenizer.from_dir(_existing(path, "tokenizer"))


def load_audio_codec(path: str | Path, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> AudioCodec:
    """WhisperX-VAE from the released model.ckpt or a converted .safetensors."""
    from .audio.whisperx_vae import load_audio_vae
    return load_audio_vae(_existing(path, "audio VAE"), device=device, dtype=dtype)


def load_renderer(path: str | Path, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> MotionRenderer:
    """LIA-X from the released lia-x.pt or a converted .safetensors."""
    from .video.lia_x import load_lia_x
    return load_lia_x(_existing(path, "LIA-X video model"), device=device, dtype=dtype)


def load_speaker_encoder(path: str | Path, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> SpeakerEncoder:
    """WavLM-Large + ECAPA from the released wavlm_large_finetune.pth or a converted .safetensors."""
    from .speaker.encoder import load_speaker_encoder as load
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
                precision: str = "auto") -> Models:
    """Load whichever parts are given, at the dtypes of :func:`model_dtype`."""
    dtype = model_dtype(precision, device)
    side_dtype = model_dtype(precision, device, side_model=True)
    return Models(
        talker=None if talker is None else load_talker(talker, device, dtype),
        tokenizer=None if tokenizer is None else load_tokenizer(tokenizer),
        audio_codec=None if audio_codec is None else load_audio_codec(audio_codec, device, side_dtype),
        renderer=None if renderer is None else load_renderer(renderer, device, side_dtype),
        speaker_encoder=None if speaker_encoder is None else load_speaker_encoder(speaker_encoder, device, side_dtype),
    )


# ----------------------------------------------------------------------------------------------------------
# Encoding the conditions


def encode_text(tokenizer, text: str) -> TextCondition:
    """Text -> prompt ids in the released chat layout. Empty or over-long text raises T2AVError."""
    prompt = _loaded(tokenizer, "tokenizer").build_prompt(text)
    return TextCondition(text=prompt.text, prompt_ids=prompt.prefix_ids.reshape(-1))


def to_mono(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(N,), (C, N) or ComfyUI's (B, C, N) -> (N,) float32 (channels averaged, first item of a batch),
    refusing empty, non-finite or silent audio."""
    wave = torch.as_tensor(wave)
    if wave.dim() == 3:
        wave = wave[0]
    if wave.dim() == 2:
        wave = wave.float().mean(dim=0)
    if wave.dim() != 1:
        raise T2AVError(f"audio must be (samples,), (channels, samples) or (batch, channels, samples); "
                        f"got {tuple(wave.shape)}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise T2AVError(f"the sample rate must be a positive whole number of Hz, got {sample_rate}")
    from .media.audio_io import check_audio_usable
    wave = wave.float()
    check_audio_usable(wave, sample_rate, min_seconds=0.0, what="the audio")  # empty, NaN/inf or silent
    return wave


def _encode_latents(codec: AudioCodec, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    # The released recipe's own audio path when the codec has it (mel of the whole clip, 30-s cut).
    if hasattr(codec, "encode_reference"):
        latents = codec.encode_reference(wave, sample_rate)
    else:
        from .audio.resample import resample
        latents = codec.encode(resample(wave, sample_rate, codec.sample_rate))
    return check_stream(latents.float().cpu(), AUDIO_LATENT_DIM, "audio latents")


def default_voice(speaker_encoder: SpeakerEncoder) -> VoiceCondition:
    """The voice an encoder brings along (the demo's ``default_speaker``), for runs without a recording.
    The released WavLM-ECAPA encoder has none: it raises T2AVError asking for a recording."""
    speaker = getattr(speaker_encoder, "default_speaker", None)
    if speaker is None:
        raise T2AVError(f"no voice recording was given, and the {type(speaker_encoder).__name__} speaker encoder "
                        "has no default voice: give 3-10 s of clean speech of the voice to clone")
    speaker = torch.as_tensor(speaker).float().cpu().reshape(-1)
    if speaker.numel() != SPEAKER_DIM:
        raise T2AVError(f"the default voice has {speaker.numel()} values, expected {SPEAKER_DIM}")
    return VoiceCondition(speaker=speaker, audio_latents=None, seconds=0.0)


def encode_voice(speaker_encoder: SpeakerEncoder, audio_codec: AudioCodec | None,
                 wave: torch.Tensor | None = None, sample_rate: int | None = None) -> VoiceCondition:
    """A recording of the voice -> speaker embedding, plus the clip's audio latents when ``audio_codec`` is
    given (a continuation prefix needs them). As in the released recipe at most 30 s are used, and the
    embedding and the latents cover the same whole number of 25 fps frames. Without a recording
    (``wave`` None) the encoder's default voice is used (``default_voice``): identity only, no latents."""
    from .audio.resample import resample
    from .speaker.encoder import talker_speaker_input, talker_speech_frames
    _loaded(speaker_encoder, "speaker_encoder")
    if wave is None:
        return default_voice(speaker_encoder)
    if sample_rate is None:
        raise T2AVError("a voice recording needs its sample rate")
    wave = to_mono(wave, sample_rate)
    wave16 = resample(wave, sample_rate, speaker_encoder.sample_rate)[: 30 * speaker_encoder.sample_rate]
    frames = talker_speech_frames(wave16.numel())
    with torch.inference_mode():
        speaker = speaker_encoder.embed(talker_speaker_input(wave16)).float().cpu().reshape(-1)
    if speaker.numel() != SPEAKER_DIM:
        raise T2AVError(f"the speaker encoder returned {speaker.numel()} values, expected {SPEAKER_DIM}")
    latents = None
    if audio_codec is not None:
        with torch.inference_mode():
            latents = _encode_latents(audio_codec, wave, sample_rate)[:frames]
    return VoiceCondition(speaker=speaker, audio_latents=latents, seconds=frames / FRAME_RATE)


def encode_audio(audio_codec: AudioCodec, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Any speech recording -> audio latents (T, 32) at 25 fps (at most 30 s): the fixed speech of the
    audio-driven mode."""
    with torch.inference_mode():
        return _encode_latents(_loaded(audio_codec, "audio_codec"), to_mono(wave, sample_rate), sample_rate)


def _image(image: torch.Tensor) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3 or image.shape[-1] not in (3, 4) or min(image.shape[:2]) < 1:
        raise T2AVError(f"the face must be an RGB image (H, W, 3); got shape {tuple(image.shape)}")
    return image[..., :3].float().clamp(0, 1)


def default_face_image(renderer: MotionRenderer) -> torch.Tensor:
    """The picture a renderer brings along (the demo's drawn face, ``default_face()``), for runs without one.
    LIA-X has none: it raises T2AVError asking for a portrait."""
    make = getattr(renderer, "default_face", None)
    if make is None:
        raise T2AVError(f"no face picture was given, and the {type(renderer).__name__} renderer has no default "
                        "face: give a frontal portrait (any size)")
    return make()


def encode_face(renderer: MotionRenderer, image: torch.Tensor | None = None) -> FaceCondition:
    """A face picture (H, W, 3), or the first of a (B, H, W, 3) batch, in 0..1 and of any size -> face.
    Without a picture (``image`` None) the renderer's default face is used (``default_face_image``)."""
    _loaded(renderer, "renderer")
    image = _image(default_face_image(renderer) if image is None else image)
    with torch.inference_mode():
        state = renderer.prepare_face(image)
        motion = renderer.encode_motion(image[None]).float().cpu()
    motion = check_stream(motion, MOTION_LATENT_DIM, "face motion")[0]
    return FaceCondition(state=state, motion=motion, image_size=renderer.image_size)


def frames_at_25fps(frames: torch.Tensor, fps: float) -> torch.Tensor:
    """The source frame on screen at each 25 fps instant (no blending: motion codes are per frame)."""
    if not fps > 0:
        raise T2AVError(f"the frame rate must be positive, got {fps}")
    if abs(fps - FRAME_RATE) < 1e-6:
        return frames
    count = max(1, int(frames.shape[0] / fps * FRAME_RATE + 1e-6))
    index = (torch.arange(count, dtype=torch.float64) * fps / FRAME_RATE + 1e-6).floor().long()
    return frames[index.clamp_max(frames.shape[0] - 1)]


def reference_motion(renderer: MotionRenderer, frames: torch.Tensor, fps: float = FRAME_RATE,
                     batch_size: int = 8, progress: ProgressFn | None = None) -> torch.Tensor:
    """Video frames (T, H, W, 3) in 0..1 at ``fps`` -> raw motion codes (T', 40) at 25 fps, at most 30 s."""
    _loaded(renderer, "renderer")
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4) or frames.shape[0] == 0:
        raise T2AVError(f"reference frames must be a non-empty (T, H, W, 3) batch; got {tuple(frames.shape)}")
    frames = frames_at_25fps(frames, fps)[:MAX_REFERENCE_FRAMES]
    codes = []
    with torch.inference_mode():
        for start in range(0, frames.shape[0], batch_size):
            chunk = frames[start:start + batch_size, ..., :3].float().clamp(0, 1)
            codes.append(renderer.encode_motion(chunk).float().cpu())
            if progress is not None:
                progress(min(start + batch_size, frames.shape[0]), frames.shape[0])
    return check_stream(torch.cat(codes), MOTION_LATENT_DIM, "motion codes")


# ----------------------------------------------------------------------------------------------------------
# Joint sampling


def sway_sigmas(steps: int = 10, sway: float = 1.0) -> torch.Tensor:
    """The released time grid (steps + 1 values from 1 down to 0) as a tensor, e.g. for ComfyUI SIGMAS."""
    from .sampling import SwaySchedule
    return SwaySchedule(int(steps), float(sway)).grid(dtype=torch.float32)


def make_settings(parts: SamplerParts, seed: int, max_seconds: float, prefix_seconds: float):
    """Core GenerationSettings for one run. Noise comes from a CPU generator seeded with ``seed``, so a seed
    gives the same result on any device. GenerationSettings validates every value."""
    times = None if parts.sigmas is None else tuple(torch.as_tensor(parts.sigmas).reshape(-1).tolist())
    return GenerationSettings(solver=parts.solver, cfm_steps=parts.steps, sway=parts.sway, times=times,
                              temperature=parts.temperature, cfg_scale=parts.cfg, zero_star=parts.zero_star,
                              prefix_seconds=prefix_seconds, max_seconds=max_seconds, seed=int(seed))


def sample_av(model, text: TextCondition, voice: VoiceCondition, face: FaceCondition, parts: SamplerParts,
              seed: int, max_seconds: float = 30.0, prefix_seconds: float = 0.0,
              motion: torch.Tensor | None = None, given_audio: torch.Tensor | None = None,
              given_motion: torch.Tensor | None = None, progress: ProgressFn | None = None):
    """Run the autoregressive loop: one backbone step and two flow-head draws per 4-frame patch (0.16 s).

    ``max_seconds`` caps the generated part (the stop head usually ends earlier); ``prefix_seconds`` of the
    reference (the voice's audio latents + ``motion``, raw codes at 25 fps) are replayed first as a
    continuation prefix. Without ``motion`` the prefix shows the still face. ``given_audio`` (T, 32) makes
    the run audio-driven (speech fixed, motion drawn); ``given_motion`` (T, 40 raw) is dubbing (motion
    fixed, speech drawn); a given stream sets the length. ``progress(done, total)`` is called once per
    patch; raising in it stops the run. Returns the core ``AVLatents``, prefix included."""
    _loaded(model, "talker")
    settings = make_settings(parts, seed, max_seconds, prefix_seconds)
    prefix = int(prefix_seconds * FRAME_RATE) // PATCH_FRAMES * PATCH_FRAMES
    if prefix and voice.audio_latents is None:
        raise T2AVError("prefix_seconds > 0 needs the reference audio latents: encode the voice with the audio "
                        "VAE connected, or set prefix_seconds to 0")
    if motion is not None:
        face_motion = check_stream(motion, MOTION_LATENT_DIM, "reference motion")
    else:  # the motion head's condition is the face itself; a prefix then holds the still face
        face_motion = face.motion[None].expand(max(prefix, 1), -1)
    return generate_av(model, text.prompt_ids, voice.speaker, face_motion, settings,
                       given_audio=given_audio, given_motion=given_motion, callback=progress,
                       ref_audio_latents=voice.audio_latents)


# ----------------------------------------------------------------------------------------------------------
# Editing and decoding the joint latents


def av_streams(av) -> tuple[torch.Tensor, torch.Tensor]:
    """AVLatents -> (audio latents (T, 32), raw motion (T, 40))."""
    return av.audio, av.motion_raw()


def join_av(audio: torch.Tensor, motion: torch.Tensor):
    """Audio latents (T, 32) + raw motion (T, 40), e.g. edited separately -> AVLatents. Both streams are
    frame-aligned at 25 fps, so they must be equally long."""
    audio = check_stream(audio, AUDIO_LATENT_DIM, "audio latents")
    motion = check_stream(motion, MOTION_LATENT_DIM, "motion")
    if audio.shape[0] != motion.shape[0]:
        raise T2AVError(f"audio ({audio.shape[0]} frames) and motion ({motion.shape[0]} frames) must be equally "
                        "long at 25 fps: trim one of them first")
    mean, std = motion_stats()
    return AVLatents(audio=audio, motion_norm=normalize_motion(motion, mean, std), motion_mean=mean,
                     motion_std=std, prefix_frames=0, n_steps=audio.shape[0] // PATCH_FRAMES, stop_reason="joined")


def decode_audio(codec: AudioCodec, av, progress: ProgressFn | None = None) -> tuple[torch.Tensor, int]:
    """AVLatents -> (mono wave (T * rate / 25,), rate): exactly as long as the video of the same latents."""
    _loaded(codec, "audio_codec")
    latents = check_stream(av.audio, AUDIO_LATENT_DIM, "audio latents")
    with torch.inference_mode():
        wave = codec.decode(latents, progress=progress).float().cpu().reshape(-1)
    wanted = latents.shape[0] * codec.sample_rate // FRAME_RATE
    wave = torch.nn.functional.pad(wave[:wanted], (0, max(0, wanted - wave.numel())))
    return wave.clamp(-1, 1), codec.sample_rate


def decode_video(renderer: MotionRenderer, face: FaceCondition, av, batch_size: int = 8,
                 progress: ProgressFn | None = None) -> torch.Tensor:
    """AVLatents + face -> frames (T, S, S, 3) float32 in 0..1 at 25 fps, rendered ``batch_size`` at a time."""
    _loaded(renderer, "renderer")
    if batch_size < 1:
        raise T2AVError(f"batch_size must be at least 1, got {batch_size}")
    motion = check_stream(av.motion_raw(), MOTION_LATENT_DIM, "motion")
    with torch.inference_mode():
        frames = renderer.render(face.state, motion, batch_size=int(batch_size), progress=progress).float().cpu()
    # Frames are 0..1 by the MotionRenderer contract; clamping anyway would copy the whole clip (9.4 GB for a
    # minute at 512x512), so only a renderer that breaks the contract pays for it.
    if frames.min() < 0 or frames.max() > 1:
        frames = frames.clamp(0, 1)
    return frames


def mux(path: str | Path, frames: torch.Tensor, wave: torch.Tensor | None, sample_rate: int | None,
        fps: float = FRAME_RATE) -> Path:
    """Frames (T, H, W, 3) in 0..1 + mono wave -> H.264/AAC mp4; the audio is cut or padded to T / fps s."""
    from fractions import Fraction

    from .media.video_io import write_mp4
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise T2AVError(f"frames must be a non-empty (T, H, W, 3) batch; got {tuple(frames.shape)}")
    if wave is not None:
        wave = torch.as_tensor(wave).float()
        wave = wave.mean(dim=0) if wave.dim() == 2 else wave.reshape(-1)
    write_mp4(path, frames, wave, sample_rate, Fraction(fps).limit_denominator(1001))
    return Path(path)


# ----------------------------------------------------------------------------------------------------------
# Small helpers


def _loaded(model, name: str):
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
