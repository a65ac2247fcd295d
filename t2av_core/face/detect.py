"""The built-in face detector: nothing to download, no required package.

Three finders, tried in this order, each only where it can run:

* ``opencv`` - OpenCV's frontal-face Haar cascade, whose model file ships inside the opencv-python wheel
  (``cv2.data.haarcascades``; OpenCV 4, as OpenCV 5 no longer ships the cascades);
* ``scikit-image`` - the LBP frontal-face cascade shipped inside the scikit-image wheel;
* ``skin`` - the pack's own finder (``skin_detect``): colour pictures, one main face, always available.

The cascades see greyscale and small faces; when one of them finds nothing (e.g. a drawn face), the next one
is asked. Measured hit rates are in the README (``benchmarks/bench_face_detect.py``).
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from .boxes import FaceBox
from . import skin_detect

DETECTORS = ("auto", "opencv", "scikit-image", "skin")
_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _opencv():
    try:
        import cv2
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        cascade = cv2.CascadeClassifier(path)
        return (cv2, cascade) if not cascade.empty() else None
    except Exception:  # not installed, OpenCV 5 (no cascades), or a broken install: just not available
        return None


@functools.lru_cache(maxsize=1)
def _scikit_image():
    try:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade
        return Cascade(lbp_frontal_face_cascade_filename())
    except Exception:
        return None


def _grey_small(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """uint8 RGB -> greyscale float32 0..1 with the longer side at most ``side`` (area averaged), and its scale."""
    small, scale = skin_detect._small(image, side)
    grey = small[..., 0] * 0.299 + small[..., 1] * 0.587 + small[..., 2] * 0.114
    return grey / 255.0, scale


def _find_opencv(image: np.ndarray) -> list[FaceBox]:
    cv2, cascade = _opencv()
    grey, scale = _grey_small(image, skin_detect.ANALYSIS_SIDE * 2)
    found = cascade.detectMultiScale((grey * 255).astype(np.uint8), scaleFactor=1.1, minNeighbors=5,
                                     minSize=(20, 20))
    return [FaceBox(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in np.asarray(found).reshape(-1, 4)]


def _find_scikit_image(image: np.ndarray) -> list[FaceBox]:
    cascade = _scikit_image()
    grey, scale = _grey_small(image, skin_detect.ANALYSIS_SIDE * 2)
    found = cascade.detect_multi_scale(img=grey, scale_factor=1.2, step_ratio=1, min_size=(24, 24),
                                       max_size=tuple(int(s) for s in grey.shape), min_neighbor_number=4)
    return [FaceBox(d["c"] / scale, d["r"] / scale, d["width"] / scale, d["height"] / scale) for d in found]


_FINDERS = {"opencv": (_opencv, _find_opencv), "scikit-image": (_scikit_image, _find_scikit_image),
            "skin": (lambda: True, skin_detect.find_faces)}


def available() -> list[str]:
    """The finders that can run here, in the order ``auto`` tries them."""
    return [name for name, (ready, _) in _FINDERS.items() if ready()]


def find_faces(image: np.ndarray, detector: str = "auto") -> tuple[list[FaceBox], str]:
    """uint8 RGB (H, W, 3) -> (faces found, largest first; the finder that found them, "" if none did)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    for name in available() if detector == "auto" else [detector]:
        ready, find = _FINDERS[name]
        if not ready():
            _log.warning("the %s face detector is not available here (install it, or use auto)", name)
            continue
        faces = find(image)
        if faces:
            return sorted(faces, key=lambda b: -_prominence(b, image.shape)), name
    return [], ""


def _prominence(box: FaceBox, shape: tuple[int, ...]) -> float:
    """Size times confidence, less for faces far from the middle: the subject of a portrait is large and central."""
    h, w = shape[:2]
    cx, cy = box.centre
    off = min(1.0, np.hypot((cx - w / 2) / w, (cy - h / 2) / h) * 2)
    return box.width * box.height * max(box.score, 1e-3) * (1.0 - 0.6 * off)
