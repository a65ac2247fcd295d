"""The small bidirectional transformer used by the patch encoders and inside the flow-head DiTs.

Pre-norm blocks with an RMSNorm whose gain is called ``scale``, one fused q/k/v projection, RoPE over
*interleaved* pairs (x_2i, x_2i+1) read from a stored table ``rope.w``, no attention mask, SwiGLU MLP.
Parameter names follow the checkpoint (``*.blocks.{j}.norm1.scale``, ``attn.qkv``, ``mlp.fc1`` ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import EncoderConfig


class ScaleRMSNorm(nn.Module):
    """RMSNorm computed in the input dtype (as the reference does), gain named ``scale``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps) * self.scale


def rope_table(rows: int, head_dim: int, base: float = 10000.0) -> Tensor:
    """(rows, head_dim/2, 2) table of (cos, sin)(p * base^(-2i/head_dim)); the checkpoint stores it."""
    theta = 1.0 / (base ** (torch.arange(0, head_dim, 2) / head_dim))
    angles = torch.outer(torch.arange(rows), theta).float()
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


class PairRoPE(nn.Module):
    """Rotary embedding on interleaved pairs, positions 0..L-1 of each (short) sequence."""

    def __init__(self, rows: int, head_dim: int):
        super().__init__()
        # persistent: the checkpoint carries this table, and loading it (not recomputing) keeps its rounding
        self.register_buffer("w", rope_table(rows, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, L, d) -> rotated x."""
        L = x.shape[2]
        w = self.w[:L].to(x.dtype)
        cos, sin = w[None, None, :, :, 0], w[None, None, :, :, 1]  # (1, 1, L, d/2)
        pairs = x.unflatten(-1, (-1, 2))
        even, odd = pairs[..., 0], pairs[..., 1]
        return torch.stack([cos * even - sin * odd, cos * odd + sin * even], dim=-1).flatten(-2)


class SelfAttention(nn.Module):
    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: Tensor, rope: PairRoPE) -> Tensor:
        B, L, D = x.shape
        q, k, v = (t.view(B, L, self.n_heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(rope(q), rope(k), v)  # bidirectional: no mask
        return self.proj(y.transpose(1, 2).reshape(B, L, D))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=False)  # gate
        self.fc2 = nn.Linear(width, hidden, bias=False)  # up
        self.proj = nn.Linear(hidden, width, bias=False)  # down

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.silu(self.fc1(x)) * self.fc2(x))


class Block(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm1 = ScaleRMSNorm(cfg.width, cfg.eps)
        self.attn = SelfAttention(cfg.width, cfg.n_heads)
        self.norm2 = ScaleRMSNorm(cfg.width, cfg.eps)
        self.mlp = SwiGLU(cfg.width, cfg.mlp_hidden)

    def forward(self, x: Tensor, rope: PairRoPE) -> Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class BlockStack(nn.Module):
    """input_proj -> blocks -> final norm (the DiT's ``decoder``; the patch encoder adds a CLS token)."""

    def __init__(self, in_dim: int, cfg: EncoderConfig):
        super().__init__()
        self.input_proj = nn.Linear(in_dim, cfg.width, bias=True)
        self.rope = PairRoPE(cfg.rope_rows, cfg.head_dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = ScaleRMSNorm(cfg.width, cfg.eps)

    def run_blocks(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, self.rope)
        return self.norm(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.run_blocks(self.input_proj(x))


class PatchEncoder(BlockStack):
    """(B, T, P, D_in) frames -> (B, T, width): one token per patch, read from a CLS slot.

    Each patch is its own sequence [CLS, f_1 .. f_P] (positions 0..P), so patches never see each other.
    """

    def __init__(self, in_dim: int, cfg: EncoderConfig):
        super().__init__(in_dim, cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 1, cfg.width))

    def forward(self, x: Tensor) -> Tensor:
        B, T, P, _ = x.shape
        frames = self.input_proj(x)
        seq = torch.cat([self.cls_token.expand(B, T, 1, -1), frames], dim=2)  # (B, T, P+1, W)
        out = self.run_blocks(seq.flatten(0, 1))
        return out[:, 0].unflatten(0, (B, T))
