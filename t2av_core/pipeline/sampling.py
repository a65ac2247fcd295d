"""Joint sampling: the autoregressive loop over 4-frame patches, from the conditions to AVLatents."""

from __future__ import annotations

import logging

import torch

from ..errors import T2AVError
from ..generate import GenerationSettings, Request, generate_av, generate_requests
from ..interfaces import FRAME_RATE, MOTION_LATENT_DIM, ProgressFn, family_of
from ..longform import chunk_seed
from ..sampling import SOLVERS as CORE_SOLVERS
from ..sampling import SwaySchedule, flow_times_from_sigmas
from .compat import check_fit, check_prompt_ids
from .conditions import PATCH_FRAMES, FaceCondition, SamplerParts, TextCondition, VoiceCondition, check_stream
from .conditions import require_loaded

SOLVERS = tuple(CORE_SOLVERS)  # the core flow solvers, by name
_log = logging.getLogger(__name__)


def sway_sigmas(steps: int = 10, sway: float = 1.0) -> torch.Tensor:
    """The released time grid (steps + 1 values from 1 down to 0) as a tensor, e.g. for ComfyUI SIGMAS."""
    return SwaySchedule(steps, sway).grid(dtype=torch.float32)


def make_settings(parts: SamplerParts, seed: int | None, max_seconds: float, prefix_seconds: float):
    """Core GenerationSettings for one run. Noise comes from a host generator seeded with ``seed`` (a whole
    number in 0 .. 2**64 - 1; None picks a random one, reported in the result's ``seed``), so a seed gives the
    same noise on any device. GenerationSettings validates every value."""
    times = None
    if parts.sigmas is not None:  # any core scheduler's SIGMAS: mapped to flow times, completed to 0 if short
        times, notes = flow_times_from_sigmas(torch.as_tensor(parts.sigmas, dtype=torch.float64))
        for note in notes:
            _log.warning("Talker-T2AV sampler: %s", note)
    return GenerationSettings(solver=parts.solver, cfm_steps=parts.steps, sway=parts.sway, times=times,
                              temperature=parts.temperature, cfg_scale=parts.cfg, zero_star=parts.zero_star,
                              prefix_seconds=prefix_seconds, max_seconds=max_seconds, seed=seed)


def sample_av(model, text: TextCondition, voice: VoiceCondition, face: FaceCondition, parts: SamplerParts,
              seed: int | None, max_seconds: float = 30.0, prefix_seconds: float = 0.0,
              motion: torch.Tensor | None = None, given_audio: torch.Tensor | None = None,
              given_motion: torch.Tensor | None = None, progress: ProgressFn | None = None):
    """Run the autoregressive loop: one backbone step and two flow-head draws per 4-frame patch (0.16 s).

    ``max_seconds`` caps the generated part (the stop head usually ends earlier); ``prefix_seconds`` of the
    reference (the voice's audio latents + ``motion``, raw codes at 25 fps) are replayed first as a
    continuation prefix. Without ``motion`` the prefix shows the still face. ``given_audio`` (T, 32) makes
    the run audio-driven (speech fixed, motion drawn); ``given_motion`` (T, 40 raw) is dubbing (motion
    fixed, speech drawn); a given stream sets the length. ``progress(done, total)`` is called once per
    patch; raising in it stops the run. Returns the core ``AVLatents``, prefix included."""
    require_loaded(model, "talker")
    generator = check_conditions(model, voice, face, text)
    check_prompt_ids(text.prompt_ids, model)
    settings = make_settings(parts, seed, max_seconds, prefix_seconds)
    face_motion = reference_motion_of(voice, face, motion, prefix_seconds)
    av = generate_av(model, text.prompt_ids, voice.speaker, face_motion, settings,
                     given_audio=given_audio, given_motion=given_motion, callback=progress,
                     ref_audio_latents=voice.audio_latents, template_ids=text.template_ids)
    av.family = generator  # the decoders check they fit it
    return av


def check_conditions(model, voice: VoiceCondition, face: FaceCondition, text: TextCondition | None = None) -> str:
    """The generator's family, once every condition was found to fit it (see pipeline.compat)."""
    generator = family_of(model)
    if text is not None:
        check_fit("tokenizer", text.family, "generator", generator, "the prompt")
    check_fit("speaker encoder", voice.family, "generator", generator, "the voice")
    check_fit("video model", face.family, "generator", generator, "the face")
    return generator


def reference_motion_of(voice: VoiceCondition, face: FaceCondition, motion: torch.Tensor | None,
                        prefix_seconds: float) -> torch.Tensor:
    """The raw reference motion a generation reads: ``motion`` when given, else the still face (its first frame
    conditions the motion head; a prefix then holds the still face). A prefix needs the voice's latents."""
    prefix = int(prefix_seconds * FRAME_RATE) // PATCH_FRAMES * PATCH_FRAMES
    if prefix and voice.audio_latents is None:
        raise T2AVError("prefix_seconds > 0 needs the reference audio latents: encode the voice with the audio "
                        "VAE connected, or set prefix_seconds to 0")
    if motion is not None:
        return check_stream(motion, MOTION_LATENT_DIM, "reference motion")
    return face.motion[None].expand(max(prefix, 1), -1)


def sample_batch(model, texts: list[TextCondition], voice: VoiceCondition, face: FaceCondition, parts: SamplerParts,
                 seeds: int | list[int | None], max_seconds: float = 30.0, prefix_seconds: float = 0.0,
                 motion: torch.Tensor | None = None, progress: ProgressFn | None = None) -> list:
    """Several texts in one batch, one AVLatents each (``seeds[i]`` for ``texts[i]``), as ``sample_av`` would
    give each alone up to rounding; each stops on its own. They share the voice, the face and the reference
    ``motion``. One seed for the batch gives text 1 that seed and the others seeds derived from it, as the
    chunks of a long script get theirs. On a GPU a batch costs little more than one clip."""
    if isinstance(seeds, int):
        seeds = [chunk_seed(seeds, i) for i in range(len(texts))]
    if len(texts) != len(seeds) or not texts:
        raise T2AVError(f"give one seed per text: {len(texts)} texts, {len(seeds)} seeds")
    require_loaded(model, "talker")
    for text in texts:
        check_conditions(model, voice, face, text)
        check_prompt_ids(text.prompt_ids, model)
    settings = make_settings(parts, seeds[0], max_seconds, prefix_seconds)
    face_motion = reference_motion_of(voice, face, motion, prefix_seconds)
    requests = [Request(text.prompt_ids, voice.speaker, face_motion, voice.audio_latents, seed,
                        template_ids=text.template_ids) for text, seed in zip(texts, seeds)]
    results = generate_requests(model, requests, settings, callback=progress)
    for av in results:
        av.family = family_of(model)
    return results
