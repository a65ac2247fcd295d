"""WavLM (Large) as the Talker-T2AV speaker encoder runs it: 16 kHz wave -> all hidden states.

Pipeline for a batch of equal-length waves (B, N):
  1. per-utterance normalisation to zero mean / unit variance (done by the upstream wrapper in the
     reference, because WavLM-Large is configured with ``normalize``),
  2. a 7-block strided conv stack -> (B, C, T') frames at 50 Hz, T' = (N - 400) // 320 + 1,
  3. LayerNorm + Linear C -> E,
  4. + GELU(weight-normed grouped positional conv),
  5. L pre-LN transformer layers whose attention logits get a relative-position bias that is computed once
     (layer 0) and gated per layer and per query.
The result is the stack of the L + 1 hidden states the ECAPA head mixes: the input of every layer, then
the final LayerNorm output (the raw output of the last layer is not part of it).
Everything runs in eval mode: no dropout, no masking, no padding mask (batch rows have equal length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# WavLM-Large's conv stack layout; the strides cannot be read from the weights, the kernels can.
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
RECEPTIVE_FIELD = 400  # samples seen by the first frame
HOP = 320  # samples per frame (product of the strides)


@dataclass
class WavLMConfig:
    conv_dim: int = 512
    dim: int = 1024
    ffn_dim: int = 4096
    n_heads: int = 16
    n_layers: int = 24
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800  # not readable from the weights: WavLM-Large's value
    gate_dim: int = 8  # output width of the per-head gate projection (two groups of 4)
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def num_frames(n_samples: int) -> int:
    """Number of 50 Hz frames WavLM produces for ``n_samples`` samples (0 if shorter than one window)."""
    return 0 if n_samples < RECEPTIVE_FIELD else (n_samples - RECEPTIVE_FIELD) // HOP + 1


def gelu_fp32(x: torch.Tensor) -> torch.Tensor:
    # Exact GELU computed in float32, as the reference does under autocast.
    return F.gelu(x.float()).type_as(x)


class ConvBlock(nn.Module):
    """Conv1d (no bias) -> LayerNorm over channels (in fp32) -> GELU."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T')
        x = self.conv(x)
        y = F.layer_norm(x.transpose(1, 2).float(), self.norm.normalized_shape,
                         self.norm.weight.float(), self.norm.bias.float(), self.norm.eps)
        return F.gelu(y.type_as(x).transpose(1, 2))


class ConvFeatureExtractor(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        dims = [1] + [cfg.conv_dim] * len(CONV_KERNELS)
        self.conv_layers = nn.ModuleList(
            ConvBlock(dims[i], dims[i + 1], k, s) for i, (k, s) in enumerate(zip(CONV_KERNELS, CONV_STRIDES)))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, C, T')
        x = wave.unsqueeze(1)
        for block in self.conv_layers:
            x = block(x)
        return x


class PositionalConv(nn.Module):
    """GELU of a weight-normed grouped conv over time; its output is added to the projected features.

    The weight norm has one gain per kernel tap (norm over output and input channels), as stored in the
    checkpoint as ``weight_g`` (1, 1, K) and ``weight_v`` (E, E / groups, K).
    """

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.groups = groups
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, E) -> (B, T, E)
        T = x.shape[1]
        v = self.weight_v
        weight = v * (self.weight_g / v.norm(dim=(0, 1), keepdim=True))
        y = F.conv1d(x.transpose(1, 2), weight, self.bias, padding=self.kernel // 2, groups=self.groups)
        # An even kernel with padding K/2 yields one frame too many: the reference drops the last one.
        y = y[:, :, :T]
        return F.gelu(y).transpose(1, 2)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional bucket id of (key index - query index); positive offsets use the upper half.

    Within each half, distances below a quarter of ``num_buckets`` get their own bucket, larger ones
    share logarithmically spaced buckets up to ``max_distance`` (and the last bucket beyond it).
    """
    half = num_buckets // 2
    exact = half // 2
    bucket = (relative_position > 0).long() * half
    distance = relative_position.abs()
    # Clamp only to keep log() finite; those entries take the exact branch anyway.
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)


class SelfAttention(nn.Module):
    """Multi-head attention with a gated relative-position bias; layer 0 also owns the bias table."""

    def __init__(self, cfg: WavLMConfig, has_bias_table: bool):
        super().__init__()
        E, H = cfg.dim, cfg.n_heads
        self.q_proj = nn.Linear(E, E)
        self.k_proj = nn.Linear(E, E)
        self.v_proj = nn.Linear(E, E)
        self.out_proj = nn.Linear(E, E)
        self.grep_linear = nn.Linear(cfg.head_dim, cfg.gate_dim)
        self.grep_a = nn.Parameter(torch.ones(1, H, 1, 1))
        self.relative_attention_bias = nn.Embedding(cfg.num_buckets, H) if has_bias_table else None
        self.n_heads = H
        self.num_buckets = cfg.num_buckets
        self.max_distance = cfg.max_distance

    def position_bias(self, T: int) -> torch.Tensor:
        """Un-gated bias (H, T, T) for query i (rows) and key j (columns)."""
        pos = torch.arange(T, device=self.relative_attention_bias.weight.device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head, per-query bias gate (B, H, T, 1), computed from the layer's normed input (not from q)."""
        B, T, E = x.shape
        xh = x.view(B, T, self.n_heads, E // self.n_heads).transpose(1, 2)  # (B, H, T, D)
        g = self.grep_linear(xh).view(B, self.n_heads, T, 2, -1).sum(-1)  # (B, H, T, 2)
        a, b = torch.sigmoid(g).chunk(2, dim=-1)
        return a * (b * self.grep_a - 1.0) + 2.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # (B, T, E), (H, T, T)
        B, T, E = x.shape
        H = self.n_heads
        q = self.q_proj(x).view(B, T, H, -1).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, H, -1).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, -1).transpose(1, 2)
        mask = self.gate(x) * bias.to(x.dtype)  # (B, H, T, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, E))


class EncoderLayer(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, cfg: WavLMConfig, has_bias_table: bool):
        super().__init__()
        self.self_attn = SelfAttention(cfg, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.dim)
        self.final_layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), bias)
        return x + self.fc2(gelu_fp32(self.fc1(self.final_layer_norm(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.pos_conv = PositionalConv(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.layers = nn.ModuleList(EncoderLayer(cfg, has_bias_table=(i == 0)) for i in range(cfg.n_layers))
        self.layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, E) -> (L + 1, B, T, E)
        x = x + self.pos_conv(x)
        # Computed once and shared un-gated by every layer; each layer gates it itself.
        bias = self.layers[0].self_attn.position_bias(x.shape[1])
        hidden = []
        for layer in self.layers:
            hidden.append(x)
            x = layer(x, bias)
        hidden.append(self.layer_norm(x))
        return torch.stack(hidden)


class WavLM(nn.Module):
    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = ConvFeatureExtractor(cfg)
        self.layer_norm = nn.LayerNorm(cfg.conv_dim, eps=cfg.norm_eps)
        self.post_extract_proj = nn.Linear(cfg.conv_dim, cfg.dim)
        self.encoder = Encoder(cfg)
        # Training-time mask embedding: stored in the checkpoint, never used at inference.
        self.mask_emb = nn.Parameter(torch.zeros(cfg.dim))

    @staticmethod
    def normalize(wave: torch.Tensor) -> torch.Tensor:
        """Zero mean, unit variance over each whole utterance (B, N), eps 1e-5, in fp32."""
        return F.layer_norm(wave.float(), wave.shape[-1:], eps=1e-5)

    def project(self, wave_normalized: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, T', E)
        features = self.feature_extractor(wave_normalized).transpose(1, 2)  # (B, T', C)
        return self.post_extract_proj(self.layer_norm(features))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Raw waves (B, N) at 16 kHz -> hidden states (L + 1, B, T', E)."""
        # Normalise in fp32 before any cast to the model's (possibly lower) precision.
        wave = self.normalize(wave).to(self.post_extract_proj.weight.dtype)
        return self.encoder(self.project(wave))
