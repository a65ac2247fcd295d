"""Long form: a script of any length becomes one continuous clip, generated chunk by chunk.

The model was trained on clips of up to 30 s, and its released continuation mechanism is the reference prefix.
So a long text is cut at sentence (then clause) ends into chunks of about ``chunk_seconds`` of speech
(:func:`plan_chunks`), and :func:`generate_long` generates them in order, each one continuing from the end of
the previous one: its last ``prefix_seconds`` of audio latents and motion are replayed as the prefix (with the
"speech + video" task tag), so voice, prosody, head pose and expression carry across the join. The speaker
embedding and the motion head's first-frame condition (the face's own frame) stay the same throughout.

Joins are frame-exact: a chunk's replayed prefix is dropped, so no frame appears twice, and the latents are
decoded as one stream afterwards (no click, gap or jump at a join). Only the current chunk's KV cache exists
at any time. One seed gives the same whole result: chunk i draws its noise from a seed derived from (seed, i).
Progress is one bar over all chunks: its total (every chunk's step budget) is known up front, and it jumps to
the next chunk's start when the stop head ends a chunk early.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .errors import T2AVError, check_number
from .generate import AVLatents, GenerationSettings, generate_av, step_budget
from .interfaces import FRAME_RATE, ProgressFn
from .motion_stats import denormalize_motion, motion_stats
from .sampling.noise import check_seed, random_seed
from .text.chunking import split_text_into_chunks
from .text.prompt import TEMPLATE_IDS

MAX_CHUNK_SECONDS = 30.0  # the longest clips the model was trained on


@dataclass(frozen=True)
class LongFormSettings:
    chunk_seconds: float = 18.0      # speech per chunk the text is planned for (a chunk never exceeds 30 s)
    chars_per_second: float = 14.0   # to plan chunks by length: English speech is 13-15 characters a second
    prefix_seconds: float = 0.5      # of the previous chunk replayed as the next one's continuation prefix
    pause_seconds: float = 0.0       # silence put between chunks (needs the codec's silence latent)
    max_seconds: float | None = None  # cap on the whole clip; None: as long as the text needs

    def __post_init__(self):
        for name in ("chunk_seconds", "chars_per_second", "prefix_seconds", "pause_seconds"):
            check_number(name, getattr(self, name), minimum=0)
        if not 2.0 <= self.chunk_seconds <= MAX_CHUNK_SECONDS:
            raise T2AVError(f"chunk_seconds must lie between 2 and {MAX_CHUNK_SECONDS:g} (the model was trained on "
                            f"clips of up to 30 s), got {self.chunk_seconds}")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise T2AVError(f"max_seconds must be a positive number of seconds or None, got {self.max_seconds!r}")

    @property
    def chunk_chars(self) -> int:
        return max(1, int(self.chunk_seconds * self.chars_per_second))


@dataclass(frozen=True)
class ChunkPrompt:
    """One chunk of the script as the generator reads it."""
    text: str
    prompt_ids: Tensor  # (L,) int64
    template_ids: int = TEMPLATE_IDS


@dataclass(frozen=True)
class ChunkResult:
    text: str
    start_frame: int  # where the chunk's own frames start in the joined clip
    frames: int
    stop_reason: str  # "stop" (the stop head ended it) | "budget"


def plan_chunks(text: str, settings: LongFormSettings, max_chars: int | None = None) -> list[str]:
    """The script cut at sentence ends (then clauses, then words) into chunks of at most ``chunk_chars``
    characters (and ``max_chars``, e.g. what the tokenizer takes in one prompt)."""
    limit = settings.chunk_chars if max_chars is None else min(settings.chunk_chars, max_chars)
    return split_text_into_chunks(text, limit, len)


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``: the seed itself for the first (a one-chunk script is exactly a single
    generation), then a hash of both (numpy SeedSequence), the same on every machine."""
    if index == 0:
        return check_seed(seed)
    return int(np.random.SeedSequence([check_seed(seed), index]).generate_state(1, np.uint64)[0])


def generate_long(model, chunks: list[ChunkPrompt], voice: Tensor, face_motion: Tensor,
                  settings: GenerationSettings, long: LongFormSettings, seed: int | None = 0,
                  ref_audio_latents: Tensor | None = None, silence_latent: Tensor | None = None,
                  callback: ProgressFn | None = None,
                  on_chunk: Callable[[int, int, str], None] | None = None) -> tuple[AVLatents, list[ChunkResult]]:
    """Generate ``chunks`` one after the other as one clip; returns it and what each chunk became.

    ``voice``, ``face_motion`` and ``ref_audio_latents`` are those of ``generate_av``: the first chunk uses them
    as a single generation does (``settings.prefix_seconds`` of the reference as its prefix); later chunks keep
    the speaker and the first frame of ``face_motion`` and continue from the clip so far. ``silence_latent``
    (32,): what a pause between chunks is made of (the codec's latent of silence); needed when
    ``long.pause_seconds`` > 0. ``callback(done, total)`` runs per patch over the whole script, and
    ``on_chunk(index, count, text)`` as each chunk starts."""
    if not chunks:
        raise T2AVError("the script has no text to speak")
    seed = random_seed() if seed is None else check_seed(seed)
    pause = round(long.pause_seconds * FRAME_RATE)
    if pause and silence_latent is None:
        raise T2AVError("a pause between chunks needs the audio codec (its latent of silence): connect the audio "
                        "VAE, or set the pause to 0")
    P = model.cfg.patch_size
    tail = max(P, round(long.prefix_seconds * FRAME_RATE) // P * P)
    first_frame = face_motion[:1]
    budgets = [_chunk_budget(settings, c, i, tail, P) for i, c in enumerate(chunks)]
    total, done = sum(budgets), 0
    audio, motion, results, prefix_frames = [], [], [], 0
    remaining = math.inf if long.max_seconds is None else long.max_seconds
    for i, chunk in enumerate(chunks):
        if remaining < P / FRAME_RATE:
            break
        chunk_settings = dataclasses.replace(settings, seed=chunk_seed(seed, i),
                                             max_seconds=min(MAX_CHUNK_SECONDS, remaining))
        progress = None if callback is None else _offset(callback, done, total)
        if on_chunk is not None:
            on_chunk(i, len(chunks), chunk.text)
        if i == 0:
            av = generate_av(model, chunk.prompt_ids, voice, face_motion, chunk_settings, callback=progress,
                             ref_audio_latents=ref_audio_latents, template_ids=chunk.template_ids)
            prefix_frames, own = av.prefix_frames, slice(0, None)  # the reference prefix stays, as in one run
        else:
            so_far_audio, so_far_motion = torch.cat(audio), torch.cat(motion)
            chunk_settings = dataclasses.replace(chunk_settings, prefix_seconds=tail / FRAME_RATE)
            av = generate_av(model, chunk.prompt_ids, voice, denormalize_motion(so_far_motion[-tail:]), chunk_settings,
                             callback=progress, ref_audio_latents=so_far_audio[-tail:],
                             template_ids=chunk.template_ids, condition_motion=first_frame)
            own = slice(av.prefix_frames, None)  # the replayed end of the previous chunk is already there
            if pause:
                audio.append(silence_latent.reshape(1, -1).float().expand(pause, -1))
                motion.append(motion[-1][-1:].expand(pause, -1))
        start = sum(a.shape[0] for a in audio)
        audio.append(av.audio[own])
        motion.append(av.motion_norm[own])
        results.append(ChunkResult(chunk.text, start + (prefix_frames if i == 0 else 0),
                                   av.audio[own].shape[0] - (prefix_frames if i == 0 else 0), av.stop_reason))
        remaining -= av.audio[own].shape[0] / FRAME_RATE
        done += budgets[i]
    if callback is not None:
        callback(total, total)  # chunks the stop head ended early leave the bar short of its total
    mean, std = motion_stats()
    joined = AVLatents(audio=torch.cat(audio), motion_norm=torch.cat(motion), motion_mean=mean, motion_std=std,
                       prefix_frames=prefix_frames, n_steps=sum(r.frames for r in results) // P,
                       stop_reason="stop" if all(r.stop_reason == "stop" for r in results) and
                       len(results) == len(chunks) else "budget", seed=seed)
    return joined, results


def _chunk_budget(settings: GenerationSettings, chunk: ChunkPrompt, index: int, tail: int, P: int) -> int:
    """The step budget the chunk will get (for the progress total); its own text sets it."""
    capped = dataclasses.replace(settings, max_seconds=MAX_CHUNK_SECONDS)
    prefix = 0 if index == 0 else tail // P
    return step_budget(capped, chunk.prompt_ids.numel(), prefix, 0, 0, P, chunk.template_ids)


def _offset(callback: ProgressFn, done: int, total: int) -> ProgressFn:
    return lambda step, _budget: callback(done + step, total)
