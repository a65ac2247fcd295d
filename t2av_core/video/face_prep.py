"""Reference-face preprocessing for LIA-X, reproducing the official ``infer.py`` path bit for bit.

The official code takes an 8-bit RGB frame, resizes it to the model size with OpenCV's INTER_AREA
(no crop, no aspect-ratio preservation: a non-square face is stretched), and maps v -> v/127.5 - 1.
OpenCV is not a dependency, so its INTER_AREA resize of 8-bit images is re-implemented here, including
its integer / float32 arithmetic, because the first frame of every video depends on these exact pixels:

* same size: a copy;
* shrinking both axes by integer factors: block means (2x2: (sum + 2) >> 2, else round(sum * (1/n)));
* shrinking both axes otherwise: area-overlap weights accumulated in float32, rounded half to even;
* enlarging any axis: 2-tap interpolation whose weights are the pixel-area overlaps, in 11-bit fixed
  point (most output pixels copy one source pixel, only those straddling a source boundary blend two).

Inputs of any size are accepted, as (H, W) greyscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA, as
float in 0..1 or 8-bit integers (0..255). Floats are quantised to 8 bits with round(x * 255) first, as the official code only
ever sees 8-bit frames. RGBA is composited over a white background (the usual look of a transparent
portrait) before quantisation.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..errors import T2AVError

_COEF_BITS = 11  # OpenCV INTER_RESIZE_COEF_BITS
_COEF_ONE = 1 << _COEF_BITS


def to_rgb_u8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Any supported image (see module doc) -> contiguous uint8 array (H, W, 3), RGB."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype == torch.float32 and image.dim() == 3 and image.shape[-1] == 3 and image.numel() and \
                bool(torch.isfinite(image).all()) and -1e-3 <= float(image.min()) and float(image.max()) <= 1 + 1e-3:
            # ComfyUI's IMAGE frames: the float path below (clip, x 255, round half to even) in one copy
            return image.mul(255).round_().clamp_(0, 255).to(torch.uint8).numpy()
        image = image.float().numpy() if image.is_floating_point() else image.numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise T2AVError(f"expected an image shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise T2AVError(f"the image is empty ({arr.shape[0]}x{arr.shape[1]} pixels)")
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise T2AVError(f"integer images must hold 8-bit values 0..255, got [{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.uint8)
    if arr.dtype == np.uint8:
        if arr.shape[2] == 4:  # composite in float, then quantise like a float input
            arr = arr.astype(np.float32) / 255.0
        else:
            return np.ascontiguousarray(np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise T2AVError(f"unsupported image dtype {arr.dtype}; pass float in 0..1 or uint8")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise T2AVError("the image contains NaN or infinite values")
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise T2AVError(f"float images must be in 0..1, got values in [{arr.min():.3g}, {arr.max():.3g}]; "
                        "divide 8-bit data by 255 or pass it as uint8")
    arr = np.clip(arr, 0.0, 1.0)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4]
        arr = arr[:, :, :3] * alpha + (1.0 - alpha)  # over white
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(np.rint(arr * 255.0).astype(np.uint8))


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)  # cached and shared by every frame of the same size
    return arrays


@functools.lru_cache(maxsize=16)  # every frame of a video has the same size: compute the taps once
def _area_shrink_taps(src: int, dst: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per output index: source indices and float32 weights of the overlapping source cells, in the
    order OpenCV accumulates them; padded with weight 0 (adding +0.0 leaves a float unchanged)."""
    rows = []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        taps = []
        if s1 - f1 > 1e-3:
            taps.append((s1 - 1, np.float32((s1 - f1) / cell)))
        for s in range(s1, s2):
            taps.append((s, np.float32(1.0 / cell)))
        if f2 - s2 > 1e-3:
            taps.append((s2, np.float32(min(min(f2 - s2, 1.0), cell) / cell)))
        rows.append(taps)
    width = max(len(t) for t in rows)
    index = np.zeros((dst, width), dtype=np.int64)
    weight = np.zeros((dst, width), dtype=np.float32)
    for d, taps in enumerate(rows):
        for j, (s, a) in enumerate(taps):
            index[d, j], weight[d, j] = s, a
    return _read_only(index, weight)


def _resize_area_shrink(img: np.ndarray, out_h: int, out_w: int, sy: float, sx: float) -> np.ndarray:
    xi, xw = _area_shrink_taps(img.shape[1], out_w, sx)
    yi, yw = _area_shrink_taps(img.shape[0], out_h, sy)
    src = img.astype(np.float32)
    rows = np.zeros((img.shape[0], out_w, img.shape[2]), dtype=np.float32)
    for j in range(xi.shape[1]):  # sequential float32 sums, in OpenCV's order
        rows = rows + src[:, xi[:, j], :] * xw[None, :, j, None]
    out = np.zeros((out_h, out_w, img.shape[2]), dtype=np.float32)
    for j in range(yi.shape[1]):
        out = out + yw[:, j, None, None] * rows[yi[:, j], :, :]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resize_area_integer(img: np.ndarray, ky: int, kx: int) -> np.ndarray:
    h, w, c = img.shape
    blocks = img.reshape(h // ky, ky, w // kx, kx, c).astype(np.int64).sum(axis=(1, 3))
    if ky == 2 and kx == 2:
        return ((blocks + 2) >> 2).astype(np.uint8)
    out = blocks.astype(np.float32) * (np.float32(1.0) / np.float32(ky * kx))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _area_linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First source index and 11-bit fixed-point weights (w0, w1) of each output index."""
    inv_scale = dst / src
    scale = 1.0 / inv_scale
    index = np.zeros(dst, dtype=np.int64)
    w = np.zeros((dst, 2), dtype=np.int64)
    for d in range(dst):
        s = math.floor(d * scale)
        f = np.float32((d + 1) - (s + 1) * inv_scale)
        f = np.float32(0.0) if f <= 0 else np.float32(f - np.float32(math.floor(f)))
        if s >= src - 1:
            s, f = src - 1, np.float32(0.0)
        index[d] = s
        one = np.float32(_COEF_ONE)
        w[d] = (np.rint((np.float32(1.0) - f) * one), np.rint(f * one))
    return _read_only(index, w[:, 0].copy(), w[:, 1].copy())


def _resize_area_enlarge(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    h, w, _ = img.shape
    xs, xa0, xa1 = _area_linear_taps(w, out_w)
    ys, yb0, yb1 = _area_linear_taps(h, out_h)
    src = img.astype(np.int64)
    xs1 = np.minimum(xs + 1, w - 1)
    rows = src[:, xs, :] * xa0[None, :, None] + src[:, xs1, :] * xa1[None, :, None]  # scaled by 2^11
    r0 = rows[ys] >> 4
    r1 = rows[np.minimum(ys + 1, h - 1)] >> 4
    out = (((yb0[:, None, None] * r0) >> 16) + ((yb1[:, None, None] * r1) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def resize_area_u8(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """OpenCV ``cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)`` for uint8 (H, W, C)."""
    h, w = img.shape[:2]
    if (h, w) == (out_h, out_w):
        return img.copy()
    inv_x, inv_y = out_w / w, out_h / h
    sx, sy = 1.0 / inv_x, 1.0 / inv_y
    if sx >= 1 and sy >= 1:
        kx, ky = round(sx), round(sy)
        if abs(sx - kx) < np.finfo(np.float64).eps and abs(sy - ky) < np.finfo(np.float64).eps:
            return _resize_area_integer(img, ky, kx)
        return _resize_area_shrink(img, out_h, out_w, sy, sx)
    return _resize_area_enlarge(img, out_h, out_w)


def preprocess_face(image: torch.Tensor | np.ndarray, size: int = 512) -> torch.Tensor:
    """Reference image (any size/layout, see module doc) -> model input (1, 3, size, size) float32 in [-1, 1]."""
    rgb = resize_area_u8(to_rgb_u8(image), size, size)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1.0
    return x.unsqueeze(0)
