"""Encoding the conditions: text -> prompt ids, a voice recording -> speaker embedding (+ latents), a face
picture -> the renderer's face state, a video -> reference motion."""

from __future__ import annotations

import logging
import math

import torch

from ..errors import T2AVError
from ..interfaces import AUDIO_LATENT_DIM, FRAME_RATE, MOTION_LATENT_DIM, SPEAKER_DIM, AudioCodec, MotionRenderer
from ..interfaces import ProgressFn, SpeakerEncoder, family_of
from ..text.prompt import TEMPLATE_IDS, check_utf8
from .compat import check_fit
from .conditions import (MAX_REFERENCE_FRAMES, FaceCondition, TextBatch, TextCondition, VoiceCondition, check_stream,
                         require_loaded)

SHORT_VOICE_SECONDS = 3  # below this a speaker embedding is unreliable (the tooltips ask for 3-10 s)
_log = logging.getLogger(__name__)


def encode_text(tokenizer, text: str) -> TextCondition:
    """Text -> prompt ids in the released chat layout. Empty, over-long or non-UTF-8 text raises T2AVError."""
    if isinstance(text, str):
        check_utf8(text)  # whatever the tokenizer: bytes that are not UTF-8 are never silently dropped
    prompt = require_loaded(tokenizer, "tokenizer").build_prompt(text)
    return TextCondition(text=prompt.text, prompt_ids=prompt.prefix_ids.reshape(-1),
                         template_ids=getattr(tokenizer, "template_ids", TEMPLATE_IDS), family=family_of(tokenizer))


def encode_lines(tokenizer, text: str, where: str = "the text") -> TextBatch:
    """One prompt per non-empty line of ``text``, for a batch of clips. An empty text, or a line that is too
    long, raises T2AVError naming the line (``where`` says whose lines they are)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] if isinstance(text, str) else []
    if not lines:
        raise T2AVError(f"{where} holds no text: write one text per line, one clip each")
    conditions = []
    for number, line in enumerate(lines, 1):
        try:
            conditions.append(encode_text(tokenizer, line))
        except T2AVError as error:
            raise T2AVError(f"line {number} of {where}: {error} (one clip per line; a long script is read by "
                            f"the long-form sampler)") from None
    return TextBatch(tuple(conditions))


def to_mono(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(N,), (C, N) or ComfyUI's (B, C, N) -> (N,) float32 (channels averaged, first item of a batch),
    refusing empty, non-finite or silent audio. A samples-first (N, C) array, as soundfile returns, is
    recognised by its short second axis (at most 8 channels) and transposed."""
    from ..media.audio_io import channels_first, check_audio_usable
    wave = torch.as_tensor(wave)
    if wave.dim() == 3:
        wave = wave[0]
    if wave.dim() == 2:
        wave = channels_first(wave).float().mean(dim=0)
    if wave.dim() != 1:
        raise T2AVError(f"audio must be (samples,), (channels, samples) or (batch, channels, samples); "
                        f"got {tuple(wave.shape)}")
    _check_sample_rate(sample_rate)
    wave = wave.float()
    check_audio_usable(wave, sample_rate, min_seconds=0.0, what="the audio")  # empty, NaN/inf or silent
    return wave


def _check_sample_rate(sample_rate) -> None:
    try:
        valid = int(sample_rate) == sample_rate and sample_rate > 0
    except (TypeError, ValueError, OverflowError):  # None, text, NaN, inf
        valid = False
    if not valid:
        raise T2AVError(f"the sample rate must be a positive whole number of Hz, got {sample_rate}")


# Resampling reads only a few source samples past a cut (6 zero crossings of its filter: < 2 ms at 4 kHz), so
# the first 30 s of a clip resample the same whether or not the rest is there. One spare second (plus 8 samples
# for absurdly low rates) covers that filter and any codec that looks a little further ahead.
_REFERENCE_MARGIN_SECONDS = 1.0


def _reference_mono(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``to_mono`` of the part of a recording the recipe can use, cut before the channels are mixed."""
    from ..media.audio_io import channels_first
    wave = torch.as_tensor(wave)
    if wave.dim() == 3:
        wave = wave[0]
    if wave.dim() == 2:
        wave = channels_first(wave)
    _check_sample_rate(sample_rate)
    return to_mono(_reference_cut(wave, sample_rate), sample_rate)


def _reference_cut(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The part of a wave (..., N) at its own rate that the recipe can use: 30 s plus a margin. Cutting before
    resampling keeps an hour-long clip from being resampled whole for its first 30 s."""
    keep = math.ceil((MAX_REFERENCE_FRAMES / FRAME_RATE + _REFERENCE_MARGIN_SECONDS) * sample_rate) + 8
    return wave[..., :keep]


def _encode_latents(codec: AudioCodec, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    # The released recipe's own audio path when the codec has it (mel of the whole clip, 30-s cut).
    if hasattr(codec, "encode_reference"):
        latents = codec.encode_reference(wave, sample_rate)
    else:
        from ..audio.resample import resample
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
    return VoiceCondition(speaker=speaker, audio_latents=None, seconds=0.0, family=family_of(speaker_encoder))


def encode_voice(speaker_encoder: SpeakerEncoder, audio_codec: AudioCodec | None,
                 wave: torch.Tensor | None = None, sample_rate: int | None = None) -> VoiceCondition:
    """A recording of the voice -> speaker embedding, plus the clip's audio latents when ``audio_codec`` is
    given (a continuation prefix needs them). As in the released recipe at most 30 s are used, and the
    embedding and the latents cover the same whole number of 25 fps frames. Without a recording
    (``wave`` None) the encoder's default voice is used (``default_voice``): identity only, no latents."""
    from ..audio.resample import resample
    from ..speaker.encoder import talker_speaker_input, talker_speech_frames
    require_loaded(speaker_encoder, "speaker_encoder")
    if wave is None:
        return default_voice(speaker_encoder)
    if sample_rate is None:
        raise T2AVError("a voice recording needs its sample rate")
    wave = _reference_mono(wave, sample_rate)
    wave16 = resample(wave, sample_rate, speaker_encoder.sample_rate)[: 30 * speaker_encoder.sample_rate]
    frames = talker_speech_frames(wave16.numel())
    if frames < SHORT_VOICE_SECONDS * FRAME_RATE:
        _log.warning("the voice sample is only %.2f s long: the voice will be a rough match; 3-10 s of clean "
                     "speech give a much closer one", wave16.numel() / speaker_encoder.sample_rate)
    with torch.inference_mode():
        speaker = speaker_encoder.embed(talker_speaker_input(wave16)).float().cpu().reshape(-1)
    if speaker.numel() != SPEAKER_DIM:
        raise T2AVError(f"the speaker encoder returned {speaker.numel()} values, expected {SPEAKER_DIM}")
    latents = None
    if audio_codec is not None:
        check_fit("speaker encoder", family_of(speaker_encoder), "audio VAE", family_of(audio_codec),
                  "the voice's speaker embedding")
        with torch.inference_mode():
            latents = _encode_latents(audio_codec, wave, sample_rate)[:frames]
    return VoiceCondition(speaker=speaker, audio_latents=latents, seconds=frames / FRAME_RATE,
                          family=family_of(speaker_encoder))


def encode_audio(audio_codec: AudioCodec, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Any speech recording -> audio latents (T, 32) at 25 fps (at most 30 s): the fixed speech of the
    audio-driven mode."""
    wave = _reference_mono(wave, sample_rate)
    with torch.inference_mode():
        return _encode_latents(require_loaded(audio_codec, "audio_codec"), wave, sample_rate)[:MAX_REFERENCE_FRAMES]


def _image(image: torch.Tensor) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3 or image.shape[-1] not in (3, 4) or min(image.shape[:2]) < 1:
        raise T2AVError(f"the face must be an RGB image (H, W, 3); got shape {tuple(image.shape)}")
    from ..media.image_io import pixel_scale, unit_rgb
    return unit_rgb(image, pixel_scale(image, "the face picture"))  # uint8, 0..255 and RGBA as well


def default_face_image(renderer: MotionRenderer) -> torch.Tensor:
    """The picture a renderer brings along (the demo's drawn face, ``default_face()``), for runs without one.
    LIA-X has none: it raises T2AVError asking for a portrait."""
    make = getattr(renderer, "default_face", None)
    if make is None:
        raise T2AVError(f"no face picture was given, and the {type(renderer).__name__} renderer has no default "
                        "face: give a frontal portrait (any size)")
    return make()


def encode_face(renderer: MotionRenderer, image: torch.Tensor | None = None) -> FaceCondition:
    """A face picture (H, W, 3), or the first of a (B, H, W, 3) batch, of any size -> face. Floats in 0..1,
    uint8 and 0..255 floats are accepted; an RGBA picture is composited over white.
    Without a picture (``image`` None) the renderer's default face is used (``default_face_image``)."""
    require_loaded(renderer, "renderer")
    image = _image(default_face_image(renderer) if image is None else image)
    with torch.inference_mode():
        state = renderer.prepare_face(image)
        motion = renderer.encode_motion(image[None]).float().cpu()
    motion = check_stream(motion, MOTION_LATENT_DIM, "face motion")[0]
    return FaceCondition(state=state, motion=motion, image_size=renderer.image_size, family=family_of(renderer))


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
    """Video frames (T, H, W, 3) at ``fps`` -> raw motion codes (T', 40) at 25 fps, at most 30 s. Frames may
    be floats in 0..1, uint8 or 0..255 floats, and RGBA (composited over white), as for ``encode_face``."""
    require_loaded(renderer, "renderer")
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4) or frames.shape[0] == 0:
        raise T2AVError(f"reference frames must be a non-empty (T, H, W, 3) batch; got {tuple(frames.shape)}")
    from ..media.image_io import pixel_scale, unit_rgb
    frames = frames_at_25fps(frames, fps)[:MAX_REFERENCE_FRAMES]
    scale = pixel_scale(frames, "the reference frames")  # one rule for the whole clip, like a face picture
    codes = []
    with torch.inference_mode():
        for start in range(0, frames.shape[0], batch_size):
            chunk = unit_rgb(frames[start:start + batch_size], scale)
            codes.append(renderer.encode_motion(chunk).float().cpu())
            if progress is not None:
                progress(min(start + batch_size, frames.shape[0]), frames.shape[0])
    return check_stream(torch.cat(codes), MOTION_LATENT_DIM, "motion codes")
