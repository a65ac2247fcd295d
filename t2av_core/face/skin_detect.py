"""A small face finder of our own for colour pictures: needs no model file and no extra package.

It looks for a compact region of skin tone (YCbCr, the Chai-Ngan ranges) that has the proportions of a head,
and accepts it only when darker, non-skin features (eyes, brows, mouth) sit inside its upper and lower parts,
so a skin-coloured wall or arm is not taken for a face. The box it reports follows the usual detector
convention (brows to chin, cheek to cheek), placed from the eye line when the eyes are seen.

It is made for what this pack is given: one main, roughly frontal face in a colour photo or drawing. It does
not work on greyscale pictures and misses faces under about 5 % of the picture's longer side; the cascades of
``detect`` (when OpenCV or scikit-image are installed) and a box from the host or the user cover the rest.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .boxes import FaceBox

ANALYSIS_SIDE = 320          # pictures are searched at this longer side
MIN_FACE = 14                # smallest face width searched for, in analysis pixels
MIN_SCORE = 0.45
SKIN_CB, SKIN_CR, SKIN_SPREAD = 113.0, 151.0, (6.0, 7.0)  # chroma of skin (YCbCr), and its spread
LEVELS = (1.5, 2.5, 3.5)  # skin regions are cut at these distances, tight first: a face that touches a
                          # skin-coloured wall or hair at a loose cut stands alone at a tighter one


def _small(image: np.ndarray, side: int = ANALYSIS_SIDE) -> tuple[np.ndarray, float]:
    """uint8 (H, W, 3) -> float32 copy whose longer side is at most ``side`` (area averaged), and its scale.
    A big picture is first averaged over whole blocks without a float copy of it (4096 pixels: 134 MB)."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image.astype(np.float32), 1.0
    k = max(1, max(h, w) // (2 * side))
    blocks = image[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3), dtype=np.float32)
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = torch.from_numpy(blocks).permute(2, 0, 1)[None]
    return F.interpolate(x, size=size, mode="area")[0].permute(1, 2, 0).numpy(), scale


def skin_distance(rgb: np.ndarray) -> np.ndarray:
    """float RGB 0..255 (H, W, 3) -> how far each pixel's chroma is from typical skin (in standard deviations
    of the skin tones of portraits; light and dark skin differ mostly in brightness, which is not used).
    Very dark pixels are far from skin whatever their chroma."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    distance = np.sqrt(((cb - SKIN_CB) / SKIN_SPREAD[0]) ** 2 + ((cr - SKIN_CR) / SKIN_SPREAD[1]) ** 2)
    return np.where(y > 35, distance, np.inf)


def _open(mask: np.ndarray) -> np.ndarray:
    """Erode then dilate with a 3x3 square: drops specks and thin bridges between regions."""
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return F.max_pool2d(x, 3, stride=1, padding=1)[0, 0].numpy() > 0.5


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected regions of a bool mask -> (labels (H, W) int32, 0 = background; number of labels + 1).
    Runs of each row are joined to the overlapping runs of the row above (union-find)."""
    h, w = mask.shape
    parent = [0]

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    runs, above = [], []
    for row in range(h):
        edges = np.diff(np.concatenate(([0], mask[row].astype(np.int8), [0])))
        here = []
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            label = 0
            for a_start, a_end, a_label in above:
                if a_start <= end and a_end >= start:  # touching, diagonals included
                    other = root(a_label)
                    if label == 0:
                        label = other
                    elif other != label:
                        parent[max(other, label)] = min(other, label)
                        label = min(other, label)
            if label == 0:
                label = len(parent)
                parent.append(label)
            here.append((start, end, label))
            runs.append((row, start, end, label))
        above = here
    labels = np.zeros((h, w), dtype=np.int32)
    for row, start, end, label in runs:
        labels[row, start:end] = root(label)
    return labels, len(parent)


def _filled(region: np.ndarray) -> np.ndarray:
    """The region with its holes closed: pixels between its extremes both along the row and the column."""
    def spans(m: np.ndarray) -> np.ndarray:
        any_ = m.any(axis=1)
        first = np.where(any_, m.argmax(axis=1), m.shape[1])
        last = np.where(any_, m.shape[1] - 1 - m[:, ::-1].argmax(axis=1), -1)
        cols = np.arange(m.shape[1])[None, :]
        return (cols >= first[:, None]) & (cols <= last[:, None])
    return spans(region) & spans(region.T).T


def _face_in(region: np.ndarray) -> tuple[FaceBox, float] | None:
    """A head-shaped region (bool, analysis scale) -> (face box, score in 0..1), or None."""
    rows = np.flatnonzero(region.any(axis=1))
    top = int(rows[0])
    widths = region.sum(axis=1).astype(np.float64)
    width = float(np.percentile(widths[rows], 85))
    for _ in range(3):  # the face's width, measured over the head only (not the shoulders below it)
        head = widths[top:top + max(2, int(1.35 * width))]
        width = float(np.percentile(head[head > 0], 85)) if (head > 0).any() else width
    if width < MIN_FACE:
        return None
    bottom = top + int(round(1.35 * width))
    if rows[-1] < top + 0.9 * width:  # not tall enough to be a face
        return None
    head = region[top:bottom]
    cols = np.flatnonzero(head.any(axis=0))
    centre_x = float(np.median([np.flatnonzero(r).mean() for r in head if r.any()]))
    holes = _filled(head) & ~head
    upper = holes[: int(0.6 * head.shape[0])]
    eyes = np.flatnonzero(upper.any(axis=1))
    eye_y = top + (float(np.average(eyes, weights=upper.sum(axis=1)[eyes])) if eyes.size else 0.55 * width)
    box = FaceBox(centre_x - width / 2, eye_y - 0.38 * width, width, width)
    # Score: how much of the box's inscribed ellipse is skin or a feature, and whether features are seen
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]]
    ellipse = (((xx + 0.5 - centre_x) / (width / 2)) ** 2 + ((yy + 0.5 - box.y - width / 2) / (width / 2)) ** 2) <= 1
    filled = np.zeros_like(region)
    filled[top:bottom] = _filled(head)
    cover = float((filled & ellipse).sum() / max(1, ellipse.sum()))
    feature = float((holes.sum()) / max(1, _filled(head).sum()))
    sides = float(cols.size / max(width, 1))
    score = cover * (1.0 if 0.004 <= feature <= 0.35 else 0.3) * (1.0 if sides < 2.2 else 0.5)
    return box, score


def find_faces(image: np.ndarray) -> list[FaceBox]:
    """uint8 RGB (H, W, 3) -> faces found, best first, in the picture's pixels (score in 0..1)."""
    small, scale = _small(image)
    distance = skin_distance(small)
    faces = []
    for level in LEVELS:
        labels, count = components(_open(distance < level))
        areas = np.bincount(labels.ravel(), minlength=count)
        for label in np.flatnonzero(areas >= MIN_FACE * MIN_FACE * 0.6):
            found = _face_in(labels == label) if label else None
            if found is not None and found[1] >= MIN_SCORE:
                box, score = found
                faces.append(FaceBox(box.x / scale, box.y / scale, box.width / scale, box.height / scale, score))
    return _distinct(sorted(faces, key=lambda b: -b.score))


def _distinct(faces: list[FaceBox]) -> list[FaceBox]:
    """Best first; a face whose centre lies inside a better one's box is the same face seen at another cut."""
    kept: list[FaceBox] = []
    for face in faces:
        cx, cy = face.centre
        if not any(k.x <= cx <= k.x + k.width and k.y <= cy <= k.y + k.height for k in kept):
            kept.append(face)
    return kept
