"""DAC-style convolutional encoder and decoder used by WhisperX-VAE (Snake activations, dilated residual units).

Convolutions are plain ``nn.Conv1d`` / ``nn.ConvTranspose1d``: the released weights are weight-normalised
(``weight_g`` / ``weight_v``) and are folded into ``weight`` once at load time (see ``whisperx_vae``).
Module indices mirror the released key names, e.g. ``CodecEnc.block.1.block.0.block.1.weight``.
"""

from __future__ import annotations

import torch
from torch import nn


class Snake1d(nn.Module):
    """Periodic activation y = x + sin(alpha * x)^2 / alpha, one learned alpha per channel (used as is, sign included)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        # reciprocal-then-multiply (with the 1e-9 guard) is the reference's exact arithmetic
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


class ResidualUnit(nn.Module):
    """Snake -> dilated conv k7 -> Snake -> conv k1, plus the input. Keeps length and width."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(channels),
            nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            Snake1d(channels),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(channels: int) -> list[nn.Module]:
    return [ResidualUnit(channels, d) for d in (1, 3, 9)]


class EncoderBlock(nn.Module):
    """Three residual units at width/2, then a strided conv that doubles the width and divides time by ``stride``."""

    def __init__(self, width: int, stride: int):
        super().__init__()
        half = width // 2
        self.block = nn.Sequential(
            *_residual_stack(half),
            Snake1d(half),
            nn.Conv1d(half, width, 2 * stride, stride=stride, padding=(stride + 1) // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class CodecEncoder(nn.Module):
    """24 kHz wave (B, 1, L) -> acoustic features (B, out_dim, L // prod(strides)) (for even strides)."""

    def __init__(self, base_width: int, strides: list[int], out_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(1, base_width, 7, padding=3)]
        width = base_width
        for stride in strides:
            width *= 2
            layers.append(EncoderBlock(width, stride))
        layers += [Snake1d(width), nn.Conv1d(width, out_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.block(wav)


class DecoderBlock(nn.Module):
    """Snake, transposed conv (time x ``stride``, exactly), then three residual units."""

    def __init__(self, in_width: int, out_width: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_width),
            nn.ConvTranspose1d(in_width, out_width, 2 * stride, stride=stride, padding=(stride + 1) // 2,
                               output_padding=stride % 2),  # the reference adds 1 for odd strides
            *_residual_stack(out_width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class CodecDecoder(nn.Module):
    """Features (B, in_dim, T) -> tanh-bounded wave (B, 1, T * prod(rates))."""

    def __init__(self, in_dim: int, width: int, rates: list[int]):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, width, 7, padding=3)]
        for i, rate in enumerate(rates):
            # floor division, as the reference: a width not divisible by 2**len(rates) floors silently
            layers.append(DecoderBlock(width // 2**i, width // 2 ** (i + 1), rate))
        last = width // 2 ** len(rates)
        layers += [Snake1d(last), nn.Conv1d(last, 1, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
