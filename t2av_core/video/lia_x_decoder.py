"""LIA-X decoder: a style vector (identity z + motion direction) and the encoder's feature pyramid -> image.

From a learned constant map, seven levels each double the resolution. At every level a chain of styled
convs predicts a flow field and mask that warp the matching encoder feature map; the warped features go
through plain residual convs into an RGB head whose output is added to the upsampled RGB of the level
before (StyleGAN2 skip architecture). Module names follow the released checkpoint: level 1 is called
``_512`` (``conv_512_1``, ``flow_512``...), levels 2..7 are numbered (``conv2_1``, ``flow2``...).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lia_x_layers import ConstantInput, ConvLayer, Direction, StyledConv, ToFlow, ToRGB

LEVELS = 7
BLOCKS_PER_LEVEL = 4
GROUPNORM_GROUPS = 32


class FlowResBlock(nn.Module):
    """Two styled 3x3 convs with GroupNorm between; the residual is the *first* conv's output."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPNORM_GROUPS, channels)
        self.conv1 = StyledConv(channels, channels, 3, style_dim)
        self.conv2 = StyledConv(channels, channels, 3, style_dim)
        self.gamma = nn.Parameter(1e-5 * torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x, style)
        return self.gamma * self.conv2(self.norm(h), style) + h


class DecoderResBlock(nn.Module):
    """Two plain 3x3 ConvLayers with an identity skip, scaled by 1/sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + x) / math.sqrt(2)


def level_prefix(level: int) -> str:
    """Name infix of decoder level 1..7: '_512' for the first (conv_512_1, rgb_512), else the number (conv2_1, rgb2)."""
    return "_512" if level == 1 else str(level)


class Decoder(nn.Module):
    """``dec``: ``channels`` are the widths of levels 1..7; the constant input has ``channels[0]``."""

    def __init__(self, channels: list[int], style_dim: int, motion_dim: int, input_size: int):
        super().__init__()
        assert len(channels) == LEVELS
        self.direction = Direction(style_dim, motion_dim)
        self.input = ConstantInput(channels[0], input_size)
        self.conv1 = StyledConv(channels[0], channels[0], 3, style_dim)
        previous = channels[0]
        for level, width in enumerate(channels, start=1):
            p = level_prefix(level)
            self.add_module(f"conv{p}_1", StyledConv(previous, width, 3, style_dim, upsample=True))
            self.add_module(f"conv{p}_2", nn.ModuleList(FlowResBlock(width, style_dim)
                                                        for _ in range(BLOCKS_PER_LEVEL)))
            if level > 1:
                self.add_module(f"conv{p}_2_up", ConvLayer(previous, width, 3, upsample=True))
            self.add_module(f"conv{p}_2_rgb", nn.ModuleList(DecoderResBlock(width)
                                                            for _ in range(BLOCKS_PER_LEVEL)))
            self.add_module(f"rgb{p}", ToRGB(width))
            self.add_module(f"flow{p}", ToFlow(width, style_dim))
            previous = width

    def forward(self, style: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """style (B, style_dim) = z + direction(motion); feats coarsest first (batch 1 or B) -> (B, 3, R, R).

        The output is not clamped; values outside [-1, 1] are normal.
        """
        b = style.shape[0]
        h = self.conv1(self.input(b), style)
        warped = rgb = logits = None
        for level in range(1, LEVELS + 1):
            p = level_prefix(level)
            h = getattr(self, f"conv{p}_1")(h, style)
            for block in getattr(self, f"conv{p}_2"):
                h = block(h, style)
            feat = feats[level - 1]
            feat = feat.expand(b, -1, -1, -1) if feat.shape[0] == 1 else feat
            level_warped, h, logits = getattr(self, f"flow{p}")(h, style, feat, logits)
            if warped is not None:
                level_warped = level_warped + getattr(self, f"conv{p}_2_up")(warped)
            for block in getattr(self, f"conv{p}_2_rgb"):
                level_warped = block(level_warped)
            warped = level_warped
            rgb = getattr(self, f"rgb{p}")(warped, rgb)
        return rgb
