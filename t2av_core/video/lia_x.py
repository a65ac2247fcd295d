"""LIA-X (the face renderer of Talker-T2AV): configuration, the full network and ``load_lia_x``.

The network maps a reference face to an identity code z (plus encoder feature maps) and renders
z + Q m for a 40-d motion code m, where Q is an orthonormal basis of learned directions. The released
``lia-x.pt`` is a flat state dict of 596 tensors (555 parameters, 41 blur-kernel buffers); every size is
read from the tensor shapes, so the small parity model and the released one load through the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..checkpoint_io import load_state_dict_file
from ..errors import CheckpointError
from .lia_x_decoder import LEVELS, Decoder, level_prefix
from .lia_x_encoder import Encoder
from .lia_x_renderer import FaceState, LiaXRenderer, frames_to_uint8, raw_to_unit

__all__ = ["LiaX", "LiaXConfig", "LiaXRenderer", "FaceState", "load_lia_x", "build_lia_x", "frames_to_uint8",
           "raw_to_unit"]

# The image size is halved 7 times by the encoder and doubled 7 times by the decoder.
SIZE_FACTOR = 2 ** LEVELS


@dataclass(frozen=True)
class LiaXConfig:
    style_dim: int = 1024
    motion_dim: int = 40
    encoder_channels: tuple[int, ...] = (128, 256, 512, 1024, 1024, 1024, 1024)  # block1..block7
    decoder_channels: tuple[int, ...] = (1024, 1024, 1024, 1024, 512, 256, 128)  # levels 1..7
    input_size: int = 4  # side of the decoder's constant map (= side of the encoder's last conv kernel)

    @property
    def image_size(self) -> int:
        return self.input_size * SIZE_FACTOR

    @classmethod
    def released(cls) -> "LiaXConfig":
        """The geometry of the released ``lia-x.pt`` (Generator(motion_dim=40, scale=2), 512x512)."""
        return cls()

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "LiaXConfig":
        def shape(key: str) -> torch.Size:
            if key not in sd:
                raise CheckpointError(f"not a LIA-X checkpoint: key '{key}' is missing "
                                      "(expected the flat state dict of lia-x.pt)")
            return sd[key].shape

        try:
            style_dim, motion_dim = shape("dec.direction.weight")
            enc = [shape("enc.enc_2r.block1.0.weight")[0]]
            enc += [shape(f"enc.enc_2r.block{i}.0.conv1.0.weight")[0] for i in range(2, 8)]
            dec = [shape(f"dec.conv{level_prefix(level)}_1.conv.weight")[1] for level in range(1, LEVELS + 1)]
            input_size = shape("dec.input.input")[-1]
            final_kernel = shape("enc.enc_2r.block8.weight")[-1]
        except CheckpointError:  # a missing key (a ValueError too): its own message says so
            raise
        except (ValueError, IndexError) as e:  # a key with too few dimensions
            raise CheckpointError(f"not a LIA-X checkpoint: unexpected tensor ranks ({e})") from e
        if final_kernel != input_size:
            raise CheckpointError(f"inconsistent LIA-X checkpoint: the encoder ends at {final_kernel}x{final_kernel} "
                                  f"but the decoder starts at {input_size}x{input_size}")
        return cls(style_dim, motion_dim, tuple(enc), tuple(dec), input_size)


class LiaX(nn.Module):
    """``enc`` + ``dec`` under the checkpoint's names; forward-free, use the methods below."""

    def __init__(self, cfg: LiaXConfig):
        super().__init__()
        self.cfg = cfg
        self.enc = Encoder(list(cfg.encoder_channels), cfg.style_dim, cfg.motion_dim, cfg.input_size)
        self.dec = Decoder(list(cfg.decoder_channels), cfg.style_dim, cfg.motion_dim, cfg.input_size)

    def encode_identity(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, 3, R, R) in [-1, 1] -> z (B, style_dim), feature maps coarsest first."""
        return self.enc.enc_2r(x)

    def encode_motion(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, R, R) in [-1, 1] -> raw motion codes (B, motion_dim)."""
        return self.enc.motion(x)

    def motion_offset(self, motion_raw: torch.Tensor) -> torch.Tensor:
        """Raw motion (T, motion_dim) -> style offsets (T, style_dim) along the learned directions."""
        return self.dec.direction(motion_raw)

    def decode(self, style: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """style (B, style_dim), feats (batch 1 or B) -> unclamped images (B, 3, R, R)."""
        return self.dec(style, feats)


def _check_against(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k])}"
             for k in expected if k in sd and sd[k].shape != expected[k]]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:4])})")
    if problems:
        raise CheckpointError("the file does not match the LIA-X network: " + "; ".join(problems))
    not_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"LIA-X tensors must be floating point; e.g. '{not_float[0]}' is {sd[not_float[0]].dtype}")


def build_lia_x(sd: dict[str, torch.Tensor], device="cpu", dtype: torch.dtype = torch.float32) -> LiaX:
    """A LiaX whose geometry is read from ``sd`` and whose weights are exactly ``sd`` (strict)."""
    cfg = LiaXConfig.from_state_dict(sd)
    with torch.device("meta"):
        model = LiaX(cfg)  # no memory for the random init; the file's tensors are assigned below
    _check_against(model, sd)
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_lia_x(path: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32,
               allow_tf32: bool = False) -> LiaXRenderer:
    """Load ``lia-x.pt`` (or a safetensors file with the same keys) as a ``MotionRenderer``.

    The file is read by ``checkpoint_io`` (no pickled code runs; a zip-format checkpoint is memory-mapped, not
    copied). ``allow_tf32`` (CUDA, float32 only): faster, but no longer the official fp32 numerics.
    """
    return LiaXRenderer(build_lia_x(load_state_dict_file(path), device, dtype), allow_tf32=allow_tf32)
