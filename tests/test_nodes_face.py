"""Face Crop and Paste Back nodes: box sources (a core BOUNDING_BOX, the box widgets, the built-in detector),
videos, and the paste-back at the source's size, through the ComfyUI stand-in."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import pack_harness as H  # noqa: E402

from t2av_core.demo.portrait import face_box, portrait  # noqa: E402
from t2av_core.errors import T2AVError  # noqa: E402


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


def photo(left=300, top=80, side=220):
    return torch.from_numpy(portrait(400, 640, left, top, side)).float()[None] / 255  # a ComfyUI IMAGE


def crop(env, image, **inputs):
    return H.run_node(env.nodes["TalkerT2AVFaceCrop"], image=image, **inputs).args


def test_face_crop_finds_the_face_and_paste_back_restores_the_picture_size(env):
    image = photo()
    faces, info, boxes = crop(env, image)
    assert faces.shape == (1, 512, 512, 3) and faces.dtype == torch.float32 and 0 <= faces.min() <= faces.max() <= 1
    assert "built-in detector" in info.method and boxes[0][0]["width"] == info.square(0)[2]
    rendered = torch.rand(6, 256, 256, 3)  # e.g. Video Decode's frames
    out = H.run_node(env.nodes["TalkerT2AVPasteBack"], images=rendered, source=image, face_crop=info, feather=0.12,
                     colour_match=True).args[0]
    assert out.shape == (6, 400, 640, 3)
    left, top, side = info.square(0)
    keep = torch.ones(400, 640, dtype=torch.bool)
    keep[max(0, top):top + side, max(0, left):left + side] = False
    assert torch.allclose(out[:, keep], image[0][keep].expand(6, -1, 3), atol=0.5 / 255)


def test_a_connected_bounding_box_wins_and_the_box_widgets_come_next(env):
    image = photo()
    x, y, w, h = face_box(300, 80, 220)
    mediapipe_like = [[{"x": x, "y": y, "width": w, "height": h, "label": "face", "score": 0.9}]]
    _, from_host, _ = crop(env, image, face_box=mediapipe_like, box_x=1, box_y=1, box_width=40, box_height=40)
    assert from_host.method == "the connected face box"
    _, from_widgets, _ = crop(env, image, box_x=10, box_y=20, box_width=60, box_height=70)
    assert from_widgets.method == "the given box" and from_widgets.square(0)[2] < from_host.square(0)[2]
    core_bounding_box_node = {"x": int(x), "y": int(y), "width": int(w), "height": int(h)}
    _, from_primitive, _ = crop(env, image, face_box=core_bounding_box_node)
    assert abs(from_primitive.square(0)[0] - from_host.square(0)[0]) <= 1


def test_no_face_anywhere_says_how_to_give_a_box(env):
    with pytest.raises(T2AVError, match="BOUNDING_BOX.*box widgets"):
        crop(env, torch.full((1, 200, 300, 3), 0.3))


def test_video_frames_get_smoothed_boxes_and_paste_back_follows_them(env):
    frames = torch.from_numpy(np.stack([portrait(200, 320, 40 + 4 * t, 30, 120) for t in range(20)])).float() / 255
    faces, info, boxes = crop(env, frames, fps=25.0)
    assert faces.shape == (20, 512, 512, 3) and info.frames == 20 and len(boxes) == 20
    lefts = info.squares[:, 0].float()
    assert lefts[-1] - lefts[0] > 50  # it follows the face
    motion = H.run_node(env.nodes["TalkerT2AVMotionEncode"], video_model=env.models.video, images=faces,
                        fps=25.0).args[0]
    assert motion.shape[0] == 20
    out = H.run_node(env.nodes["TalkerT2AVPasteBack"], images=torch.rand(24, 64, 64, 3), source=frames,
                     face_crop=info, feather=0.1, colour_match=False).args[0]
    assert out.shape == (24, 200, 320, 3)  # longer than the source: its last frame stays under the face
    assert torch.equal(out[-1, :, :20], out[-2, :, :20]) and torch.allclose(out[-1, :, :20], frames[-1, :, :20],
                                                                            atol=0.5 / 255)
