"""Long form in the pipeline: a script of any length -> one continuous AV latent (see t2av_core.longform)."""

from __future__ import annotations

import torch

from ..interfaces import AudioCodec, ProgressFn, family_of
from ..longform import MAX_CHUNK_SECONDS, ChunkPrompt, ChunkResult, LongFormSettings, generate_long, plan_chunks
from .compat import check_fit, check_prompt_ids
from .conditions import FaceCondition, SamplerParts, VoiceCondition, require_loaded
from .encoding import encode_text
from .sampling import check_conditions, make_settings, reference_motion_of


def plan_script(tokenizer, text: str, long: LongFormSettings) -> list[ChunkPrompt]:
    """The script's chunks (sentence ends first), each encoded as a prompt of the tokenizer."""
    chunks = plan_chunks(text, long, max_chars=getattr(tokenizer, "max_text_chars", None))
    prompts = []
    for chunk in chunks:
        condition = encode_text(tokenizer, chunk)
        prompts.append(ChunkPrompt(condition.text, condition.prompt_ids, condition.template_ids))
    return prompts


def silence_latent(codec: AudioCodec) -> torch.Tensor:
    """The codec's latent frame of silence (32,), what a pause between chunks is made of."""
    with torch.inference_mode():
        wave = torch.zeros(codec.sample_rate)
        latents = codec.encode_reference(wave, codec.sample_rate) if hasattr(codec, "encode_reference") \
            else codec.encode(wave)
    return latents[latents.shape[0] // 2].float().cpu()


def sample_long(model, tokenizer, text: str, voice: VoiceCondition, face: FaceCondition, parts: SamplerParts,
                seed: int | None, long: LongFormSettings = LongFormSettings(), prefix_seconds: float = 0.0,
                motion: torch.Tensor | None = None, audio_codec: AudioCodec | None = None,
                progress: ProgressFn | None = None, on_chunk=None) -> tuple:
    """A script -> (AVLatents of the whole clip, one ChunkResult per chunk). Long or short, the text is planned
    into chunks of about ``long.chunk_seconds`` and generated as one continuous clip; ``prefix_seconds`` of the
    voice's reference replays before the first chunk, as in ``sample_av``. ``audio_codec`` makes the pauses
    between chunks (``long.pause_seconds``); ``on_chunk(index, count, text)`` runs as each chunk starts."""
    require_loaded(model, "talker")
    generator = check_conditions(model, voice, face)
    check_fit("tokenizer", family_of(tokenizer), "generator", generator, "the script")
    if long.pause_seconds and audio_codec is not None:
        check_fit("audio VAE", family_of(audio_codec), "generator", generator, "the pause")
    chunks = plan_script(require_loaded(tokenizer, "tokenizer"), text, long)
    for chunk in chunks:
        check_prompt_ids(chunk.prompt_ids, model)
    settings = make_settings(parts, seed, MAX_CHUNK_SECONDS, prefix_seconds)
    silence = silence_latent(audio_codec) if long.pause_seconds and audio_codec is not None else None
    av, results = generate_long(model, chunks, voice.speaker, reference_motion_of(voice, face, motion, prefix_seconds),
                                settings, long, seed, ref_audio_latents=voice.audio_latents,
                                silence_latent=silence, callback=progress, on_chunk=on_chunk)
    av.family = generator
    return av, results


__all__ = ["ChunkResult", "LongFormSettings", "plan_script", "sample_long", "silence_latent"]
