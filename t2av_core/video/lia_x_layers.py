"""LIA-X building blocks: equalised-learning-rate convs/linears, modulated convs, the RGB and flow heads,
and the orthonormal motion basis.

Attribute names follow the released ``lia-x.pt`` keys (e.g. ``conv.modulation.weight``); the weights are
stored *unscaled* and every layer applies its 1/sqrt(fan_in) factor at run time ("equalised lr").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .upfirdn import Blur, FusedLeakyReLU, Upsample, fused_leaky_relu


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[Blur | Upsample]? -> EqualConv2d -> FusedLeakyReLU?, numbered as in the checkpoint (0, 1, 2).

    Downsampling blurs first (pad 2,2 for k=3; 1,1 for k=1) and then convolves with stride 2, no padding.
    The conv carries its own bias only when there is no activation (whose bias replaces it).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, downsample: bool = False,
                 upsample: bool = False, bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        stride, padding = 1, kernel // 2
        if downsample:
            total = 2 + (kernel - 1)  # (blur taps - factor) + (kernel - 1)
            layers.append(Blur(((total + 1) // 2, total // 2)))
            stride, padding = 2, 0
        elif upsample:
            layers.append(Upsample())
        layers.append(EqualConv2d(in_ch, out_ch, kernel, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 conv whose input channels are scaled per sample by an affine map of the style vector.

    Done as one grouped conv over the batch (group = sample). With ``upsample`` it is a stride-2 transposed
    conv followed by a gain-4 blur, which maps 2H+1 back to 2H.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            self.blur = Blur((1, 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = self.modulation(style).view(b, 1, self.in_ch, 1, 1)
        weight = self.scale * self.weight * s  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        k = self.kernel
        x = x.reshape(1, b * self.in_ch, h, w)
        if self.upsample:
            # conv_transpose2d wants (in, out/groups, k, k) per group.
            weight = weight.transpose(1, 2).reshape(b * self.in_ch, self.out_ch, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=b)
            return self.blur(out.view(b, self.out_ch, out.shape[-2], out.shape[-1]))
        out = F.conv2d(x, weight.reshape(b * self.out_ch, self.in_ch, k, k), padding=k // 2, groups=b)
        return out.view(b, self.out_ch, h, w)


class StyledConv(nn.Module):
    """Demodulated ModulatedConv2d followed by FusedLeakyReLU (no noise injection in LIA-X)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel, style_dim, demodulate=True, upsample=upsample)
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))


class ConstantInput(nn.Module):
    """The learned 4x4 (released) starting map of the decoder, shared by every sample."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class ToRGB(nn.Module):
    """RGB head of one level: lrelu(1x1 conv + b1) + b2, plus the upsampled RGB of the coarser level.

    The leaky ReLU really is applied to the colour output; the final image is not squashed either.
    """

    def __init__(self, in_ch: int):
        super().__init__()
        self.up = Upsample()
        self.conv = ConvLayer(in_ch, 3, 1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x) + self.bias
        return out if skip is None else out + self.up(skip)


def identity_grid(size: int, batch: int, device, dtype) -> torch.Tensor:
    """(batch, size, size, 2) sampling grid in [-1, 1]; [..., 0] is x (width), [..., 1] is y (height)."""
    axis = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0).expand(batch, -1, -1, -1)


class ToFlow(nn.Module):
    """Flow head of one level: predicts 3 logits (2 offsets + 1 mask) and warps the encoder features.

    Returns (warped features, updated h, raw logits). The raw logits, not the flow, are what the next
    level receives as ``skip``; the warped features feed the RGB branch.
    """

    def __init__(self, in_ch: int, style_dim: int):
        super().__init__()
        self.up = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, h: torch.Tensor, style: torch.Tensor, feat: torch.Tensor,
                skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.conv(h, style) + self.bias
        if skip is not None:
            logits = logits + self.up(skip)
        b, _, size, _ = logits.shape  # maps are square
        grid = identity_grid(size, b, logits.device, logits.dtype)
        flow = torch.tanh(logits[:, 0:2]).permute(0, 2, 3, 1) + grid
        mask = torch.sigmoid(logits[:, 2:3])
        warped = F.grid_sample(feat, flow, mode="bilinear", padding_mode="zeros", align_corners=True) * mask
        return warped, warped + (1 - mask) * h, logits


def direction_basis(weight: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis Q (style_dim, motion_dim) of the learned motion directions.

    Q is the reduced Householder QR of (weight + 1e-8), signs included: LAPACK leaves about half of R's
    diagonal negative and the trained model depends on exactly those column signs, so no Gram-Schmidt and no
    sign normalisation. Computed on the CPU in float32 so every device uses the same signs.
    """
    w = weight.detach().to(device="cpu", dtype=torch.float32)
    q, _ = torch.linalg.qr(w + 1e-8, mode="reduced")
    return q


class Direction(nn.Module):
    """Raw 40-d motion m -> offset in style space, m @ Q^T."""

    def __init__(self, style_dim: int, motion_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(style_dim, motion_dim))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        q = direction_basis(self.weight).to(device=motion.device, dtype=motion.dtype)
        return motion @ q.T
