"""One step of the autoregressive loop: a speech patch and a motion patch from the backbone's hidden state,
re-embedded and fed back as the next position.

Everything a step touches is allocated once per generation and reused: the flow heads' doubled inputs
(``sampling.HeadBuffers``), their history windows, the output buffers and the KV cache. The step makes no host
round trip of its own (the loop's stop check is the only one), which is what capturing it as one graph needs.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .model.talker import TalkerT2AV


class PatchStep:
    """``step(i, h) -> h'``: patch ``i`` of every sample from hidden states ``h`` (B, D), written into
    ``speech_out[i]`` / ``motion_out[i]``; returns the hidden states after the backbone read the new patch."""

    def __init__(self, model: TalkerT2AV, sampler, refs: list, budget: int, draw: Callable, cache, n0: int,
                 pad: Tensor | None, audio_in: Tensor | None = None, motion_in: Tensor | None = None,
                 trace: dict | None = None):
        cfg = model.cfg
        self.model, self.sampler, self.draw, self.cache, self.n0, self.pad = model, sampler, draw, cache, n0, pad
        self.audio_in, self.motion_in, self.trace = audio_in, motion_in, trace
        self.P = P = cfg.patch_size
        B = len(refs)
        dev, dt = model.task_embedding.weight.device, model.task_embedding.weight.dtype
        self.speech_cond = torch.cat([ref.speech_history for ref in refs])  # (B, 32, context_patches * P)
        self.motion_cond = torch.cat([ref.motion_history for ref in refs])
        history = self.speech_cond.shape[2]
        self.speech_heads = sampler.buffers(torch.cat([ref.speaker for ref in refs]), cfg.hidden, cfg.speech_dim,
                                            history, P)
        self.motion_heads = sampler.buffers(torch.cat([ref.first_motion for ref in refs]), cfg.hidden,
                                            cfg.motion_dim, history, P)
        self.speech_out = torch.zeros(budget, B, cfg.speech_dim, P, device=dev, dtype=dt)
        self.motion_out = torch.zeros(budget, B, cfg.motion_dim, P, device=dev, dtype=dt)

    def __call__(self, step: int, h: Tensor) -> Tensor:
        model, B = self.model, h.shape[0]
        estimator_s, estimator_m = model.speech_cfm.estimator, model.motion_cfm.estimator
        if self.audio_in is not None:
            speech = self.audio_in[step].expand(B, -1, -1)
        else:  # noise in fp32, like the ODE state
            speech = self.sampler.sample_into(self.speech_heads, estimator_s, h, self.speech_cond,
                                              self.draw((B, *self.speech_out.shape[2:])), draw=self.draw)
        if self.motion_in is not None:
            motion = self.motion_in[step].expand(B, -1, -1)
        else:
            motion = self.sampler.sample_into(self.motion_heads, estimator_m, h, self.motion_cond,
                                              self.draw((B, *self.motion_out.shape[2:])), draw=self.draw)
        if self.trace is not None:
            for key, val in (("mu", h), ("speech_cond", self.speech_cond), ("motion_cond", self.motion_cond),
                             ("speech_patch", speech), ("motion_patch", motion)):
                self.trace[key].append(val[0].clone())
        self.speech_out[step].copy_(speech)
        self.motion_out[step].copy_(motion)
        _slide(self.speech_cond, speech)  # keep the last context_patches
        _slide(self.motion_cond, motion)
        nxt = model.embed_patches(speech.transpose(1, 2)[:, None], motion.transpose(1, 2)[:, None])
        h = model.backbone(nxt, self.n0 + step, self.cache, self.pad)[:, -1]
        if self.trace is not None:
            self.trace["next_embed"].append(nxt[0, 0].clone())
            self.trace["hidden_after_step"].append(h[0].clone())
        return h


def _slide(window: Tensor, patch: Tensor) -> None:
    """Shift a history window (B, C, H) left by one patch (B, C, P) in place and write the patch at its end."""
    P = patch.shape[2]
    if window.shape[2] > P:
        window[..., :-P] = window[..., P:].clone()
    window[..., -P:] = patch
