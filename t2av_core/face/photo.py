"""A portrait file framed for the renderer: the picture kept as 8-bit RGB (for the paste-back), its face crop,
and where the crop lies. Used by the command line; the ComfyUI nodes get their pictures from the host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .boxes import FaceBox, parse_box
from .crop import FaceCrop
from ..video.face_prep import to_rgb_u8
from .locate import crop_faces


@dataclass(frozen=True)
class FramedPhoto:
    pixels: np.ndarray   # (H, W, 3) uint8, the picture as read (at most MAX_SIDE pixels on its longer side)
    crop_image: torch.Tensor  # (512, 512, 3) uint8, the face as the renderer sees it
    crop: FaceCrop

    def describe(self) -> str:
        left, top, side = self.crop.square(0)
        return (f"the {side}x{side} square at ({left}, {top}) of the {self.pixels.shape[1]}x{self.pixels.shape[0]} "
                f"picture, from {self.crop.method}")


def _stored_side(path: Path) -> int | None:
    """The longer side of the picture as stored in the file (before read_image shrinks a huge one)."""
    import av
    try:
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            return max(context.width, context.height) or None
    except (av.error.FFmpegError, IndexError):
        return None


def frame_photo(path: str | Path, box: str | FaceBox | None = None, detector: str = "auto") -> FramedPhoto:
    """Read a portrait and crop its face. ``box``: "x,y,width,height" in the file's own pixels (or a FaceBox),
    else the built-in detector looks for the face. T2AVError when no face is found, saying how to give a box."""
    from ..media.image_io import read_image
    picture = read_image(path)
    pixels = to_rgb_u8(picture)  # 8-bit once: a 4096-pixel float copy is 134 MB, and the video is 8-bit anyway
    del picture
    if isinstance(box, str):
        box = parse_box(box)
    if box is not None:  # pictures over MAX_SIDE were shrunk on reading: the box shrinks with them
        stored = _stored_side(Path(path))
        scale = max(pixels.shape[:2]) / stored if stored else 1.0
        if abs(scale - 1.0) > 1e-9:
            box = FaceBox(box.x * scale, box.y * scale, box.width * scale, box.height * scale)
    crops, crop = crop_faces(pixels, box=box, detector=detector)
    return FramedPhoto(pixels=pixels, crop_image=crops[0], crop=crop)
