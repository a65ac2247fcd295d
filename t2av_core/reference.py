"""What a generation is conditioned on, prepared once before the loop: the speaker embedding, the motion
head's first-frame condition, the reference prefix as backbone tokens, and the flow heads' first histories."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import T2AVError
from .interfaces import FRAME_RATE
from .model.talker import TalkerT2AV
from .motion_stats import motion_stats, normalize_motion


@dataclass
class Reference:
    """Conditioning prepared once: global conditions, prefix tokens and the flow heads' first histories."""

    speaker: Tensor  # (1, 256)
    first_motion: Tensor  # (1, 40) normalised (bf16-rounded) frame 0
    prefix_tokens: Tensor | None  # (1, pp, D) or None
    speech_history: Tensor  # (1, 32, ctx*P) right-aligned last history patches, zeros where none
    motion_history: Tensor  # (1, 40, ctx*P)
    prefix_audio: Tensor  # (prefix_frames, 32), zero rows where the reference audio is shorter
    prefix_motion: Tensor  # (prefix_frames, 40) normalised, unrounded
    prefix_patches: int
    speech_len: int
    motion_len: int


def check_matrix(x: Tensor | None, channels: int, what: str, min_frames: int = 1) -> Tensor | None:
    if x is None:
        return None
    if not isinstance(x, Tensor):
        raise T2AVError(f"{what} must be a torch.Tensor of shape (frames, {channels})")
    if x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 2 or x.shape[1] != channels or x.shape[0] < min_frames:
        raise T2AVError(f"{what} must have shape (frames >= {min_frames}, {channels}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise T2AVError(f"{what} contains NaN or infinite values")
    return x.float().cpu()


def _history(frames: Tensor, n_frames: int, ctx_patches: int, patch: int) -> Tensor:
    """Last ``ctx_patches`` patches of frames[:n_frames] (last one zero-padded), channels-first, right-aligned."""
    cond = torch.zeros(1, frames.shape[1], ctx_patches * patch)
    if n_frames <= 0:
        return cond
    hist = frames[:n_frames]
    pad = (-n_frames) % patch
    hist = torch.cat([hist, hist.new_zeros(pad, hist.shape[1])])
    k = min(ctx_patches, hist.shape[0] // patch)
    cond[0, :, cond.shape[2] - k * patch:] = hist[hist.shape[0] - k * patch:].T
    return cond


def prepare_reference(model: TalkerT2AV, voice: Tensor, face_motion: Tensor, ref_audio: Tensor | None,
                      s, condition_motion: Tensor | None = None) -> Reference:
    """The global conditions, the prefix tokens and the flow heads' first histories of one generation.

    ``face_motion`` (raw, frames >= 1) is the reference motion: its first frame conditions the motion head and
    its first ``s.prefix_seconds`` are replayed (with ``ref_audio``) as the continuation prefix.
    ``condition_motion`` (raw, (1, 40) or (40,)), when given, conditions the motion head instead of that first
    frame: a long script keeps the face's own frame while each chunk replays the previous chunk's end.
    """
    cfg = model.cfg
    P = cfg.patch_size
    dev, dt = model.task_embedding.weight.device, model.task_embedding.weight.dtype
    speaker = voice.reshape(-1) if isinstance(voice, Tensor) else None
    if speaker is None or speaker.shape[0] != cfg.speaker_dim or not torch.isfinite(speaker).all():
        raise T2AVError(f"voice must be a finite speaker embedding of {cfg.speaker_dim} values "
                        f"(from the speaker encoder), got {None if speaker is None else tuple(voice.shape)}")
    raw = check_matrix(face_motion, cfg.motion_dim, "face_motion (raw reference motion codes)")
    ref_audio = check_matrix(ref_audio, cfg.speech_dim, "ref_audio_latents", min_frames=0)

    mean, std = motion_stats()
    norm = normalize_motion(raw, mean, std)
    used = norm.to(torch.bfloat16).float() if s.round_reference_bf16 else norm
    motion_len = (raw.shape[0] // P) * P
    speech_len = 0 if ref_audio is None else ref_audio.shape[0]
    # the prefix needs reference audio; without it the run is identity-only driven (voice + first frame)
    prefix_frames = 0
    if ref_audio is not None and speech_len > 0:
        prefix_frames = (max(0, min(int(s.prefix_seconds * FRAME_RATE), motion_len)) // P) * P
    pp = prefix_frames // P

    tokens = None
    if pp:
        with torch.no_grad():
            sp = model.projector_speech(ref_audio[:prefix_frames].to(dev, dt))
            mo = model.projector_motion(used[:prefix_frames].to(dev, dt))
            # frames past the end of a stream enter as zero vectors *after* projection (as the reference does)
            sp = torch.cat([sp, sp.new_zeros(prefix_frames - sp.shape[0], sp.shape[1])])
            tokens = (model.speech_patch_encoder(sp.view(1, pp, P, -1))
                      + model.motion_patch_encoder(mo.view(1, pp, P, -1)))
            if s.task_tag == "first_patch":
                tokens[:, 0] = tokens[:, 0] + model.task_embedding.weight[1]  # "speech + video" tag, first patch only
    sp_hist = min(prefix_frames, speech_len)
    prefix_audio = torch.zeros(prefix_frames, cfg.speech_dim)
    if sp_hist:
        prefix_audio[:sp_hist] = ref_audio[:sp_hist]
    first = used[:1]
    if condition_motion is not None:
        first = normalize_motion(check_matrix(condition_motion.reshape(1, -1), cfg.motion_dim, "condition_motion"),
                                 mean, std)
        first = first.to(torch.bfloat16).float() if s.round_reference_bf16 else first
    return Reference(
        speaker=speaker.float().reshape(1, -1).to(dev, dt),
        first_motion=first.to(dev, dt),
        prefix_tokens=tokens,
        speech_history=_history(ref_audio if ref_audio is not None else torch.zeros(0, cfg.speech_dim),
                                sp_hist, cfg.context_patches, P).to(dev, dt),
        motion_history=_history(used, prefix_frames, cfg.context_patches, P).to(dev, dt),
        prefix_audio=prefix_audio,
        prefix_motion=norm[:prefix_frames],
        prefix_patches=pp,
        speech_len=speech_len,
        motion_len=max(motion_len, P),
    )
