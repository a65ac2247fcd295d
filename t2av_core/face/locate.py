"""Where the face is, frame by frame, and the crops for the renderer.

Boxes come from, in this order: boxes handed over by the host (ComfyUI's BOUNDING_BOX, e.g. from the core
MediaPipe Face Landmarker), a box the user typed, and the built-in detector (``detect``). A video gets one box
per frame, smoothed over time, with frames where nothing was found filled from their neighbours. When no
source has a face the run stops with a message saying how to give the box: never a squashed whole picture.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import T2AVError
from ..interfaces import FRAME_RATE, ProgressFn
from ..video.face_prep import to_rgb_u8
from . import detect
from .boxes import FaceBox, check_box, host_boxes, renderer_square, smooth_boxes, track
from .crop import CROP_SIZE, FaceCrop, crop_square, make_crop

NO_FACE_HINT = ("give the face's box instead: on the command line --face-box x,y,width,height (pixels of the "
                "picture); in ComfyUI connect a BOUNDING_BOX to Face Crop's face_box (the core 'Detect Face "
                "Landmarks (MediaPipe)' or 'Bounding Box' node) or set its box widgets")
DETECTIONS_PER_SECOND = 5  # a video is searched this often; the frames between take interpolated boxes


def frames_of(pixels) -> tuple[object, int, tuple[int, int]]:
    """A still (H, W, C), a one-image batch, or video frames (T, H, W, C) -> (frames, count, (H, W))."""
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().cpu()
    else:
        pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[None, ..., None]  # one greyscale picture without a channel axis
    elif pixels.ndim == 3 and pixels.shape[-1] in (1, 3, 4) and pixels.shape[0] > 4:
        pixels = pixels[None]  # one picture
    elif pixels.ndim == 3:
        pixels = pixels[..., None]  # a batch of greyscale frames (T, H, W)
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3, 4) or min(pixels.shape[:3]) < 1:
        raise T2AVError(f"expected a picture (H, W, 3) or frames (T, H, W, 3); got shape {tuple(pixels.shape)}")
    return pixels, int(pixels.shape[0]), (int(pixels.shape[1]), int(pixels.shape[2]))


def _detected(frames, count: int, fps: float, detector: str, progress: ProgressFn | None) -> tuple[list, str]:
    step = max(1, round(fps / DETECTIONS_PER_SECOND)) if count > 1 else 1
    searched = sorted(set(range(0, count, step)) | {count - 1})
    candidates: list[list[FaceBox]] = [[] for _ in range(count)]
    used = set()
    for done, index in enumerate(searched, 1):
        faces, name = detect.find_faces(to_rgb_u8(frames[index]), detector)
        candidates[index] = faces
        used.add(name)
        if progress is not None:
            progress(done, len(searched))
    names = ", ".join(sorted(n for n in used if n))
    return candidates, f"built-in detector ({names})" if names else ""


def find_boxes(pixels, fps: float = FRAME_RATE, box: FaceBox | None = None, boxes=None, detector: str = "auto",
               smoothing: float = 0.2, progress: ProgressFn | None = None) -> tuple[np.ndarray, str]:
    """Face boxes (T, 4) x, y, w, h for every frame of ``pixels``, and where they came from.

    ``boxes``: a host BOUNDING_BOX value (wins when given); ``box``: one box for every frame; otherwise the
    built-in ``detector``. ``smoothing``: seconds of temporal smoothing for videos (0: none)."""
    frames, count, size = frames_of(pixels)
    if boxes is not None:
        candidates, method = host_boxes(boxes, count), "the connected face box"
        if not any(candidates):
            raise T2AVError(f"the connected face box has no box for any frame (no face found upstream): "
                            f"{NO_FACE_HINT}")
    elif box is not None:
        candidates, method = [[check_box(box, size)]] * count, "the given box"
    else:
        candidates, method = _detected(frames, count, fps, detector, progress)
        if not any(candidates):
            raise T2AVError(f"no face was found in the {'video' if count > 1 else 'picture'} by the built-in "
                            f"detector ({', '.join(detect.available())}); {NO_FACE_HINT}")
    chosen = track(candidates)
    for frame_box in chosen:
        if frame_box is not None:
            check_box(frame_box, size, f"the face box from {method}")
    return smooth_boxes(chosen, fps, smoothing if count > 1 else 0.0), method


def crop_faces(pixels, fps: float = FRAME_RATE, box: FaceBox | None = None, boxes=None, detector: str = "auto",
               smoothing: float = 0.2, size: int = CROP_SIZE,
               progress: ProgressFn | None = None) -> tuple[torch.Tensor, FaceCrop]:
    """A picture or video -> (square face crops (T, size, size, 3) uint8, FaceCrop for the paste-back).

    The crops are framed as LIA-X was trained (``boxes.renderer_square``) and resized with INTER_AREA."""
    frames, count, source_size = frames_of(pixels)
    found, method = find_boxes(frames, fps, box, boxes, detector, smoothing, progress)
    squares = [renderer_square(row) for row in found]
    crops = torch.empty(count, size, size, 3, dtype=torch.uint8)
    for index in range(count):
        crops[index] = torch.from_numpy(crop_square(frames[index], squares[index], size))
    return crops, make_crop(source_size, squares, fps, size, method)
