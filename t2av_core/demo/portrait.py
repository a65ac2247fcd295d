"""Test pictures with a face in them: the demo's drawn face, features painted, on a textured background.

Used by the tests, the benchmarks and the sample inputs of the ComfyUI checks, so that "a photo with a face
somewhere in it" can be made anywhere without a download. The background's colours are far from skin tones.
"""

from __future__ import annotations

import numpy as np
import torch

from ..video.face_prep import resize_area_u8
from .face import DemoFaceRenderer

# Where the face lies in the drawn square, in its [-1, 1] face units: brows to chin, cheek to cheek.
FACE_U, FACE_TOP, FACE_BOTTOM = 0.58, -0.33, 0.77


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A busy blue-green pattern with noise, (H, W, 3) uint8: easy to tell from a face, hard to compress away."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / 40.0
    base = np.stack([0.30 + 0.15 * np.sin(x * 1.7 + y), 0.45 + 0.15 * np.sin(y * 2.3 - x * 0.4),
                     0.60 + 0.15 * np.cos(x + y * 1.3)], -1)
    return (np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1) * 255).astype(np.uint8)


def drawn_face(side: int, mouth_open: float = 0.0) -> np.ndarray:
    """The demo's face with eyes, brows and mouth, (side, side, 3) uint8; ``mouth_open`` in normalised units."""
    renderer = DemoFaceRenderer(256)
    motion = torch.zeros(1, 40)
    motion[0, 0] = mouth_open
    frame = renderer.render_normalized(renderer.prepare_face(None), motion)[0]
    return resize_area_u8((frame.numpy() * 255 + 0.5).astype(np.uint8), side, side)


def portrait(height: int, width: int, left: int, top: int, side: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 picture with the drawn face's square of ``side`` at (left, top); the part of
    the square outside the picture is cut off."""
    picture = texture(height, width, seed)
    face = drawn_face(side)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, height), min(left + side, width)
    picture[y0:y1, x0:x1] = face[y0 - top:y1 - top, x0 - left:x1 - left]
    return picture


def face_box(left: int, top: int, side: int) -> tuple[float, float, float, float]:
    """The face's box (x, y, w, h; brows to chin, cheek to cheek) in a portrait's pixels."""
    to_px = lambda u: (u + 1) / 2 * side  # noqa: E731
    return (left + to_px(-FACE_U), top + to_px(FACE_TOP), to_px(FACE_U) - to_px(-FACE_U),
            to_px(FACE_BOTTOM) - to_px(FACE_TOP))
