"""Reading a still image (the face to animate) with PyAV, whatever its pixel format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import T2AVError
from ._container import first_stream, open_input, upright_array


def read_image(path: str | Path, background: float = 1.0) -> torch.Tensor:
    """Decode an image file (PNG, JPEG, WebP, BMP, TIFF, ... or the first frame of a video) of any size.

    Returns (H, W, 3) float32 in [0, 1]. Greyscale is spread to three channels, palette images are
    expanded, 16-bit images keep their precision, and transparent pixels are composited over a plain
    ``background`` grey level (1.0 = white, so a cut-out face does not sit on black). A rotation stored in
    the file (display matrix) is applied.
    """
    if not 0.0 <= background <= 1.0:
        raise T2AVError(f"background must be a grey level in [0, 1], got {background}")
    with open_input(path, "image") as container:
        stream = first_stream(container, "video", path)
        frame = next(container.decode(stream), None)
        if frame is None:
            raise T2AVError(f"{path} holds no decodable picture")
        # RGBA covers every source format (alpha is opaque where there was none); deep sources stay 16-bit.
        deep = max(component.bits for component in frame.format.components) > 8
        rgba = upright_array(frame, "rgba64le" if deep else "rgba").astype(np.float32) / (65535.0 if deep else 255.0)
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return torch.from_numpy(rgb * alpha + background * (1.0 - alpha))
