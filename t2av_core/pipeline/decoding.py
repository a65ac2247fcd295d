"""Editing and decoding the joint latents: split and join the streams, decode speech, render frames, write
the mp4."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Iterable, Iterator

import torch

from ..errors import T2AVError, check_number
from ..generate import AVLatents
from ..interfaces import AUDIO_LATENT_DIM, FRAME_RATE, MOTION_LATENT_DIM, AudioCodec, MotionRenderer, ProgressFn
from ..interfaces import family_of
from .compat import check_fit
from ..motion_stats import motion_stats, normalize_motion
from .conditions import PATCH_FRAMES, FaceCondition, check_stream, require_loaded


def av_streams(av) -> tuple[torch.Tensor, torch.Tensor]:
    """AVLatents -> (audio latents (T, 32), raw motion (T, 40))."""
    return av.audio, av.motion_raw()


JOIN_LENGTHS = ("equal", "shorter", "audio")


def join_av(audio: torch.Tensor, motion: torch.Tensor, length: str = "equal"):
    """Audio latents (T, 32) + raw motion (T', 40), e.g. edited separately -> AVLatents (frame-aligned, 25 fps).

    ``length`` when T != T': "equal" refuses, "shorter" cuts both to the shorter, "audio" keeps the audio's
    length and cuts the motion or holds its last pose (speech decides how long a clip is)."""
    audio = check_stream(audio, AUDIO_LATENT_DIM, "audio latents")
    motion = check_stream(motion, MOTION_LATENT_DIM, "motion")
    if length not in JOIN_LENGTHS:
        raise T2AVError(f"length must be one of {', '.join(JOIN_LENGTHS)}, got {length!r}")
    if audio.shape[0] != motion.shape[0]:
        if length == "equal":
            raise T2AVError(f"audio ({audio.shape[0]} frames) and motion ({motion.shape[0]} frames) are not equally "
                            "long at 25 fps: set length to 'shorter' or 'audio', or cut one with Trim AV Latent")
        if length == "shorter":
            frames = min(audio.shape[0], motion.shape[0])
            audio, motion = audio[:frames], motion[:frames]
        else:
            hold = motion[-1:].expand(max(0, audio.shape[0] - motion.shape[0]), -1)
            motion = torch.cat([motion[:audio.shape[0]], hold])
    mean, std = motion_stats()
    return AVLatents(audio=audio, motion_norm=normalize_motion(motion, mean, std), motion_mean=mean,
                     motion_std=std, prefix_frames=0, n_steps=audio.shape[0] // PATCH_FRAMES, stop_reason="joined")


def trim_av(av, start_seconds: float = 0.0, end_seconds: float | None = None):
    """The part of an AV latent from ``start_seconds`` to ``end_seconds`` (None: to the end), cut at 25 fps frame
    boundaries; both streams stay aligned, and the prefix shrinks with a cut start."""
    total = av.audio.shape[0]
    end_seconds = total / FRAME_RATE if end_seconds is None else end_seconds
    for name, value in (("start_seconds", start_seconds), ("end_seconds", end_seconds)):
        check_number(name, value, minimum=0)
    start, end = round(start_seconds * FRAME_RATE), min(total, round(end_seconds * FRAME_RATE))
    if end <= start:
        raise T2AVError(f"nothing left: the clip is {total / FRAME_RATE:.2f} s long and the cut keeps "
                        f"{start / FRAME_RATE:.2f} s .. {end / FRAME_RATE:.2f} s")
    return dataclasses.replace(av, audio=av.audio[start:end], motion_norm=av.motion_norm[start:end],
                               prefix_frames=max(0, av.prefix_frames - start), stop_reason="trimmed")


def decode_audio(codec: AudioCodec, av, progress: ProgressFn | None = None) -> tuple[torch.Tensor, int]:
    """AVLatents -> (mono wave (T * rate / 25,), rate): exactly as long as the video of the same latents."""
    require_loaded(codec, "audio_codec")
    check_fit("generator", av.family, "audio VAE", family_of(codec), "the audio latents")
    latents = check_stream(av.audio, AUDIO_LATENT_DIM, "audio latents")
    with torch.inference_mode():
        wave = codec.decode(latents, progress=progress).float().cpu().reshape(-1)
    _check_finite_output(wave, "audio decoding", "samples", "audio VAE")
    wanted = latents.shape[0] * codec.sample_rate // FRAME_RATE
    wave = torch.nn.functional.pad(wave[:wanted], (0, max(0, wanted - wave.numel())))
    return wave.clamp(-1, 1), codec.sample_rate


def render_frames(renderer: MotionRenderer, face: FaceCondition, av, batch_size: int = 8,
                  progress: ProgressFn | None = None) -> Iterator[torch.Tensor]:
    """AVLatents + face -> consecutive batches of frames (n, S, S, 3) float32 in 0..1 at 25 fps, rendered as
    they are consumed, so a clip of any length can be written (``mux``) without holding all its frames."""
    require_loaded(renderer, "renderer")
    check_fit("generator", av.family, "video model", family_of(renderer), "the face motion")
    check_fit("video model", face.family, "video model", family_of(renderer), "the face")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise T2AVError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    motion = check_stream(av.motion_raw(), MOTION_LATENT_DIM, "motion")
    total = motion.shape[0]
    for start in range(0, total, batch_size):
        with torch.inference_mode():
            frames = renderer.render(face.state, motion[start:start + batch_size], batch_size=batch_size)
        frames = frames.float().cpu()
        _check_finite_output(frames, "video decoding", "pixels", "face renderer")
        # Frames are 0..1 by the MotionRenderer contract; only a renderer that breaks it pays for the clamp.
        if frames.min() < 0 or frames.max() > 1:
            frames = frames.clamp(0, 1)
        if progress is not None:  # may raise to cancel
            progress(start + frames.shape[0], total)
        yield frames


def decode_video(renderer: MotionRenderer, face: FaceCondition, av, batch_size: int = 8,
                 progress: ProgressFn | None = None) -> torch.Tensor:
    """AVLatents + face -> frames (T, S, S, 3) float32 in 0..1 at 25 fps, in one tensor (T * S * S * 12 bytes:
    9.4 GB for a minute at 512x512; ``render_frames`` streams instead)."""
    batches = render_frames(renderer, face, av, batch_size, progress)
    first = next(batches)
    out = torch.empty(av.motion_raw().shape[0], *first.shape[1:])
    out[:first.shape[0]] = first
    done = first.shape[0]
    for frames in batches:
        out[done:done + frames.shape[0]] = frames
        done += frames.shape[0]
    return out


def mux(path: str | Path, frames: torch.Tensor | Iterable[torch.Tensor], wave: torch.Tensor | None,
        sample_rate: int | None, fps: float = FRAME_RATE) -> Path:
    """Frames in 0..1 + mono wave -> H.264/AAC mp4; the audio is cut or padded to T / fps s.

    ``frames``: a (T, H, W, 3) tensor, or an iterable of (n, H, W, 3) batches (e.g. ``render_frames``), which is
    written as it comes. The file appears at ``path`` only once it is complete (``t2av_core.atomic``)."""
    from fractions import Fraction

    from ..media.video_io import write_mp4
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise T2AVError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(frames, torch.Tensor):
        if frames.dim() != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            raise T2AVError(f"frames must be a non-empty (T, H, W, 3) batch; got {tuple(frames.shape)}")
        frames = [frames]
    if wave is not None:
        wave = torch.as_tensor(wave).float()
        wave = wave.mean(dim=0) if wave.dim() == 2 else wave.reshape(-1)
    write_mp4(path, (frame for batch in frames for frame in _frame_batch(batch)), wave, sample_rate,
              Fraction(fps).limit_denominator(1001))
    return Path(path)


def _frame_batch(batch) -> torch.Tensor:
    batch = torch.as_tensor(batch)
    if batch.dim() != 4 or batch.shape[-1] != 3:
        raise T2AVError(f"each batch of frames must be (n, H, W, 3); got {tuple(batch.shape)}")
    return batch


def _check_finite_output(x: torch.Tensor, stage: str, what: str, model: str) -> None:
    if not torch.isfinite(x).all():
        raise T2AVError(f"{stage} produced NaN or infinite {what}: the {model}'s weights are damaged, or its "
                        "precision overflows (try fp32). Nothing was written")
