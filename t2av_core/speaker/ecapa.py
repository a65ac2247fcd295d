"""ECAPA-TDNN head: WavLM hidden states -> 256-d speaker embedding (not L2-normalised).

  softmax-weighted sum of the L + 1 hidden states -> (+1e-6) InstanceNorm over time
  -> layer1 (conv k5) -> three SE-Res2 blocks (dilation 2, 3, 4), each fed by the previous one
  -> concat(blocks) -> conv k1 + ReLU -> attentive statistics pooling -> BatchNorm -> Linear.
Every conv unit is conv -> ReLU -> BatchNorm (in that order), with eval-mode running statistics.
Attribute names (``Conv1dReluBn1``, ``SE_Connect`` ...) follow the released checkpoint's keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

DILATIONS = (2, 3, 4)  # of the three SE-Res2 blocks; fixed by the reference, not readable from the weights


@dataclass
class EcapaConfig:
    n_hidden_states: int = 25  # WavLM-Large: 24 layer inputs + the final LayerNorm output
    feat_dim: int = 1024  # width of the hidden states
    channels: int = 512
    res2_scale: int = 8  # Res2 splits the channels into this many chunks
    se_dim: int = 128  # squeeze-excitation bottleneck
    aggregation_dim: int = 1536
    attention_dim: int = 128
    embed_dim: int = 256


class Conv1dReluBn(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel: int = 1, dilation: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, dilation=dilation, padding=padding)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T)
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Hierarchical residual conv: chunk i (< scale - 1) is convolved together with the previous result;
    the last chunk passes through unchanged."""

    def __init__(self, channels: int, scale: int, dilation: int):
        super().__init__()
        width = channels // scale
        self.width = width
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, 3, dilation=dilation, padding=dilation) for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        chunks = torch.split(x, self.width, dim=1)
        out = []
        y = None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = chunks[i] if y is None else y + chunks[i]
            y = bn(F.relu(conv(y)))
            out.append(y)
        out.append(chunks[-1])
        return torch.cat(out, dim=1)


class SE_Connect(nn.Module):
    """Squeeze-excitation: rescale each channel by a gate computed from its time average."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        s = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))  # (B, C)
        return x * s.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, cfg: EcapaConfig, dilation: int):
        super().__init__()
        C = cfg.channels
        self.Conv1dReluBn1 = Conv1dReluBn(C, C)
        self.Res2Conv1dReluBn = Res2Conv1dReluBn(C, cfg.res2_scale, dilation)
        self.Conv1dReluBn2 = Conv1dReluBn(C, C)
        self.SE_Connect = SE_Connect(C, cfg.se_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        y = self.Conv1dReluBn2(self.Res2Conv1dReluBn(self.Conv1dReluBn1(x)))
        return x + self.SE_Connect(y)


class AttentiveStatsPool(nn.Module):
    """Per-channel attention over time -> [weighted mean, weighted std] (B, 2 * A)."""

    def __init__(self, dim: int, attention_dim: int):
        super().__init__()
        self.linear1 = nn.Conv1d(dim, attention_dim, 1)
        self.linear2 = nn.Conv1d(attention_dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, A, T) -> (B, 2A)
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(x))), dim=2)
        mean = (alpha * x).sum(dim=2)
        var = (alpha * x * x).sum(dim=2) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-9).sqrt()], dim=1)


class EcapaTdnn(nn.Module):
    def __init__(self, cfg: EcapaConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_weight = nn.Parameter(torch.zeros(cfg.n_hidden_states))
        self.layer1 = Conv1dReluBn(cfg.feat_dim, cfg.channels, kernel=5, padding=2)
        self.layer2 = SERes2Block(cfg, DILATIONS[0])
        self.layer3 = SERes2Block(cfg, DILATIONS[1])
        self.layer4 = SERes2Block(cfg, DILATIONS[2])
        self.conv = nn.Conv1d(3 * cfg.channels, cfg.aggregation_dim, 1)
        self.pooling = AttentiveStatsPool(cfg.aggregation_dim, cfg.attention_dim)
        self.bn = nn.BatchNorm1d(2 * cfg.aggregation_dim)
        self.linear = nn.Linear(2 * cfg.aggregation_dim, cfg.embed_dim)

    def mix_hidden_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states (L + 1, B, T, E) -> instance-normed weighted sum (B, E, T)."""
        w = torch.softmax(self.feature_weight, dim=-1)
        x = (w[:, None, None, None] * hidden).sum(dim=0).transpose(1, 2)
        # The reference adds 1e-6 before the norm (it cancels out); kept to stay bit-close.
        return F.instance_norm(x + 1e-6, eps=1e-5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (L + 1, B, T, E) -> (B, embed_dim)
        x = self.layer1(self.mix_hidden_states(hidden))
        out2 = self.layer2(x)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        x = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        return self.linear(self.bn(self.pooling(x)))
