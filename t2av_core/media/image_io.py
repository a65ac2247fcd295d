"""Reading a still image (the face to animate) with PyAV, whatever its pixel format."""

from __future__ import annotations

import numbers
from pathlib import Path

import av
import numpy as np
import torch

from ..errors import T2AVError
from ._container import first_stream, open_input, upright_array

# Decompression-bomb guard: a picture over 200 megapixels (e.g. 16000x12500) is refused before it is decoded.
# A PNG of one colour packs 256 megapixels into 775 KB, and decoding it alone takes gigabytes.
MAX_PIXELS = 200_000_000
# Default longest side of a picture read here: larger ones are downscaled while they are converted (the
# face renderer only uses a 512-pixel crop, and a float copy of a 100-megapixel photo takes 1.2 GB).
MAX_SIDE = 4096
# FFmpeg's own check counts rows padded for alignment, so its limit is a little looser than ours; ours is
# exact whenever the file states its size, FFmpeg's stops pictures whose size is only known once decoded.
_DECODER_OPTIONS = {"max_pixels": str(MAX_PIXELS + MAX_PIXELS // 16)}
_RESIZE_HINT = f"resize it to at most {MAX_SIDE} pixels on the long side and try again"


def read_image(path: str | Path, background: float = 1.0, max_side: int | None = MAX_SIDE) -> torch.Tensor:
    """Decode an image file (PNG, JPEG, WebP, BMP, TIFF, ... or the first frame of a video).

    Returns (H, W, 3) float32 in [0, 1]. Greyscale is spread to three channels, palette images are
    expanded, 16-bit images keep their precision, and transparent pixels are composited over a plain
    ``background`` grey level (1.0 = white, so a cut-out face does not sit on black). A rotation stored in
    the file (display matrix) is applied.

    A picture whose longer side exceeds ``max_side`` pixels (default ``MAX_SIDE`` = 4096; None keeps the
    full size) is downscaled by area averaging, keeping its aspect ratio, as it is converted. Pictures of
    more than ``MAX_PIXELS`` (200 megapixels) are refused before decoding (decompression bombs).
    """
    if not 0.0 <= background <= 1.0:
        raise T2AVError(f"background must be a grey level in [0, 1], got {background}")
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, numbers.Integral)
                                 or max_side < 1):
        raise T2AVError(f"max_side must be a whole number of pixels (1 or more), or None for full size; "
                        f"got {max_side!r}")
    # The limit goes to the decoder too: FFmpeg decodes a first frame while it probes the file.
    with open_input(path, "image", options=_DECODER_OPTIONS) as container:
        stream = first_stream(container, "video", path)
        frame = _first_frame(container, stream, path)
        return _to_rgb(frame, background, max_side)


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream, path: str | Path) -> av.VideoFrame:
    """The first picture, decoded only if it is within MAX_PIXELS."""
    size_known = stream.codec_context.width > 0
    if size_known:
        _check_pixels(stream.codec_context.width, stream.codec_context.height, path)
    stream.codec_context.options = dict(_DECODER_OPTIONS)  # the decoder refuses a bomb before allocating it
    try:
        frame = next(container.decode(stream), None)
    except av.error.ArgumentError as error:  # EINVAL: FFmpeg's size check, when probing could not size it
        if size_known:
            raise
        raise T2AVError(f"{path} is larger than the {MAX_PIXELS // 1_000_000}-megapixel limit for pictures "
                        f"(a guard against decompression bombs): {_RESIZE_HINT}") from error
    if frame is None:
        raise T2AVError(f"{path} holds no decodable picture")
    _check_pixels(frame.width, frame.height, path)
    return frame


def _check_pixels(width: int, height: int, path: str | Path) -> None:
    if width * height > MAX_PIXELS:
        raise T2AVError(f"{path} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than "
                        f"the {MAX_PIXELS // 1_000_000}-megapixel limit for pictures (a guard against "
                        f"decompression bombs): {_RESIZE_HINT}")


def _to_rgb(frame: av.VideoFrame, background: float, max_side: int | None) -> torch.Tensor:
    # RGBA covers every source format (alpha is opaque where there was none); deep sources stay 16-bit.
    deep = max(component.bits for component in frame.format.components) > 8
    size = _fitted_size(frame.width, frame.height, max_side)
    rgba = upright_array(frame, "rgba64le" if deep else "rgba", interpolation="AREA" if size else None, **size)
    return torch.from_numpy(_composite(rgba, 65535.0 if deep else 255.0, background))


def _fitted_size(width: int, height: int, max_side: int | None) -> dict[str, int]:
    """``width``/``height`` keywords that bring the longer side down to ``max_side``; {} when it fits."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return {}
    return {"width": max(1, round(width * max_side / longer)), "height": max(1, round(height * max_side / longer))}


def _composite(rgba: np.ndarray, scale: float, background: float) -> np.ndarray:
    """Integer RGBA (H, W, 4) -> float32 RGB (H, W, 3) in [0, 1] over a grey ``background``. Only the RGB part
    is ever held as float (no float RGBA copy), and fully opaque pictures skip the blend."""
    rgb = rgba[..., :3].astype(np.float32)
    rgb /= scale
    alpha = rgba[..., 3:]
    if alpha.min() < scale:
        opacity = alpha.astype(np.float32) / scale
        rgb *= opacity
        rgb += background * (1.0 - opacity)
    return rgb


# Float pictures up to this are taken as 0..1: resizing filters overshoot 1 a little, and a 0..255 picture
# that dark would be black either way.
UNIT_RANGE_SLACK = 2.0


def pixel_scale(pixels: torch.Tensor, what: str = "the picture") -> float:
    """The value of full white in a picture tensor from a host (e.g. ComfyUI IMAGE) or another library:
    255 for uint8 and for floats in 0..255, 1 for floats in 0..1; anything brighter is refused."""
    if pixels.dtype == torch.uint8:
        return 255.0
    peak = float(pixels.max()) if pixels.numel() else 0.0
    if peak <= UNIT_RANGE_SLACK:
        return 1.0
    if peak <= 255.0:
        return 255.0
    raise T2AVError(f"{what} has pixel values up to {peak:g}; give floats in 0..1, or 0..255 values (uint8)")


def unit_rgb(pixels: torch.Tensor, scale: float, background: float = 1.0) -> torch.Tensor:
    """Pixels (..., 3) or (..., 4) with white at ``scale`` -> float32 RGB in [0, 1]. RGBA is composited over a
    ``background`` grey (white by default), as ``read_image`` does, so a cut-out face keeps a light backdrop."""
    pixels = pixels.float() / scale if scale != 1.0 else pixels.float()
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:].clamp(0, 1)
        pixels = pixels[..., :3] * alpha + background * (1.0 - alpha)
    return pixels.clamp(0, 1)
