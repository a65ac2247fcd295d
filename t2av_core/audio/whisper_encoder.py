"""Whisper audio encoder (the semantic branch of WhisperX-VAE): log-mel (B, n_mels, 3000) -> (B, 1500, width).

Two GELU convs (the second halves the frame rate to 50 Hz), a fixed sinusoid position table (stored in
the checkpoint), pre-LayerNorm transformer blocks with non-causal attention, and a final LayerNorm.
The number of heads is not visible in the weight shapes, so it is part of the config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from t2av_core.errors import T2AVError


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (as the reference does, for low-precision runs).

    The gain and bias are promoted too: layer_norm refuses fp32 input with 16-bit parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).type(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)  # Whisper's key projection has no bias
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), no mask
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class EncoderLayer(nn.Module):
    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.attn = SelfAttention(width, n_heads)
        self.attn_ln = LayerNormFP32(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.mlp_ln = LayerNormFP32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperAudioEncoder(nn.Module):
    def __init__(self, n_mels: int, n_ctx: int, width: int, n_heads: int, n_layers: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(n_ctx, width))  # loaded from the checkpoint
        self.blocks = nn.ModuleList(EncoderLayer(width, n_heads) for _ in range(n_layers))
        self.ln_post = LayerNormFP32(width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, n_mels, 2 * n_ctx)
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1:] != self.positional_embedding.shape:
            raise T2AVError(f"Whisper encoder needs exactly {2 * self.positional_embedding.shape[0]} mel frames "
                            f"(a 30-s window); got {mel.shape[-1]}")
        x = x + self.positional_embedding.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)
