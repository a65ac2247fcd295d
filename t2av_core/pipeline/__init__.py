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

from ..interfaces import AUDIO_LATENT_DIM, FRAME_RATE, MOTION_LATENT_DIM  # noqa: F401  (re-exported)
from .compat import check_tokenizer
from .conditions import (MAX_REFERENCE_FRAMES, PATCH_FRAMES, FaceCondition, SamplerParts, TextBatch, TextCondition,
                         VoiceCondition, check_stream)
from .decoding import JOIN_LENGTHS, av_streams, decode_audio, decode_video, join_av, mux, render_frames, trim_av
from .encoding import (default_face_image, default_voice, encode_audio, encode_face, encode_lines, encode_text,
                       encode_voice, frames_at_25fps, reference_motion, to_mono)
from .loading import (PRECISIONS, Models, cpu_accelerates_bf16, describe_precision, load_audio_codec, load_models,
                      load_renderer, load_speaker_encoder, load_talker, load_tokenizer, model_dtype, resolve_dtype,
                      torch_module)
from .longform import ChunkResult, LongFormSettings, plan_script, sample_long
from .sampling import SOLVERS, make_settings, sample_av, sample_batch, sway_sigmas

__all__ = [
    "AUDIO_LATENT_DIM", "FRAME_RATE", "MOTION_LATENT_DIM", "MAX_REFERENCE_FRAMES", "PATCH_FRAMES", "PRECISIONS",
    "SOLVERS", "JOIN_LENGTHS", "FaceCondition", "Models", "SamplerParts", "TextBatch", "TextCondition",
    "VoiceCondition", "ChunkResult", "LongFormSettings",
    "av_streams", "check_stream", "check_tokenizer", "cpu_accelerates_bf16", "decode_audio", "decode_video",
    "default_face_image", "default_voice", "describe_precision", "encode_audio", "encode_face", "encode_lines",
    "encode_text", "encode_voice", "frames_at_25fps", "join_av", "load_audio_codec", "load_models", "load_renderer",
    "load_speaker_encoder", "load_talker", "load_tokenizer", "make_settings", "model_dtype", "mux", "plan_script",
    "reference_motion", "render_frames", "resolve_dtype", "sample_av", "sample_batch", "sample_long", "sway_sigmas",
    "to_mono", "torch_module", "trim_av",
]
