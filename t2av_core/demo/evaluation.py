"""Generate with the demo bundle through the pipeline stages and measure the result (eval script, tests)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import pipeline
from ..interfaces import FRAME_RATE
from .bundle import DemoBundle
from .face import default_face
from .metrics import lip_sync_correlation


@dataclass
class DemoResult:
    text: str
    seconds: float          # generated length
    stop_reason: str
    lip_sync: float         # best correlation, |lag| <= 2 frames
    lag: int
    audio: torch.Tensor     # (T, 32) generated audio latents


def generate_clip(bundle: DemoBundle, text: str, seed: int = 0, max_seconds: float = 12.0):
    """text -> (AVLatents, wave, sample_rate) with the default voice and face, exactly as the CLI runs it."""
    condition = pipeline.encode_text(bundle.tokenizer, text)
    voice = pipeline.default_voice(bundle.speaker_encoder)  # bundle.default_speaker, marked as the demo's
    face = pipeline.encode_face(bundle.renderer, default_face(bundle.renderer.image_size))
    av = pipeline.sample_av(bundle.talker, condition, voice, face, pipeline.SamplerParts(), seed=seed,
                            max_seconds=max_seconds)
    wave, rate = pipeline.decode_audio(bundle.audio_codec, av)
    return av, wave, rate


def evaluate_text(bundle: DemoBundle, text: str, seed: int = 0, max_seconds: float = 12.0) -> DemoResult:
    av, wave, rate = generate_clip(bundle, text, seed, max_seconds)
    r, lag = lip_sync_correlation(av.motion_norm, wave, rate)
    return DemoResult(text, av.audio.shape[0] / FRAME_RATE, av.stop_reason, r, lag, av.audio)


def held_out_texts(count: int, seed: int = 1000, exclude: set[str] | None = None) -> list[str]:
    """Sentences from the demo grammar that the training corpus did not contain."""
    import random

    from .sentences import make_sentence
    rng, texts = random.Random(seed), []
    while len(texts) < count:
        text = make_sentence(rng)
        if text not in (exclude or set()) and text not in texts:
            texts.append(text)
    return texts
