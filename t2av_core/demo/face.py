"""Demo-only face renderer: paints a 2D face whose mouth, jaw, eyelids, brows and head pose follow the motion.

It stands in for LIA-X behind the same ``MotionRenderer`` interface. The demo model works in the official
*normalised* motion space (``motion_stats``); the first eight normalised dims have a meaning here
(``MOTION_DIMS``), the other 32 stay zero. Raw motion in and out of this class is denormalised with the
official statistics, so the pipeline treats demo and LIA-X motion exactly alike.

Features are painted in face coordinates (u, v in [-1, 1], v pointing down) and then the whole picture is
moved by the head pose, so a given face image gets the same mouth/eyes/brows overlay as the default face.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import T2AVError
from ..interfaces import DEMO, MOTION_LATENT_DIM, ProgressFn
from ..motion_stats import denormalize_motion, normalize_motion

MOTION_DIMS = ("mouth_open", "mouth_width", "jaw", "blink", "yaw", "pitch", "roll", "brow")
MOUTH, WIDTH, JAW, BLINK, YAW, PITCH, ROLL, BROW = range(len(MOTION_DIMS))

# Where the painted features sit, in face coordinates.
_EYE_X, _EYE_Y, _EYE_RX, _EYE_RY = 0.30, -0.12, 0.12, 0.065
_MOUTH_Y, _MOUTH_RX = 0.45, 0.20
_BROW_Y = -0.30


def mouth_openness(norm_motion: torch.Tensor) -> torch.Tensor:
    """Normalised motion (..., 40) -> mouth opening in [0, 1] (0 = lips closed)."""
    return (0.25 + 0.25 * norm_motion[..., MOUTH]).clamp(0.0, 1.0)


def eye_closure(norm_motion: torch.Tensor) -> torch.Tensor:
    return ((norm_motion[..., BLINK] + 0.5) / 3.0).clamp(0.0, 1.0)


@dataclass
class FaceState:
    base: torch.Tensor    # (S, S, 3) picture without the animated features
    skin: torch.Tensor    # (3,) colour used for the eyelids
    lips: torch.Tensor    # (3,)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    return u, v


def _ellipse(u, v, cx, cy, rx, ry, sharpness: float = 150.0) -> torch.Tensor:
    """Soft inside-mask of an axis-aligned ellipse (edge about one pixel at 256); arguments broadcast."""
    radius = torch.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    major = torch.maximum(torch.as_tensor(rx), torch.as_tensor(ry))
    return torch.sigmoid((1.0 - radius) * major * sharpness)


def _paint(canvas: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    return canvas * (1.0 - mask[..., None]) + colour * mask[..., None]


def default_face(size: int) -> torch.Tensor:
    """A plain drawn face without eyes, brows and mouth (those are animated), (S, S, 3) in 0..1."""
    u, v = _grid(size)
    picture = torch.stack([0.55 + 0.2 * v, 0.65 + 0.15 * v, 0.8 - 0.1 * v], dim=-1).clamp(0, 1)  # backdrop
    picture = _paint(picture, _ellipse(u, v, 0.0, 1.15, 0.9, 0.45), torch.tensor([0.25, 0.3, 0.45]))  # shoulders
    picture = _paint(picture, _ellipse(u, v, 0.0, 0.75, 0.22, 0.3), torch.tensor([0.93, 0.76, 0.64]))  # neck
    picture = _paint(picture, _ellipse(u, v, 0.0, -0.18, 0.66, 0.72), torch.tensor([0.3, 0.2, 0.12]))  # hair
    picture = _paint(picture, _ellipse(u, v, 0.0, 0.05, 0.58, 0.72), torch.tensor([0.95, 0.78, 0.66]))  # face
    for side in (-1.0, 1.0):
        picture = _paint(picture, _ellipse(u, v, side * 0.6, 0.05, 0.08, 0.16), torch.tensor([0.92, 0.74, 0.62]))
    picture = _paint(picture, _ellipse(u, v, 0.0, 0.18, 0.05, 0.1), torch.tensor([0.88, 0.68, 0.58]))  # nose
    return picture


class DemoFaceRenderer:
    """``MotionRenderer`` for the demo model: raw motion (T, 40) -> frames (T, S, S, 3)."""

    family = DEMO  # fits only the demo generator (t2av_core.interfaces.family_of)

    def __init__(self, image_size: int = 256):
        if image_size < 32:
            raise T2AVError(f"image_size must be at least 32 pixels, got {image_size}")
        self.image_size = int(image_size)

    def default_face(self) -> torch.Tensor:
        """The drawn face a pipeline animates when it is given no picture (pipeline.encode_face without image)."""
        return default_face(self.image_size)  # the module function (class names are not in a method's scope)

    def prepare_face(self, image: torch.Tensor | None = None) -> FaceState:
        """Centre-crop and resize any RGB image (H, W, 3) in 0..1; ``None`` gives the default drawn face."""
        size = self.image_size
        if image is None:
            return FaceState(default_face(size), torch.tensor([0.95, 0.78, 0.66]), torch.tensor([0.75, 0.3, 0.3]))
        if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 8:
            raise T2AVError(f"the face image must be RGB (H, W, 3) and at least 8x8, got {tuple(image.shape)}")
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top:top + side, left:left + side].float().clamp(0, 1).permute(2, 0, 1)[None]
        base = F.interpolate(square, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        base = base[0].permute(1, 2, 0).contiguous()
        cheek = base[int(0.6 * size):int(0.66 * size), int(0.25 * size):int(0.32 * size)].reshape(-1, 3)
        skin = cheek.median(dim=0).values
        return FaceState(base, skin, skin * torch.tensor([0.8, 0.4, 0.4]))

    def _box(self, top: float, bottom: float) -> tuple[slice, torch.Tensor, torch.Tensor]:
        """Rows of the picture between face heights ``top`` and ``bottom``, with their (u, v) grids."""
        size = self.image_size
        rows = slice(int((top + 1.0) / 2.0 * size), int((bottom + 1.0) / 2.0 * size) + 1)
        u, v = _grid(size)
        return rows, u[rows], v[rows]

    def _features(self, face: FaceState, p: torch.Tensor) -> torch.Tensor:
        """Paint eyes, brows and mouth for normalised motion p (B, 40) -> (B, S, S, 3), before head pose."""
        col = lambda x: x[:, None, None]  # noqa: E731  (B,) -> (B, 1, 1) to broadcast over pixels
        picture = face.base.repeat(p.shape[0], 1, 1, 1)
        rows, u, v = self._box(-0.45, _EYE_Y + _EYE_RY + 0.02)
        canvas = picture[:, rows]
        closed = col(eye_closure(p))
        brow_y = _BROW_Y - 0.03 * col(p[:, BROW])
        for side in (-1.0, 1.0):
            cx = side * _EYE_X
            eye = _ellipse(u, v, cx, _EYE_Y, _EYE_RX, _EYE_RY)
            canvas = _paint(canvas, eye, torch.tensor([0.97, 0.97, 0.97]))
            canvas = _paint(canvas, _ellipse(u, v, cx, _EYE_Y, 0.05, 0.05) * eye, torch.tensor([0.15, 0.2, 0.3]))
            lid = eye * torch.sigmoid((_EYE_Y - _EYE_RY + 2.2 * _EYE_RY * closed - v) * 200.0)
            canvas = _paint(canvas, lid, face.skin)
            brow = _ellipse(u, v, cx, brow_y, 0.14, 0.025)
            canvas = _paint(canvas, brow, torch.tensor([0.25, 0.16, 0.1]))
        picture[:, rows] = canvas
        rows, u, v = self._box(_MOUTH_Y - 0.2, _MOUTH_Y + 0.3)
        canvas = picture[:, rows]
        opening = col(mouth_openness(p))
        width = _MOUTH_RX * (1.0 + 0.12 * col(p[:, WIDTH])).clamp(0.6, 1.4)
        mouth_y = _MOUTH_Y + 0.03 * col(p[:, JAW]).clamp(-1.5, 3.0)
        lips = _ellipse(u, v, 0.0, mouth_y, width + 0.03, 0.035 + 0.12 * opening)
        canvas = _paint(canvas, lips, face.lips)
        inner = _ellipse(u, v, 0.0, mouth_y, width, 0.004 + 0.11 * opening)
        canvas = _paint(canvas, inner, torch.tensor([0.25, 0.05, 0.08]))
        teeth = inner * torch.sigmoid((mouth_y - 0.06 * opening - v) * 150.0)
        picture[:, rows] = _paint(canvas, teeth, torch.tensor([0.95, 0.95, 0.9]))
        return picture

    def _head_pose(self, frames: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Move the painted picture with yaw (sideways), pitch (up/down) and roll (tilt)."""
        roll = 0.08 * p[:, ROLL]
        cos, sin = torch.cos(roll), torch.sin(roll)
        theta = torch.stack([torch.stack([cos, -sin, -0.05 * p[:, YAW]], -1),
                             torch.stack([sin, cos, -0.05 * p[:, PITCH]], -1)], dim=1)   # (B, 2, 3)
        images = frames.permute(0, 3, 1, 2)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return moved.permute(0, 2, 3, 1)

    def render_normalized(self, face: FaceState, norm_motion: torch.Tensor, batch_size: int = 8,
                          progress: ProgressFn | None = None) -> torch.Tensor:
        frames = []
        total = norm_motion.shape[0]
        for start in range(0, total, batch_size):
            p = norm_motion[start:start + batch_size].float()
            frames.append(self._head_pose(self._features(face, p), p).clamp(0.0, 1.0))
            if progress is not None:
                progress(min(start + batch_size, total), total)
        return torch.cat(frames) if frames else torch.zeros(0, self.image_size, self.image_size, 3)

    def render(self, face: FaceState, motion_raw: torch.Tensor, batch_size: int = 8,
               progress: ProgressFn | None = None) -> torch.Tensor:
        if motion_raw.ndim != 2 or motion_raw.shape[1] != MOTION_LATENT_DIM:
            raise T2AVError(f"motion must be (T, {MOTION_LATENT_DIM}), got {tuple(motion_raw.shape)}")
        return self.render_normalized(face, normalize_motion(motion_raw.float()), batch_size, progress)

    def encode_motion(self, frames: torch.Tensor) -> torch.Tensor:
        """Read mouth opening and eye closure back from frames this renderer drew with a still head.

        Only meaningful for the demo's own pictures (it measures the painted dark mouth and white eyes);
        every other dim is returned as the neutral value.
        """
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise T2AVError(f"frames must be (T, H, W, 3), got {tuple(frames.shape)}")
        size = self.image_size
        images = F.interpolate(frames.float().permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                               align_corners=False).permute(0, 2, 3, 1)
        u, v = _grid(size)
        luma = images.mean(dim=-1)
        mouth_box = ((u.abs() < _MOUTH_RX) & (v > _MOUTH_Y - 0.2) & (v < _MOUTH_Y + 0.25)).float()
        cavity_or_teeth = ((images[..., 0] < 0.4) & (luma < 0.3)) | (luma > 0.85)
        dark = cavity_or_teeth.float()
        # Painted mouth cavity area = pi * rx * ry in face units; pixels per unit area = (size / 2) ** 2.
        cavity = (dark * mouth_box).sum(dim=(1, 2)) / (size / 2) ** 2
        opening = ((cavity / (torch.pi * _MOUTH_RX) - 0.004) / 0.11).clamp(0.0, 1.0)
        eye_box = (((u.abs() - _EYE_X).abs() < _EYE_RX) & ((v - _EYE_Y).abs() < _EYE_RY)).float()
        white = (luma > 0.9).float()
        open_area = (white * eye_box).sum(dim=(1, 2)) / eye_box.sum()
        norm = torch.zeros(frames.shape[0], MOTION_LATENT_DIM)
        # Linear fit of measured against painted opening (the cavity edge is anti-aliased away).
        norm[:, MOUTH] = ((opening - 0.25) / 0.25 + 0.52) / 0.925
        norm[:, MOUTH] = torch.where(cavity > 0, norm[:, MOUTH], torch.full_like(cavity, -1.0)).clamp_min(-1.0)
        norm[:, BLINK] = (1.0 - (open_area / 0.29).clamp(0.0, 1.0)) * 3.0 - 0.5
        return denormalize_motion(norm)
