"""Small StyleGAN2-style ops used by LIA-X, in plain PyTorch (no compiled kernels).

* ``upfirdn2d``: upsample by zero insertion, pad, filter with a 2-D FIR kernel, keep every ``down``-th
  sample. The filter is a true convolution (the kernel is flipped), as in the reference's pure-torch path.
* ``fused_leaky_relu``: sqrt(2) * leaky_relu(x + bias, 0.2), the "fused" activation of StyleGAN2.
* ``Blur`` / ``Upsample`` / ``Downsample``: modules that hold a 4x4 kernel as a *persistent buffer*; the
  released checkpoint stores those buffers, so strict loading needs them to exist.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


def make_blur_kernel(taps=BLUR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D kernel outer(taps, taps) normalised to sum ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum() * gain


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """x (N, C, H, W) -> (N, C, (H*up + p0 + p1 - kh)//down + 1, same for W).

    Zero insertion puts the input samples at multiples of ``up`` (the up-1 zeros follow each sample),
    padding is applied after it, and the same ``pad`` is used on both axes.
    """
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    if up > 1:
        spread = x.new_zeros(n, c, h * up, w * up)
        spread[:, :, ::up, ::up] = x
        x = spread
    x = F.pad(x, (p0, p1, p0, p1))  # negative values crop
    # conv2d correlates, so flipping the kernel makes this a true convolution.
    weight = kernel.flip(0, 1).to(x.dtype).view(1, 1, kh, kw).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=down, groups=c)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                     scale: float = math.sqrt(2.0)) -> torch.Tensor:
    """scale * leaky_relu(x + bias, 0.2); ``bias`` is per channel (dim 1).

    The slope is always 0.2: the reference's pure-torch path ignores its slope argument.
    """
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, 0.2) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """FIR filter at the same rate. gain 1 in front of stride-2 convs, gain 4 after a stride-2 transposed conv."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling: zero insertion, then the blur with gain 4 (so the mean level is kept)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))


class Downsample(nn.Module):
    """2x downsampling: blur with gain 1, keep every second sample. LIA-X itself never uses it."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, down=2, pad=(1, 1))
