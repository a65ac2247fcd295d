"""Square face crops for the renderer, and the record of where they came from (``FaceCrop``).

The square is cut at whole pixels and resized to the model size with the bit-exact INTER_AREA path the
reference uses for its input (``video.face_prep``). Where it runs past the picture the edge pixels are
repeated, so a face at the border keeps its place and size in the crop. Only the square is ever copied:
cropping a 6000x4000 photo costs the face's pixels, not the photo's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import T2AVError
from ..interfaces import FRAME_RATE
from ..video.face_prep import resize_area_u8, to_rgb_u8

CROP_SIZE = 512  # LIA-X's input size


@dataclass(frozen=True)
class FaceCrop:
    """Where each crop lies in its source: the picture's size and, per source frame, the square (left, top,
    side) in source pixels. A still picture has one square; a video one per frame at ``fps``."""
    source_size: tuple[int, int]   # (height, width)
    squares: torch.Tensor          # (T, 3) int64
    fps: float = float(FRAME_RATE)
    size: int = CROP_SIZE          # side of the crops handed to the renderer
    method: str = ""               # where the boxes came from, for messages

    @property
    def frames(self) -> int:
        return int(self.squares.shape[0])

    def source_index(self, frame: int) -> int:
        """The source frame under output frame ``frame`` (25 fps); past the source's end, its last frame."""
        if self.frames == 1:
            return 0
        index = int(math.floor(frame * self.fps / FRAME_RATE + 1e-6))
        return min(index, self.frames - 1)

    def square(self, frame: int) -> tuple[int, int, int]:
        left, top, side = (int(v) for v in self.squares[self.source_index(frame)])
        return left, top, side

    def boxes(self) -> list[dict]:
        """The squares as ComfyUI BOUNDING_BOX dicts (one list per frame), e.g. for core Draw BBoxes."""
        return [[{"x": int(l), "y": int(t), "width": int(s), "height": int(s), "label": "face crop"}]
                for l, t, s in self.squares.tolist()]


def cut_square(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """uint8 (H, W, C) -> the (side, side, C) square at (left, top); rows and columns past an edge repeat it."""
    h, w = image.shape[:2]
    if left >= 0 and top >= 0 and left + side <= w and top + side <= h:
        return image[top:top + side, left:left + side]
    rows = np.clip(np.arange(top, top + side), 0, h - 1)
    cols = np.clip(np.arange(left, left + side), 0, w - 1)
    return image[rows[:, None], cols[None, :]]


def crop_square(image, square: tuple[int, int, int], size: int = CROP_SIZE) -> np.ndarray:
    """Any picture (see ``face_prep.to_rgb_u8``: greyscale, RGB, RGBA, float 0..1 or uint8) -> uint8
    (size, size, 3) crop of ``square``, resized with INTER_AREA as the reference resizes its input."""
    left, top, side = square
    if side < 2:
        raise T2AVError(f"the face square is {side} pixel(s) wide; the face is too small to animate")
    return resize_area_u8(cut_square(to_rgb_u8(image), left, top, side), size, size)


def make_crop(source_size: tuple[int, int], squares, fps: float = FRAME_RATE, size: int = CROP_SIZE,
              method: str = "") -> FaceCrop:
    squares = torch.as_tensor(np.asarray(squares, dtype=np.int64)).reshape(-1, 3)
    if squares.shape[0] == 0:
        raise T2AVError("a face crop needs at least one square")
    if not fps > 0:
        raise T2AVError(f"the frame rate must be positive, got {fps}")
    h, w = (int(v) for v in source_size)
    return FaceCrop(source_size=(h, w), squares=squares, fps=float(fps), size=int(size), method=method)
