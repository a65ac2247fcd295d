"""Training objective of Talker-T2AV, applied to the demo model (the same TalkerT2AV classes, small sizes).

Sequence per clip, as the released inference reads it: ``[prompt ids][patch 0][patch 1]...`` where each
patch token is PE_s(proj_s(4 audio frames)) + PE_m(proj_m(4 motion frames)). The hidden state before patch q
(the last prompt id for q = 0) conditions both flow heads to predict patch q; each head also sees the
previous patch of its own stream as history (zeros for q = 0) and a global condition (the voice vector for
speech, the first normalised motion frame for motion).

Losses, following the reference training code:
* flow matching on both heads: t = sigmoid(N(-0.4, 1)), y = (1 - t) x1 + t z, target velocity z - x1, MSE;
  CFG dropout: the hidden state is zeroed with p = 0.1, the history with p = 0.05;
* stop: BCE on the hidden state after each patch. The reference labels only the last patch and ignores the
  two before it; here the last three are positive, so the inference rule "three hits in a row" stops right
  at the end of the speech instead of two patches late;
* total = L_speech + 10 * L_motion + L_stop (the released motion weight);
* demo-only, optional: + w * CTC of the characters read out of the hidden states that predict the patches
  (``AlignmentHead``, used in training and then discarded). With a few thousand CPU steps the flow loss
  alone teaches rhythm but not which characters each patch speaks; this direct signal makes the backbone
  learn the monotonic text alignment early, and the flow heads then turn it into recognisable sounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.config import BackboneConfig, EncoderConfig, TalkerConfig
from ..model.talker import TalkerT2AV
from .corpus import PATCH, Clip
from .text import PAD, VOCAB_SIZE

MOTION_WEIGHT = 10.0
MU_DROP, COND_DROP = 0.1, 0.05
STOP_POSITIVES = 3
TASK_PROB = 0.3  # share of clips trained as the first patch of a reference prefix (task embedding added)


def demo_config() -> TalkerConfig:
    """About 3 M parameters: width 128 everywhere (the DiT adds the backbone state to its time embedding)."""
    return TalkerConfig(
        backbone=BackboneConfig(hidden=128, layers=4, n_heads=4, n_kv_heads=2, head_dim=32, ffn=384,
                                vocab=VOCAB_SIZE),
        patch_encoder=EncoderConfig(layers=2, n_heads=4, width=128, rope_rows=16),
        dit=EncoderConfig(layers=2, n_heads=4, width=128, rope_rows=16),
    )


class AlignmentHead(torch.nn.Module):
    """Training-only read-out: hidden state before patch q -> character logits for the patch's 4 frames
    (4 per patch so a 160 ms patch can hold the two or three characters spoken in it). Not saved."""

    def __init__(self, width: int, vocab: int = VOCAB_SIZE):
        super().__init__()
        self.vocab = vocab
        self.proj = torch.nn.Linear(width, PATCH * vocab)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h).view(-1, self.vocab)          # (M, W) -> (4 M, V)


def alignment_loss(head: AlignmentHead, mu: torch.Tensor, batch: "Batch") -> torch.Tensor:
    """CTC (blank = PAD) of each clip's text characters against its patches' read-outs. ``mu`` holds the
    clips' patch-predicting hidden states back to back, in clip order."""
    frames = head(mu).log_softmax(-1).split((batch.patches * PATCH).tolist())
    log_probs = torch.nn.utils.rnn.pad_sequence(list(frames))                    # (T, B, V)
    texts = [ids[1:-1] for ids in batch.prompt_ids]                              # drop BEGIN / SPEAK
    return F.ctc_loss(log_probs, torch.cat(texts), batch.patches * PATCH, torch.tensor([t.numel() for t in texts]),
                      blank=PAD, zero_infinity=True)


@dataclass
class Batch:
    prompt_ids: list[torch.Tensor]   # B x (L_i,)
    audio: torch.Tensor              # (B, N, 4, 32) zero-padded patches
    motion: torch.Tensor             # (B, N, 4, 40)
    patches: torch.Tensor            # (B,) real patch count per clip
    speaker: torch.Tensor            # (B, 256)
    first_motion: torch.Tensor       # (B, 40), rounded through bfloat16 like the pipeline's face condition


def collate(clips: list[Clip]) -> Batch:
    n = max(c.audio.shape[0] for c in clips) // PATCH
    audio = torch.zeros(len(clips), n, PATCH, clips[0].audio.shape[1])
    motion = torch.zeros(len(clips), n, PATCH, clips[0].motion.shape[1])
    for i, c in enumerate(clips):
        audio[i, : c.audio.shape[0] // PATCH] = c.audio.view(-1, PATCH, c.audio.shape[1])
        motion[i, : c.motion.shape[0] // PATCH] = c.motion.view(-1, PATCH, c.motion.shape[1])
    return Batch(prompt_ids=[c.prompt_ids for c in clips], audio=audio, motion=motion,
                 patches=torch.tensor([c.audio.shape[0] // PATCH for c in clips]),
                 speaker=torch.stack([c.speaker for c in clips]),
                 first_motion=torch.stack([c.motion[0] for c in clips]).to(torch.bfloat16).float())


def flow_matching_loss(estimator, x1: torch.Tensor, mu: torch.Tensor, cond: torch.Tensor,
                       global_cond: torch.Tensor) -> torch.Tensor:
    """x1, cond (M, C, 4) channels-first; mu (M, W); global_cond (M, G)."""
    m = x1.shape[0]
    mu = mu * (torch.rand(m, 1) > MU_DROP)
    cond = cond * (torch.rand(m, 1, 1) > COND_DROP)
    t = torch.sigmoid(torch.randn(m) - 0.4)
    z = torch.randn_like(x1)
    y = (1.0 - t[:, None, None]) * x1 + t[:, None, None] * z
    velocity = estimator(y, mu, t, cond, global_cond, torch.zeros_like(t))
    return F.mse_loss(velocity, z - x1)


def training_loss(model: TalkerT2AV, batch: Batch, k_repeat: int = 1,
                  flow_patches: int | None = None, align_head: AlignmentHead | None = None,
                  align_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts. ``flow_patches`` caps how many (random) patches train the flow heads per
    step, which bounds the CPU cost of the heads independently of clip lengths (None = all)."""
    B = len(batch.prompt_ids)
    valid = torch.arange(batch.audio.shape[1])[None, :] < batch.patches[:, None]  # (B, N)
    tokens = torch.zeros(*valid.shape, model.cfg.hidden)
    tokens[valid] = model.embed_patches(batch.audio[valid][None], batch.motion[valid][None])[0]  # skip padding
    task = (torch.rand(B) < TASK_PROB).float()[:, None]
    tokens[:, 0] = tokens[:, 0] + task * model.task_embedding.weight[1]
    rows, mu_index, stop_index, stop_label = [], [], [], []
    for i, ids in enumerate(batch.prompt_ids):
        n, start = int(batch.patches[i]), ids.numel()
        rows.append(torch.cat([model.embed_tokens(ids), tokens[i, :n]]))
        mu_index += [(i, start - 1 + q) for q in range(n)]
        stop_index += [(i, start + q) for q in range(n)]
        stop_label += [float(q >= n - STOP_POSITIVES) for q in range(n)]
    seq = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)                # right padding: causal, harmless
    hidden = model.backbone(seq)                                                  # (B, L, W)
    take = lambda idx: hidden[[i for i, _ in idx], [p for _, p in idx]]  # noqa: E731
    mu = take(mu_index)                                                           # (M, W)

    def targets(stream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        history = torch.cat([torch.zeros_like(stream[:, :1]), stream[:, :-1]], dim=1)
        return stream[valid].transpose(1, 2), history[valid].transpose(1, 2)     # (M, C, 4) each
    speech, speech_hist = targets(batch.audio)
    motion, motion_hist = targets(batch.motion)
    clip_of = valid.nonzero()[:, 0]
    speaker, first = batch.speaker[clip_of], batch.first_motion[clip_of]

    if flow_patches is not None and flow_patches < mu.shape[0]:
        pick = torch.randperm(mu.shape[0])[:flow_patches]
        mu, speech, speech_hist, motion, motion_hist = (x[pick] for x in (mu, speech, speech_hist, motion, motion_hist))
        speaker, first = speaker[pick], first[pick]
    rep = lambda x: x.repeat(k_repeat, *([1] * (x.ndim - 1)))  # noqa: E731  independent t and noise per copy
    loss_s = flow_matching_loss(model.speech_cfm.estimator, rep(speech), rep(mu), rep(speech_hist), rep(speaker))
    loss_m = flow_matching_loss(model.motion_cfm.estimator, rep(motion), rep(mu), rep(motion_hist), rep(first))
    labels = torch.tensor(stop_label)
    pos_weight = 0.3 * (labels.numel() - labels.sum()) / labels.sum().clamp_min(1.0)
    loss_stop = F.binary_cross_entropy_with_logits(model.stop_logit(take(stop_index)), labels, pos_weight=pos_weight)
    total = loss_s + MOTION_WEIGHT * loss_m + loss_stop
    parts = {"speech": loss_s.item(), "motion": loss_m.item(), "stop": loss_stop.item()}
    if align_head is not None and align_weight > 0:
        loss_align = alignment_loss(align_head, take(mu_index), batch)
        total = total + align_weight * loss_align
        parts["align"] = loss_align.item()
    return total, parts
