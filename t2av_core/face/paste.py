"""Paste-back: rendered square frames go back into the source picture or video, at its own resolution.

Each rendered frame is scaled to its crop square (the inverse of the crop) and blended in through a mask
that is 1 in the middle of the square and falls smoothly to 0 over a band at its edges, so no seam shows.
Pixels where the mask is 0 (everything outside the square, and its outermost band) are the source's own
bytes. Frames are produced batch by batch as they are consumed: a minute at 1080p never exists at once.
"""

from __future__ import annotations

import functools
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import T2AVError
from .crop import FaceCrop, cut_square
from ..video.face_prep import to_rgb_u8

DEFAULT_FEATHER = 0.12  # width of the blend band, as a fraction of the square's side


class SourceFrames:
    """The pictures under the output: a still (H, W, C) or video frames (T, H, W, C), in any layout the crop
    accepts; each frame is turned into uint8 RGB only when it is needed."""

    def __init__(self, pixels, crop: FaceCrop):
        pixels = pixels.detach().cpu() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        if pixels.ndim == 4 and pixels.shape[0] == 1:
            pixels = pixels[0]
        self.video = pixels.ndim == 4
        if self.video and pixels.shape[0] != crop.frames:
            raise T2AVError(f"the source has {pixels.shape[0]} frames but the face crop was made from "
                            f"{crop.frames}: connect the same frames to Face Crop and Paste Back")
        size = tuple(pixels.shape[1:3] if self.video else pixels.shape[:2])
        if size != tuple(crop.source_size):
            raise T2AVError(f"the source is {size[1]}x{size[0]} but the face crop was made from a "
                            f"{crop.source_size[1]}x{crop.source_size[0]} picture: paste back into the picture "
                            "that was cropped")
        self.pixels = pixels
        self.still = None if self.video else to_rgb_u8(pixels)
        self._cached: tuple[int, np.ndarray] | None = None

    def frame(self, index: int) -> np.ndarray:
        if not self.video:
            return self.still
        if self._cached is None or self._cached[0] != index:  # consecutive output frames often share one
            self._cached = (index, to_rgb_u8(self.pixels[index]))
        return self._cached[1]


@functools.lru_cache(maxsize=8)
def feather_mask(side: int, feather: float) -> torch.Tensor:
    """(side, side) float32: 1 inside, a smoothstep down to 0 across a band of ``feather * side`` at the edges."""
    band = max(1.0, feather * side)
    centres = torch.arange(side, dtype=torch.float32) + 0.5
    ramp = (torch.minimum(centres, side - centres) / band).clamp(0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    ramp[(centres < 1)] = 0.0  # the outermost pixel row stays the source's: exactly no seam at the border
    ramp[(side - centres < 1)] = 0.0
    return torch.outer(ramp, ramp)


def _scaled(frame: torch.Tensor, side: int) -> torch.Tensor:
    """(S, S, 3) in 0..1 -> (side, side, 3) in 0..255, float32; area-like when shrinking (antialiased)."""
    x = frame.permute(2, 0, 1)[None].float()
    if x.shape[-1] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < x.shape[-1])
    return x[0].permute(1, 2, 0).mul(255.0)


def colour_transfer(face: torch.Tensor, source: np.ndarray, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel gain and offset that give the rendered face (side, side, 3; 0..255) the mean and contrast
    of the source square where the mask is above one half. Gains are kept within 0.5..2."""
    inside = mask > 0.5
    if int(inside.sum()) < 16:
        return torch.ones(3), torch.zeros(3)
    ours = face[inside]
    theirs = torch.from_numpy(np.ascontiguousarray(source)).float()[inside]
    gain = (theirs.std(0) / ours.std(0).clamp_min(1e-3)).clamp(0.5, 2.0)
    return gain, theirs.mean(0) - gain * ours.mean(0)


def paste_frame(source: np.ndarray, face: torch.Tensor, square: tuple[int, int, int], feather: float,
                colour: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One uint8 source frame (H, W, 3) with the rendered face (S, S, 3; 0..1) blended into ``square``."""
    out = torch.from_numpy(source.copy())
    h, w = source.shape[:2]
    left, top, side = square
    x0, x1, y0, y1 = max(left, 0), min(left + side, w), max(top, 0), min(top + side, h)
    if x0 >= x1 or y0 >= y1:
        return out
    scaled = _scaled(face, side)
    if colour is not None:
        scaled = scaled * colour[0] + colour[1]
    inner = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    mask = feather_mask(side, feather)[inner][..., None]
    region = out[y0:y1, x0:x1].float()
    region += mask * (scaled[inner].clamp(0, 255) - region)  # mask 0: the source byte, exactly
    out[y0:y1, x0:x1] = region.round_().to(torch.uint8)
    return out


def paste_back(rendered: Iterable[torch.Tensor], source, crop: FaceCrop, feather: float = DEFAULT_FEATHER,
               colour_match: bool = False) -> Iterator[torch.Tensor]:
    """Batches of rendered frames (n, S, S, 3) in 0..1 at 25 fps -> frames (1, H, W, 3) uint8 of the source,
    one at a time, with each frame's face pasted into its crop square. Output frame i lies over the source frame shown at
    i / 25 s (a still: the picture itself; past a video's end: its last frame).

    ``colour_match`` gives the rendered face the mean and contrast of the source's face region, measured once
    on the first frame so the colour cannot flicker."""
    if not 0.0 <= feather <= 0.5:
        raise T2AVError(f"feather is a fraction of the face square between 0 and 0.5, got {feather}")
    frames = SourceFrames(source, crop)
    index, colour = 0, None
    for batch in rendered:
        batch = torch.as_tensor(batch)
        if batch.dim() != 4 or batch.shape[-1] != 3 or batch.shape[1] != batch.shape[2]:
            raise T2AVError(f"rendered frames must be square (n, S, S, 3) batches; got {tuple(batch.shape)}")
        for face in batch:  # one full-size frame at a time: a 4096-pixel frame alone is 34 MB
            square = crop.square(index)
            picture = frames.frame(crop.source_index(index))
            if colour_match and colour is None:
                colour = colour_transfer(_scaled(face, square[2]), cut_square(picture, *square),
                                         feather_mask(square[2], feather))
            yield paste_frame(picture, face, square, feather, colour)[None]
            index += 1
