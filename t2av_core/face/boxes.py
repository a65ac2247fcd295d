"""Face boxes: reading them from the user or the host, one per frame over time, and the renderer's square.

A box is (x, y, width, height) in source pixels, the face from brows to chin and cheek to cheek, as face
detectors report it. ``renderer_square`` turns it into the square crop LIA-X was trained on: its upstream
``utils/crop.py`` grows a face-alignment (S3FD) box by 25 % on each side, and 50 % more above the face,
so the forehead and some hair are in the picture (``increase_scale=0.25``, ``increase_top_scale=0.5``),
then keeps a centred square of the shorter side. For a square box of side s that is a square of 1.5 s
whose centre sits 0.0625 s above the box's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import T2AVError

MARGIN = 0.25      # LIA-X utils/crop.py: increase_scale (each side, as a fraction of the box)
TOP_MARGIN = 0.5   # LIA-X utils/crop.py: increase_top_scale (extra growth above the face)


@dataclass(frozen=True)
class FaceBox:
    x: float
    y: float
    width: float
    height: float
    score: float = 1.0

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def as_list(self) -> list[float]:
        return [self.x, self.y, self.width, self.height]


def check_box(box: FaceBox, image_size: tuple[int, int], what: str = "the face box") -> FaceBox:
    """``box`` if it has a positive size and touches the picture (H, W); T2AVError saying how to fix it otherwise."""
    values = box.as_list()
    if not all(math.isfinite(v) for v in values) or box.width < 2 or box.height < 2:
        raise T2AVError(f"{what} {_show(box)} must have a width and height of at least 2 pixels")
    h, w = image_size
    if box.x >= w or box.y >= h or box.x + box.width <= 0 or box.y + box.height <= 0:
        raise T2AVError(f"{what} {_show(box)} lies outside the {w}x{h} picture; give x,y,width,height in the "
                        "picture's own pixels")
    return box


def _show(box: FaceBox) -> str:
    return ",".join(f"{v:g}" for v in box.as_list())


def parse_box(text: str) -> FaceBox:
    """"x,y,width,height" in pixels (as ``--face-box`` takes it) -> FaceBox."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise T2AVError(f"a face box is four numbers x,y,width,height in pixels (e.g. 640,200,300,360); "
                        f"got {text!r}")
    if values[2] < 2 or values[3] < 2:
        raise T2AVError(f"the face box {text!r} must have a width and height of at least 2 pixels")
    return FaceBox(*values)


def _from_dict(d) -> FaceBox:
    try:
        return FaceBox(float(d["x"]), float(d["y"]), float(d["width"]), float(d["height"]),
                       float(d.get("score", 1.0) or 1.0))
    except (KeyError, TypeError, ValueError) as error:
        raise T2AVError(f"a BOUNDING_BOX entry needs x, y, width and height; got {d!r}") from error


def host_boxes(value, frames: int) -> list[list[FaceBox]]:
    """ComfyUI's BOUNDING_BOX value -> candidate boxes for each of ``frames`` frames.

    The core nodes use three forms: one dict (the Bounding Box node: the same box for every frame), a flat list
    of dicts (one frame's detections, used for every frame) and a list per frame of lists of dicts (MediaPipe
    Face Landmarker, RT-DETR, SAM3). A list per frame shorter than the clip is padded with "no face"."""
    if isinstance(value, dict):
        return [[_from_dict(value)] for _ in range(frames)]
    return [_largest_first(frame) for frame in _host_frames(value, frames)]


def _largest_first(boxes: list[FaceBox]) -> list[FaceBox]:
    return sorted(boxes, key=lambda b: -b.width * b.height * max(b.score, 1e-3))


def _host_frames(value, frames: int) -> list[list[FaceBox]]:
    if not isinstance(value, (list, tuple)):
        raise T2AVError(f"the face box input must be a BOUNDING_BOX (a dict or a list of them); got "
                        f"{type(value).__name__}")
    if not value or isinstance(value[0], dict):
        found = [_from_dict(d) for d in value]
        return [list(found) for _ in range(frames)]
    per_frame = [[_from_dict(d) for d in (entry or [])] for entry in value]
    if len(per_frame) == 1:
        return per_frame * frames
    return (per_frame + [[] for _ in range(frames)])[:frames]


def pick_face(candidates: list[FaceBox], previous: FaceBox | None = None) -> FaceBox | None:
    """The face to animate among a frame's candidates (best first): the one nearest the previous frame's
    face, else the first."""
    if not candidates:
        return None
    if previous is not None:
        px, py = previous.centre
        return min(candidates, key=lambda b: (b.centre[0] - px) ** 2 + (b.centre[1] - py) ** 2)
    return candidates[0]


def track(candidates: list[list[FaceBox]]) -> list[FaceBox | None]:
    """One face per frame, following the same person from frame to frame."""
    chosen, previous = [], None
    for frame in candidates:
        box = pick_face(frame, previous)
        previous = box or previous
        chosen.append(box)
    return chosen


def smooth_boxes(boxes: list[FaceBox | None], fps: float, seconds: float = 0.2) -> np.ndarray:
    """Per-frame boxes (None where nothing was found) -> (T, 4) float64 x, y, width, height without jitter.

    Frames without a face take the box interpolated between their neighbours (the nearest one at the ends);
    then a 5-frame median drops single wrong detections and a Gaussian of ``seconds`` (standard deviation)
    steadies the rest. A crop that shakes by a few pixels would make the pasted face shake."""
    found = [i for i, b in enumerate(boxes) if b is not None]
    if not found:
        raise T2AVError("no face was found in any frame")
    t = np.arange(len(boxes), dtype=np.float64)
    known = np.array([boxes[i].as_list() for i in found], dtype=np.float64)
    # Centre and size, not corners, so a face that only grows does not drift sideways.
    known = np.stack([known[:, 0] + known[:, 2] / 2, known[:, 1] + known[:, 3] / 2, known[:, 2], known[:, 3]], 1)
    track_ = np.stack([np.interp(t, np.array(found, dtype=np.float64), known[:, k]) for k in range(4)], axis=1)
    if len(boxes) >= 5:
        padded = np.pad(track_, ((2, 2), (0, 0)), mode="edge")
        track_ = np.median(np.stack([padded[k:k + len(boxes)] for k in range(5)]), axis=0)
    sigma = seconds * fps
    if sigma > 0.3 and len(boxes) > 1:
        radius = int(math.ceil(3 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        kernel /= kernel.sum()
        padded = np.pad(track_, ((radius, radius), (0, 0)), mode="edge")
        track_ = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(4)], axis=1)
    cx, cy, w, h = track_.T
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


def renderer_square(box, margin: float = MARGIN, top_margin: float = TOP_MARGIN) -> tuple[int, int, int]:
    """A face box (FaceBox or x, y, w, h) -> the renderer's square crop (left, top, side) in source pixels.

    LIA-X's rule (module doc), except that a square running past the picture's edge is kept whole (the crop is
    padded) instead of being shrunk and shifted inside: the face keeps the size and place the model knows."""
    x, y, w, h = box.as_list() if isinstance(box, FaceBox) else [float(v) for v in box]
    grow_w = max(margin, ((1 + 2 * margin) * h - w) / (2 * w))   # make the grown box at least as wide as tall
    grow_h = max(margin, ((1 + 2 * margin) * w - h) / (2 * h))
    left, right = x - grow_w * w, x + w + grow_w * w
    top, bottom = y - grow_h * h * (1 + top_margin), y + h + grow_h * h
    side = max(2, int(round(min(right - left, bottom - top))))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    return int(math.floor(cx - side / 2 + 0.5)), int(math.floor(cy - side / 2 + 0.5)), side
