"""Qwen3 decoder (the Talker-T2AV backbone), fed with embeddings rather than token ids.

Grouped-query attention with a per-head RMSNorm on queries and keys, half-split RoPE (theta 1e6), SwiGLU
MLP, pre-norm residual blocks and a final norm. Parameter names follow the checkpoint (``llm.model.*``).

The KV cache is allocated once for the whole generation (``new_cache``): every step writes its keys and
values at explicit positions and attends over the full, fixed-size cache with a position mask, so step
shapes never change and nothing grows (ready for CUDA-graph capture). The cache belongs to the caller, not
to the model, so several generations may share one model (e.g. from two threads) without mixing states.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import BackboneConfig


class RMSNorm(nn.Module):
    """Qwen3 norm: statistics in fp32, result cast back to the input dtype before the gain."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin of ``position * theta^(-2i/d)`` for half-split rotation; computed per call (tiny)."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.register_buffer("inv_freq", self._inv_freq(), persistent=False)

    def _inv_freq(self, device=None) -> Tensor:
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim
        return 1.0 / (self.theta ** exponent)

    def reset_buffers(self, device) -> None:
        """Recompute the (non-persistent) frequencies, e.g. after loading a model built on the meta device."""
        self.inv_freq = self._inv_freq(device)

    def forward(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        freqs = positions.float()[:, None] * self.inv_freq[None, :]  # (L, d/2)
        angles = torch.cat([freqs, freqs], dim=-1)  # (L, d)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half_split(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, L, d): pairs (x_i, x_{i+d/2}) are rotated together (HF convention, not interleaved)."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class KVCache:
    """Fixed-size key/value storage for one layer: (B, n_kv_heads, max_len, head_dim)."""

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)

    def update(self, positions: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k.index_copy_(2, positions, k)
        self.v.index_copy_(2, positions, v)
        return self.k, self.v


class DecodeCache:
    """The whole backbone's cache for one generation: one KVCache per layer, ``max_len`` positions."""

    def __init__(self, cfg: BackboneConfig, batch: int, max_len: int, device, dtype):
        self.max_len = max_len
        self.layers = [KVCache(batch, cfg.n_kv_heads, max_len, cfg.head_dim, device, dtype)
                       for _ in range(cfg.layers)]


class Attention(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.hidden, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.eps)  # per head, before RoPE
        self.k_norm = RMSNorm(cfg.head_dim, cfg.eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, mask: Tensor | None,
                cache: KVCache | None = None, valid: int | None = None) -> Tensor:
        """``valid``: how many cached positions hold keys (attention reads only those); None reads the whole
        cache under ``mask`` (static shapes, for a captured step)."""
        B, L, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, L, self.n_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, L, self.n_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate_half_split(q, cos, sin), rotate_half_split(k, cos, sin)
        if cache is not None:
            k, v = cache.update(positions, k, v)
            if valid is not None:
                k, v = k[:, :, :valid], v[:, :, :valid]
        # grouped-query attention: query head h reads key/value head h // (n_heads / n_kv_heads), without
        # copying the keys and values once per query head
        if mask is None and cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, L, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.eps)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, mask: Tensor | None,
                cache: KVCache | None = None, valid: int | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, positions, mask, cache, valid)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen3Model(nn.Module):
    """``llm.model``: embeddings (tied with the unused LM head), layers and final norm."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.eps)
        self.rotary = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)

    def new_cache(self, batch: int, max_len: int) -> DecodeCache:
        """A cache for ``max_len`` positions (prompt + every generated patch), on the weights' device and dtype."""
        ref = self.embed_tokens.weight
        return DecodeCache(self.cfg, batch, max_len, ref.device, ref.dtype)

    def forward(self, inputs_embeds: Tensor, start_pos: int | Tensor = 0, cache: DecodeCache | None = None,
                pad: Tensor | None = None) -> Tensor:
        """inputs_embeds (B, L, D) at cache slots start_pos .. start_pos+L-1 -> post-final-norm states (B, L, D).

        Without ``cache``: plain causal attention over the given positions. With it, the keys and values are
        written into the cache and attention reads every earlier slot from it. ``start_pos`` may be a 0-d
        tensor so a captured graph can replay with a new position. ``pad`` (B,) long: how many leading slots of
        each sample are left padding (prompts of different lengths in one batch): they are never attended to,
        and a sample's positions (for RoPE) count from its first real slot, as if it ran alone.
        """
        B, L, _ = inputs_embeds.shape
        device = inputs_embeds.device
        slots = torch.arange(L, device=device) + start_pos
        positions = slots if pad is None else (slots[None, :] - pad[:, None]).clamp_min(0)
        cos, sin = self.rotary(positions.reshape(-1), inputs_embeds.dtype)
        if pad is not None:  # one RoPE row per sample: (B, 1, L, d) against q, k (B, H, L, d)
            cos, sin = cos.view(B, 1, L, -1), sin.view(B, 1, L, -1)
        mask, valid, layer_caches = None, None, [None] * len(self.layers)
        if cache is not None:
            layer_caches = cache.layers
            if isinstance(start_pos, int):  # eager: read only the slots written so far
                valid = start_pos + L
                if valid > cache.max_len:
                    raise ValueError(f"KV cache holds {cache.max_len} positions, asked for {valid}")
            keys = torch.arange(valid or cache.max_len, device=device)
            if L > 1 or valid is None:  # slot j sees keys 0..j (one new slot at the end sees them all)
                mask = slots[:, None] >= keys[None, :]
            if pad is not None:  # and never a sample's padding (a padded slot sees itself, to stay defined)
                real = keys[None, None, :] >= pad[:, None, None]
                causal = mask if mask is not None else torch.ones(L, keys.shape[0], dtype=torch.bool, device=device)
                mask = (causal[None] & (real | (slots[None, :, None] == keys[None, None, :])))[:, None]
        x = inputs_embeds
        for layer, layer_cache in zip(self.layers, layer_caches):
            x = layer(x, cos, sin, slots, mask, layer_cache, valid)
        return self.norm(x)
