"""The synthetic training corpus: sentence -> espeak-ng speech -> latents, voice vector and face motion.

Every clip is padded with silence to a whole number of 4-frame patches, so the last patch is real data and
the stop label falls exactly on the end of the speech.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..interfaces import FRAME_RATE
from .mel_codec import MelCodec
from .motion_track import speech_driven_motion
from .sentences import make_sentence
from .speech import SAMPLE_RATE, VOICES, synthesize
from .text import DemoTokenizer
from .voice import SpectralVoiceEmbedder

PATCH = 4
PATCH_SAMPLES = PATCH * SAMPLE_RATE // FRAME_RATE


@dataclass
class Clip:
    text: str
    voice: int                 # index into speech.VOICES
    prompt_ids: torch.Tensor   # (L,) int64
    audio: torch.Tensor        # (T, 32) codec latents, T a multiple of 4
    motion: torch.Tensor       # (T, 40) normalised motion
    speaker: torch.Tensor      # (256,)
    speech_frames: int         # frames of actual speech before the silence padding


def pad_to_patches(wave: torch.Tensor) -> torch.Tensor:
    extra = (-wave.numel()) % PATCH_SAMPLES
    return torch.nn.functional.pad(wave, (0, extra))


def make_clip(text: str, voice: int, codec: MelCodec, embedder: SpectralVoiceEmbedder,
              tokenizer: DemoTokenizer, generator: torch.Generator) -> Clip:
    speech = synthesize(text, VOICES[voice])
    wave = pad_to_patches(speech)
    motion = speech_driven_motion(wave, SAMPLE_RATE, generator)
    return Clip(text=text, voice=voice, prompt_ids=tokenizer.build_prompt(text).prefix_ids[0],
                audio=codec.encode(wave), motion=motion, speaker=embedder.embed(speech),
                speech_frames=round(speech.numel() * FRAME_RATE / SAMPLE_RATE))


def make_corpus(count: int, seed: int, codec: MelCodec, progress=None) -> list[Clip]:
    """``count`` clips; sentences, voices and motion randomness all follow ``seed``."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    embedder, tokenizer = SpectralVoiceEmbedder(), DemoTokenizer()
    clips = []
    for i in range(count):
        clips.append(make_clip(make_sentence(rng), rng.randrange(len(VOICES)), codec, embedder, tokenizer,
                               generator))
        if progress is not None:
            progress(i + 1, count)
    return clips


def corpus_texts(count: int, seed: int) -> list[str]:
    """The sentences ``make_corpus(count, seed)`` speaks, without synthesising them (to hold them out)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        texts.append(make_sentence(rng))
        rng.randrange(len(VOICES))
    return texts
