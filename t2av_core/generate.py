"""The joint autoregressive loop: text prompt (+ optional reference prefix) -> audio latents + face motion.

One backbone position per 4-frame patch. Each step reads the last hidden state h, samples one speech patch
and one motion patch from it (each flow head also sees its previous patch and a global condition: the
speaker embedding for speech, the first reference motion frame for motion), then feeds the sum of both
re-embedded patches back as the next position. The stop head, checked from step 7 on, ends the run after
3 consecutive probabilities >= 0.5. This follows the released inference recipe step for step.

Modes: text -> audio + video (both heads sample); audio-driven (``given_audio``: its patches are fed
instead of sampled speech, only motion is sampled); dubbing (``given_motion``: only audio is sampled).
Several seeds run as one batch (same prompt and references, independent noise).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import GenerationCancelled, T2AVError, check_number
from .interfaces import FRAME_RATE, ProgressFn
from .model.talker import TalkerT2AV
from .motion_stats import denormalize_motion, motion_stats, normalize_motion
from .patch_step import PatchStep
from .reference import check_matrix, prepare_reference
from .sampling import SOLVERS, CFGGuidance, CustomSchedule, FlowSampler, NoiseSource, SwaySchedule
from .sampling.noise import check_seed
from .text.prompt import TEMPLATE_IDS

__all__ = ["GenerationSettings", "AVLatents", "Request", "generate_av", "generate_av_batch", "generate_requests",
           "GenerationCancelled", "step_budget"]

@dataclass
class GenerationSettings:
    # flow heads (the released recipe: 10 sway-warped Euler steps, temperature 0.3, CFG 2 with CFG-Zero*)
    cfm_steps: int = 10
    temperature: float = 0.3
    cfg_scale: float = 2.0
    sway: float = 1.0
    zero_star: bool = True
    solver: Any = "euler"  # "euler" (reference) | "heun" | "midpoint", or an object with solve(velocity, x, grid)
    times: tuple[float, ...] | None = None  # custom descending time grid (e.g. ComfyUI sigmas); overrides steps/sway
    # reference prefix: the first seconds of reference audio + motion teacher-forced as a continuation
    prefix_seconds: float = 0.5
    # length: "text" = estimate from the prompt, capped by max_seconds; "reference" = the official rule
    # max(ceil(speech_len/4), motion_len/4) - prefix patches + extra_patches
    budget: str = "text"
    max_seconds: float = 30.0
    seconds_per_token: float = 0.6  # generous: speech rarely needs more than ~0.35 s per Qwen token
    extra_patches: int = 15
    # stop head
    use_stop: bool = True
    stop_min_step: int = 7
    stop_threshold: float = 0.5
    stop_streak: int = 3
    # numerics
    round_reference_bf16: bool = True  # the released recipe rounds normalised reference motion to bf16
    # where the "speech + video" task tag goes: "first_patch" (the released recipe adds it to the first prefix
    # patch; no tag without a prefix) or "leading" (its own position before the text, as in training)
    task_tag: str = "first_patch"
    seed: int | None = 0

    def __post_init__(self):
        named = isinstance(self.solver, str)
        for name in ("temperature", "cfg_scale", "sway", "prefix_seconds", "max_seconds", "seconds_per_token"):
            check_number(name, getattr(self, name))
        checks = [
            (not named or self.solver in SOLVERS,
             f"unknown solver {self.solver!r}; choose one of {sorted(SOLVERS)}"),
            (named or callable(getattr(self.solver, "solve", None)),
             f"a solver needs a solve(velocity, x, grid) method; got {type(self.solver).__name__}"),
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (self.cfg_scale >= 0, f"cfg_scale must be >= 0, got {self.cfg_scale}"),
            (self.prefix_seconds >= 0, f"prefix_seconds must be >= 0, got {self.prefix_seconds}"),
            (self.max_seconds > 0, f"max_seconds must be > 0, got {self.max_seconds}"),
            (self.stop_streak >= 1 and self.stop_min_step >= 0, "stop_streak must be >= 1 and stop_min_step >= 0"),
            (self.budget in ("text", "reference"), f"budget must be 'text' or 'reference', got {self.budget!r}"),
            (self.task_tag in ("first_patch", "leading"),
             f"task_tag must be 'first_patch' or 'leading', got {self.task_tag!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise T2AVError(message)
        if self.seed is not None:
            check_seed(self.seed)
        self.sampler()  # builds (and so checks) the step count, the time grid and the guidance

    def sampler(self) -> FlowSampler:
        solver = SOLVERS[self.solver]() if isinstance(self.solver, str) else self.solver
        schedule = CustomSchedule(self.times) if self.times is not None else SwaySchedule(self.cfm_steps, self.sway)
        return FlowSampler(schedule, CFGGuidance(self.cfg_scale, self.zero_star), solver,
                           self.temperature)



@dataclass
class AVLatents:
    """Frame-aligned result at 25 fps; the first ``prefix_frames`` frames are the reference prefix."""

    audio: Tensor  # (T, 32) audio-VAE latents
    motion_norm: Tensor  # (T, 40) normalised motion
    motion_mean: Tensor  # (40,)
    motion_std: Tensor  # (40,)
    prefix_frames: int
    n_steps: int  # generated patches (4 frames each)
    stop_reason: str  # "stop" (stop head) | "budget" (step budget or given stream used up)
    fps: int = FRAME_RATE
    seed: int | None = None  # the seed the noise came from (None: recorded or other given noise)
    family: str | None = None  # of the generator (set by pipeline.sample_av; None: fits any decoder)

    def motion_raw(self) -> Tensor:
        return denormalize_motion(self.motion_norm, self.motion_mean, self.motion_std)

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.fps


def step_budget(settings: GenerationSettings, n_prompt_ids: int, prefix_patches: int, speech_len: int,
                motion_len: int, patch: int = 4, template_ids: int = TEMPLATE_IDS) -> int:
    """Maximum number of generated patches (the stop head usually ends the run earlier).

    "reference": the official rule, bounded by the reference clip. "text": 2 s + ``seconds_per_token`` per
    text id (the prompt minus its ``template_ids`` chat-template ids), capped at ``max_seconds``.
    """
    cap = max(1, math.ceil(settings.max_seconds * FRAME_RATE / patch))
    if settings.budget == "reference":
        total = max(math.ceil(speech_len / patch), motion_len // patch)
        return max(0, total - prefix_patches + settings.extra_patches)
    n_text = max(1, n_prompt_ids - template_ids)
    seconds = 2.0 + settings.seconds_per_token * n_text
    return min(cap, math.ceil(seconds * FRAME_RATE / patch))


def _given(x: Tensor | None, n_steps: int, P: int, dev, dt) -> Tensor | None:
    """(frames, C) -> (n_steps, C, P) patches, zero-padded at the end."""
    if x is None:
        return None
    x = torch.cat([x, x.new_zeros(n_steps * P - x.shape[0], x.shape[1])])
    return x.view(n_steps, P, -1).transpose(1, 2).to(dev, dt)


@dataclass
class Request:
    """One sample of a batch: its prompt, voice and face, and where its noise comes from.

    prompt_ids: (1, s0) or (s0,) ids of the prompt up to the first speech placeholder, of which ``template_ids``
    are chat template rather than text (the tokenizer's ``template_ids``; 12 for Qwen3's). voice: speaker
    embedding (256,). face_motion: raw reference motion (frames >= 1, 40); frame 0 conditions the motion head
    (or ``condition_motion`` (40,) when given: a long script's chunks keep the face's own frame).
    ref_audio_latents: reference audio latents (frames, 32) for the prefix (a prefix happens only with them).
    seed: a whole number in 0 .. 2**64 - 1, or None for a random one (reported in ``AVLatents.seed``); ``noise``
    (a source with draw(shape, device)), e.g. ``RecordedNoise`` for exact replays, overrides it.
    """
    prompt_ids: Tensor
    voice: Tensor
    face_motion: Tensor
    ref_audio_latents: Tensor | None = None
    seed: int | None = 0
    noise: Any = None
    template_ids: int = TEMPLATE_IDS
    condition_motion: Tensor | None = None
    prefix_seconds: float | None = None  # this sample's reference prefix; None: the settings' prefix_seconds


@torch.no_grad()
def generate_requests(model: TalkerT2AV, requests: list[Request], settings: GenerationSettings | None = None,
                      given_audio: Tensor | None = None, given_motion: Tensor | None = None,
                      callback: ProgressFn | None = None, trace: dict | None = None) -> list[AVLatents]:
    """Generate several samples as one batch (different prompts, voices and faces), one AVLatents each.

    Prompts of different lengths are left-padded, and the padding is masked out of attention while each sample's
    positions count from its own first id, so every sample gets what it would get alone (up to the rounding of
    matrix products of another batch size). Each sample stops on its own (the stop head or its own length
    budget); finished samples keep running until the last one ends, and their extra patches are discarded.
    given_audio / given_motion (frames, 32) / raw (frames, 40): drive one stream of every sample.
    callback(done, total) is called after every patch, and with (n, n) when the run ends early at n patches, so
    a progress bar always finishes; raising in it (e.g. GenerationCancelled) stops the run.
    trace: if a dict, receives the intermediate tensors of sample 0 (for debugging and parity tests).
    """
    s = settings or GenerationSettings()
    cfg = model.cfg
    P = cfg.patch_size
    dev, dt = model.task_embedding.weight.device, model.task_embedding.weight.dtype
    if not requests:
        raise T2AVError("need at least one sample")
    if given_audio is not None and given_motion is not None:
        raise T2AVError("give either given_audio (audio-driven) or given_motion (dubbing), not both")
    B = len(requests)
    ids = [_checked_ids(r.prompt_ids, cfg.backbone.vocab) for r in requests]
    noise = [r.noise if r.noise is not None else NoiseSource(r.seed) for r in requests]
    sampler = s.sampler()

    finished = [False] * B  # samples past their end keep running, but draw nothing from their generators

    def draw(shape: tuple[int, ...]) -> Tensor:
        """Standard-normal noise (B, ...) on the model's device: each sample's rows from its own generator, so a
        sample's noise is the same alone or in any batch."""
        return torch.cat([torch.zeros((1, *shape[1:]), device=dev) if done else n.draw((1, *shape[1:]), dev)
                          for n, done in zip(noise, finished)])

    refs = [prepare_reference(model, r.voice, r.face_motion, r.ref_audio_latents,
                              s if r.prefix_seconds is None else dataclasses.replace(s, prefix_seconds=r.prefix_seconds),
                              r.condition_motion) for r in requests]
    given_audio = check_matrix(given_audio, cfg.speech_dim, "given_audio (audio latents)")
    given_motion = check_matrix(given_motion, cfg.motion_dim, "given_motion (raw motion codes)")
    if given_motion is not None:  # not bf16-rounded: that quirk belongs to the reference-file path only
        given_motion = normalize_motion(given_motion)
    driven = given_audio if given_audio is not None else given_motion
    if driven is not None:  # the given stream fixes the length; the stop head is not consulted
        budgets = [math.ceil(driven.shape[0] / P)] * B
    else:
        budgets = [step_budget(s, i.numel(), ref.prefix_patches, ref.speech_len, ref.motion_len, P, r.template_ids)
                   for i, ref, r in zip(ids, refs, requests)]
    budget = max(budgets)
    audio_in, motion_in = _given(given_audio, budget, P, dev, dt), _given(given_motion, budget, P, dev, dt)

    # ---- prefill: prompts (+ task tag, + reference prefix) left-padded to one length
    embeds, pad = _prefill_embeds(model, ids, refs, s.task_tag)
    n0 = embeds.shape[1]
    backbone = model.backbone
    cache = backbone.new_cache(B, n0 + budget)  # this call's own: the model itself holds no generation state
    h = backbone(embeds, 0, cache, pad)[:, -1]
    if trace is not None:
        trace.update(prefill_inputs_embeds=embeds[:1].clone(), prefill_last_hidden=h[:1].clone())
        for key in ("mu", "speech_cond", "motion_cond", "speech_patch", "motion_patch", "next_embed",
                    "hidden_after_step", "stop_logits"):
            trace[key] = []

    step_fn = PatchStep(model, sampler, refs, budget, draw, cache, n0, pad, audio_in, motion_in, trace)
    streak = torch.zeros(B, dtype=torch.long, device=dev)
    ends = torch.tensor(budgets, dtype=torch.long, device=dev)
    stopped_at = ends.clone()  # a sample is done at the step it stopped, or at its own budget
    use_stop = s.use_stop and driven is None
    n_steps = budget
    for step in range(budget):
        if use_stop and step >= s.stop_min_step:
            logit = model.stop_logit(h)
            hit = torch.sigmoid(logit.float()) >= s.stop_threshold
            streak = torch.where(hit, streak + 1, torch.zeros_like(streak))
            newly = (streak >= s.stop_streak) & (stopped_at == ends) & (step < ends)
            stopped_at = torch.where(newly, torch.full_like(stopped_at, step), stopped_at)
            if trace is not None:
                trace["stop_logits"].append(logit[0].clone())
        if B > 1 or use_stop and step >= s.stop_min_step:
            finished[:] = (stopped_at <= step).tolist()  # the one host sync per step
            if all(finished):
                n_steps = step
                break
        h = step_fn(step, h)
        if callback is not None:
            callback(step + 1, budget)
    if callback is not None and n_steps < budget:
        callback(n_steps, n_steps)  # every sample ended early: finish the bar
    stops = stopped_at.tolist()
    speech_out, motion_out = step_fn.speech_out, step_fn.motion_out
    for b, stop in enumerate(stops):  # only the patches a sample keeps must be finite
        _check_finite_patches(speech_out[:min(stop, n_steps), b], "speech")
        _check_finite_patches(motion_out[:min(stop, n_steps), b], "motion")

    mean, std = motion_stats()
    results = []
    # a given stream sets the length to the frame: the last patch's padding is not part of the result
    frames = driven.shape[0] if driven is not None else None
    for b, ref in enumerate(refs):
        n = min(stops[b], n_steps)
        audio = speech_out[:n, b].transpose(1, 2).reshape(-1, cfg.speech_dim)[:frames].float().cpu()
        motion = motion_out[:n, b].transpose(1, 2).reshape(-1, cfg.motion_dim)[:frames].float().cpu()
        results.append(AVLatents(
            audio=torch.cat([ref.prefix_audio, audio]),
            motion_norm=torch.cat([ref.prefix_motion, motion]),
            motion_mean=mean, motion_std=std,
            prefix_frames=ref.prefix_patches * P,
            n_steps=n,
            stop_reason="stop" if stops[b] < budgets[b] else "budget",
            seed=getattr(noise[b], "seed", None),
        ))
    if trace is not None:
        for key, val in trace.items():
            if isinstance(val, list):
                trace[key] = torch.stack(val) if val else torch.zeros(0)
    return results


def _checked_ids(prompt_ids, vocab: int) -> Tensor:
    ids = prompt_ids.reshape(-1) if isinstance(prompt_ids, Tensor) else None
    if ids is None or ids.numel() == 0 or ids.dtype not in (torch.int64, torch.int32):
        raise T2AVError("prompt_ids must be a non-empty LongTensor of token ids (build it with t2av_core.text.prompt)")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise T2AVError(f"prompt_ids must lie in [0, {vocab}); got {int(ids.min())}..{int(ids.max())}")
    return ids


def _prefill_embeds(model: TalkerT2AV, ids: list[Tensor], refs: list, task_tag: str) -> tuple[Tensor, Tensor | None]:
    """(B, n0, D) prefill embeddings, each sample left-padded with zeros to the longest, and the padding per
    sample (None when all are equally long: nothing to mask)."""
    dev = model.task_embedding.weight.device
    rows = []
    for sample_ids, ref in zip(ids, refs):
        embeds = model.embed_tokens(sample_ids.to(dev)[None])
        if task_tag == "leading":
            embeds = torch.cat([model.task_embedding.weight[1].view(1, 1, -1), embeds], dim=1)
        if ref.prefix_tokens is not None:
            embeds = torch.cat([embeds, ref.prefix_tokens], dim=1)
        rows.append(embeds[0])
    n0 = max(row.shape[0] for row in rows)
    lengths = [row.shape[0] for row in rows]
    if len(set(lengths)) == 1:
        return torch.stack(rows), None
    padded = torch.stack([torch.cat([row.new_zeros(n0 - row.shape[0], row.shape[1]), row]) for row in rows])
    return padded, torch.tensor([n0 - n for n in lengths], dtype=torch.long, device=dev)


@torch.no_grad()
def generate_av_batch(model: TalkerT2AV, prompt_ids: Tensor, voice: Tensor, face_motion: Tensor,
                      settings: GenerationSettings | None = None, given_audio: Tensor | None = None,
                      given_motion: Tensor | None = None, callback: ProgressFn | None = None,
                      ref_audio_latents: Tensor | None = None, seeds: list[int | None] | None = None,
                      noise: list | None = None, trace: dict | None = None,
                      template_ids: int = TEMPLATE_IDS, condition_motion: Tensor | None = None) -> list[AVLatents]:
    """One prompt for several seeds (``seeds``, or noise sources ``noise``) as one batch; see ``Request`` and
    ``generate_requests``. Without either, one sample with ``settings.seed``."""
    s = settings or GenerationSettings()
    sources = noise if noise is not None else [None] * len(seeds if seeds is not None else [s.seed])
    seed_list = seeds if seeds is not None else [s.seed] * len(sources)
    if not sources:
        raise T2AVError("need at least one seed")
    requests = [Request(prompt_ids, voice, face_motion, ref_audio_latents, seed, source, template_ids,
                        condition_motion) for seed, source in zip(seed_list, sources)]
    return generate_requests(model, requests, s, given_audio, given_motion, callback, trace)


def _check_finite_patches(patches: Tensor, stream: str) -> None:
    """T2AVError naming the stage and the first patch when sampling produced NaN or inf values."""
    bad = ~torch.isfinite(patches).flatten(1).all(dim=1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise T2AVError(f"joint sampling produced NaN or infinite {stream} latents (first at patch {first}): the "
                        "generator's weights are damaged, or its precision overflows (try fp32). Nothing was "
                        "decoded or written")


def generate_av(model: TalkerT2AV, prompt_ids: Tensor, voice: Tensor, face_motion: Tensor,
                settings: GenerationSettings | None = None, given_audio: Tensor | None = None,
                given_motion: Tensor | None = None, callback: ProgressFn | None = None,
                ref_audio_latents: Tensor | None = None, noise=None, trace: dict | None = None,
                template_ids: int = TEMPLATE_IDS, condition_motion: Tensor | None = None) -> AVLatents:
    """One sample (seed from ``settings.seed``, or an explicit noise source). See ``generate_av_batch``."""
    return generate_av_batch(model, prompt_ids, voice, face_motion, settings, given_audio, given_motion, callback,
                             ref_audio_latents, noise=None if noise is None else [noise], trace=trace,
                             template_ids=template_ids, condition_motion=condition_motion)[0]
