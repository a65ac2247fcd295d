"""LIA-X encoder: image -> identity code z + a pyramid of feature maps, and z -> 40-d motion code.

Seven stride-2 stages take a 512x512 image (released) down to 4x4; a final 4x4 valid conv gives z. The
decoder warps the seven stage outputs, so they are returned coarsest first (the order it consumes them).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lia_x_layers import ConvLayer, EqualConv2d, EqualLinear


class EncoderResBlock(nn.Module):
    """3x3 conv, then a blurred stride-2 3x3 conv; skip is a blurred stride-2 1x1 conv. Halves the size."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, out_ch, 3)
        self.conv2 = ConvLayer(out_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class IdentityEncoder(nn.Module):
    """``enc.enc_2r``: x (B, 3, R, R) in [-1, 1] -> z (B, style_dim), feats [coarsest .. finest].

    ``channels`` lists the widths of block1..block7 (block_512 keeps the last one).
    """

    def __init__(self, channels: list[int], style_dim: int, final_kernel: int):
        super().__init__()
        assert len(channels) == 7
        self.block1 = ConvLayer(3, channels[0], 1)
        for i in range(1, 7):  # block2..block7, each a one-element Sequential in the checkpoint
            self.add_module(f"block{i + 1}", nn.Sequential(EncoderResBlock(channels[i - 1], channels[i])))
        self.block_512 = EncoderResBlock(channels[6], channels[6])
        self.block8 = EqualConv2d(channels[6], style_dim, final_kernel, padding=0, bias=False)

    def forward(self, x: torch.Tensor, keep_features: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x
        for i in range(1, 8):
            h = getattr(self, f"block{i}")(h)
            if keep_features:  # the motion path only needs z; dropping the maps bounds its memory
                feats.append(h)
        z = self.block8(self.block_512(h))
        return z.flatten(1), feats[::-1]


class Encoder(nn.Module):
    """``enc``: the identity encoder plus ``enc_r2t``, the linear map from z to the motion code."""

    def __init__(self, channels: list[int], style_dim: int, motion_dim: int, final_kernel: int):
        super().__init__()
        self.enc_2r = IdentityEncoder(channels, style_dim, final_kernel)
        self.enc_r2t = nn.Sequential(EqualLinear(style_dim, motion_dim))

    def motion(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, R, R) in [-1, 1] -> raw motion codes (B, motion_dim)."""
        z, _ = self.enc_2r(x, keep_features=False)
        return self.enc_r2t(z)
