"""Face crop, boxes over time and paste-back, on pictures and videos made here (t2av_core.face)."""

import numpy as np
import pytest
import torch

from t2av_core import face
from t2av_core.demo.portrait import drawn_face, face_box, portrait, texture
from t2av_core.errors import T2AVError
from t2av_core.face.boxes import FaceBox, smooth_boxes, track
from t2av_core.face.crop import cut_square
from t2av_core.video.face_prep import resize_area_u8


def liax_reference_square(box, margin=0.25, top_margin=0.5):
    """LIA-X utils/crop.py, compute_bbox then crop(), for a box well inside a large picture (no clamping)."""
    left, top, w, h = box
    right, bot = left + w, top + h
    wi = max(margin, ((1 + 2 * margin) * h - w) / (2 * w))
    hi = max(margin, ((1 + 2 * margin) * w - h) / (2 * h))
    left, top = int(left - wi * w), int(top - hi * h * (1 + top_margin))
    right, bot = int(right + wi * w), int(bot + hi * h)
    size = min(bot - top, right - left)
    return left + (right - left) // 2 - size // 2, top + (bot - top) // 2 - size // 2, size


@pytest.mark.parametrize("box", [(1000, 900, 200, 200), (500, 700, 180, 240), (2000, 1500, 300, 210),
                                 (1234.5, 987.25, 97.5, 131.0)])
def test_square_is_the_liax_crop_of_the_box(box):
    left, top, side = face.renderer_square(box)
    ref_left, ref_top, ref_side = liax_reference_square(box)
    # Same size and place up to LIA-X's integer truncations (at most 2 pixels).
    assert abs(side - ref_side) <= 2 and abs(left - ref_left) <= 2 and abs(top - ref_top) <= 2
    x, y, w, h = box
    assert left < x and top < y and left + side > x + w  # the whole face, with room around it


def _outside(shape, square, grow=0):
    left, top, side = square
    mask = np.ones(shape[:2], dtype=bool)
    mask[max(0, top - grow):max(0, top + side + grow), max(0, left - grow):max(0, left + side + grow)] = False
    return mask


def _paste(picture, crop, frames=3, **kw):
    size = 256
    rendered = [torch.rand(frames, size, size, 3)]
    return torch.cat(list(face.paste_back(rendered, picture, crop, **kw))).numpy()


@pytest.mark.parametrize("shape,place", [((720, 1280), (900, 200, 300)),   # landscape, face right of centre
                                         ((1280, 720), (100, 700, 400)),   # portrait, face low and left
                                         ((720, 1280), (1100, -60, 300)),  # face cut by the top-right corner
                                         ((480, 640), (600, 300, 32))])    # a tiny face
def test_crop_and_paste_back_keep_the_picture_outside_the_square_exactly(shape, place):
    picture = portrait(*shape, *place)
    box = FaceBox(*face_box(*place))
    crops, crop = face.crop_faces(picture, box=box)
    assert crops.shape == (1, 512, 512, 3) and crops.dtype == torch.uint8
    square = crop.square(0)
    # The crop is the square resized, with repeated edge pixels where the square runs past the picture.
    expected = resize_area_u8(cut_square(picture, *square), 512, 512)
    assert np.array_equal(crops[0].numpy(), expected)
    out = _paste(picture, crop)
    assert out.shape == (3, *shape, 3) and out.dtype == np.uint8
    outside = _outside(shape, square)
    assert outside.any() and (out[:, outside] == picture[outside]).all()  # byte for byte
    left, top, side = square
    centre = out[:, top + side // 2, left + side // 2] if 0 <= top + side // 2 < shape[0] else None
    if centre is not None and 0 <= left + side // 2 < shape[1]:
        assert not (out[0] == picture).all()  # and the face was pasted in


def test_square_past_the_edge_is_padded_not_shrunk():
    centred = face.crop_faces(portrait(720, 1280, 500, 200, 300), box=FaceBox(*face_box(500, 200, 300)))[1]
    cornered = face.crop_faces(portrait(720, 1280, 1100, -60, 300), box=FaceBox(*face_box(1100, -60, 300)))[1]
    assert centred.square(0)[2] == cornered.square(0)[2]  # same face size -> same square size
    left, top, side = cornered.square(0)
    assert top < 0 and left + side > 1280


def test_feather_mask_falls_smoothly_to_zero_at_the_border():
    mask = face.feather_mask(200, 0.12)
    assert mask[0].max() == 0 and mask[:, -1].max() == 0 and mask[100, 100] == 1
    row = mask[100, :100]
    assert (row[1:] >= row[:-1]).all() and 0 < float(row[10]) < 1


def test_pasted_region_is_the_rendered_face_where_the_mask_is_full():
    picture = texture(400, 600)
    crop = face.make_crop((400, 600), [(200, 100, 256)])
    rendered = torch.rand(1, 256, 256, 3)
    out = torch.cat(list(face.paste_back([rendered], picture, crop))).numpy()[0]
    inner = out[100 + 100:100 + 156, 200 + 100:200 + 156]
    assert np.abs(inner.astype(int) - np.rint(rendered[0, 100:156, 100:156].numpy() * 255)).max() <= 1


def test_colour_match_brings_a_tinted_face_to_the_photos_colours():
    picture = portrait(480, 640, 200, 100, 260)
    _, crop = face.crop_faces(picture, box=FaceBox(*face_box(200, 100, 260)))
    left, top, side = crop.square(0)
    own = torch.from_numpy(resize_area_u8(cut_square(picture, left, top, side), 256, 256)).float() / 255
    tinted = (own * torch.tensor([0.6, 0.9, 1.3])).clamp(0, 1)[None]  # a strong colour cast
    region = (slice(top + side // 4, top + 3 * side // 4), slice(left + side // 4, left + 3 * side // 4))
    truth = picture[region].reshape(-1, 3).mean(0)
    plain = torch.cat(list(face.paste_back([tinted], picture, crop)))
    matched = torch.cat(list(face.paste_back([tinted], picture, crop, colour_match=True)))
    error_plain = np.abs(plain[0].numpy()[region].reshape(-1, 3).mean(0) - truth).sum()
    error_matched = np.abs(matched[0].numpy()[region].reshape(-1, 3).mean(0) - truth).sum()
    assert error_matched < error_plain / 3


@pytest.mark.parametrize("layout", ["grey2d", "grey1", "rgba", "uint8"])
def test_any_picture_layout_crops_and_pastes_back_as_rgb(layout):
    picture = portrait(360, 480, 150, 60, 220)
    grey = picture.mean(axis=2).astype(np.uint8)
    source = {"grey2d": torch.from_numpy(grey).float() / 255, "grey1": torch.from_numpy(grey)[..., None],
              "rgba": torch.cat([torch.from_numpy(picture).float() / 255, torch.ones(360, 480, 1)], -1),
              "uint8": torch.from_numpy(picture)}[layout]
    crops, crop = face.crop_faces(source, box=FaceBox(*face_box(150, 60, 220)))
    out = _paste(source, crop, frames=1)
    expected = np.repeat(grey[..., None], 3, 2) if layout.startswith("grey") else picture
    outside = _outside((360, 480), crop.square(0))
    assert out.shape == (1, 360, 480, 3) and (out[0][outside] == expected[outside]).all()


def test_no_face_is_a_clear_error_with_how_to_give_a_box():
    with pytest.raises(T2AVError, match="no face was found.*--face-box.*BOUNDING_BOX"):
        face.crop_faces(texture(240, 320))


def test_the_built_in_detector_finds_a_drawn_face_off_centre():
    picture = portrait(720, 1280, 880, 300, 280, seed=2)
    _, crop = face.crop_faces(picture)
    x, y, w, h = face_box(880, 300, 280)
    left, top, side = crop.square(0)
    assert abs(left + side / 2 - (x + w / 2)) < 0.1 * w and abs(side - face.renderer_square((x, y, w, h))[2]) < 0.2 * side
    assert "built-in detector" in crop.method


def test_host_bounding_box_forms():
    one = {"x": 10, "y": 20, "width": 30, "height": 40}
    assert face.host_boxes(one, 3) == [[FaceBox(10, 20, 30, 40)]] * 3  # core Bounding Box node
    flat = face.host_boxes([one, {**one, "width": 90, "height": 90, "score": 0.9}], 2)  # one frame's list
    assert len(flat) == 2 and flat[0][0].width == 90  # largest first
    per_frame = face.host_boxes([[one], [], [{**one, "x": 12}]], 4)  # MediaPipe: a list per frame
    assert [len(f) for f in per_frame] == [1, 0, 1, 0]
    with pytest.raises(T2AVError, match="x, y, width and height"):
        face.host_boxes([{"x": 1}], 1)
    with pytest.raises(T2AVError, match="no box for any frame"):
        face.find_boxes(torch.rand(2, 64, 64, 3), boxes=[[], []])


def test_a_connected_box_wins_over_the_detector_and_the_typed_box():
    picture = portrait(480, 640, 300, 100, 200)
    found, method = face.find_boxes(picture, box=FaceBox(5, 5, 50, 50), boxes={"x": 1, "y": 2, "width": 60, "height": 70})
    assert found[0].tolist() == [1, 2, 60, 70] and method == "the connected face box"


def test_tracking_follows_the_same_face_when_two_are_seen():
    a, b = FaceBox(100, 100, 50, 50), FaceBox(400, 100, 80, 80)
    chosen = track([[a], [b, FaceBox(104, 101, 50, 50)], [FaceBox(108, 102, 50, 50), b]])
    assert [round(c.x) for c in chosen] == [100, 104, 108]


def moving_face_video(frames=50, gap=range(20, 26)):
    """Frames of a drawn face gliding right and down on a texture; in ``gap`` it is hidden (no face)."""
    background = texture(360, 640, seed=4)
    face_image = drawn_face(150)
    video, truth = [], []
    for t in range(frames):
        left, top = 60 + 6 * t, 40 + 2 * t
        frame = background.copy()
        if t not in gap:
            frame[top:top + 150, left:left + 150] = face_image
        video.append(frame)
        truth.append(face_box(left, top, 150))
    return torch.from_numpy(np.stack(video)), np.array(truth)


def test_video_boxes_follow_the_face_smoothly_and_fill_frames_without_it():
    video, truth = moving_face_video()
    crops, crop = face.crop_faces(video, fps=25.0)
    assert crops.shape == (50, 512, 512, 3) and crop.frames == 50
    found, _ = face.find_boxes(video, fps=25.0)
    centres = found[:, :2] + found[:, 2:] / 2
    true_centres = truth[:, :2] + truth[:, 2:] / 2
    error = np.abs(centres - true_centres).max(axis=1)
    assert error.max() < 0.2 * 150  # within a fifth of the face everywhere, the hidden frames included
    # No jitter: the squares move as smoothly as the face (its path is a straight line).
    squares = crop.squares.numpy().astype(float)
    wobble = np.abs(np.diff(squares[:, :2], n=2, axis=0)).max()
    assert wobble <= 3
    # Paste-back over the video: each output frame lies over its own source frame.
    out = torch.cat(list(face.paste_back([torch.rand(50, 256, 256, 3)], video, crop))).numpy()
    for t in (0, 30, 49):
        outside = _outside((360, 640), crop.square(t))
        assert (out[t][outside] == video[t].numpy()[outside]).all()


def test_smoothing_removes_detector_jitter():
    rng = np.random.default_rng(0)
    raw = [FaceBox(100 + 2 * t + rng.normal(0, 6), 80 + rng.normal(0, 6), 120 + rng.normal(0, 6), 120)
           for t in range(60)]
    smooth = smooth_boxes(raw, fps=25.0, seconds=0.2)
    raw_x = np.array([b.x + b.width / 2 for b in raw])
    assert np.abs(np.diff(smooth[:, 0] + smooth[:, 2] / 2, 2)).mean() < np.abs(np.diff(raw_x, 2)).mean() / 5


def test_output_longer_than_the_source_video_holds_its_last_frame():
    crop = face.make_crop((100, 120), [(10, 10, 60)] * 5, fps=12.5)  # 5 frames at 12.5 fps = 10 frames at 25
    assert [crop.source_index(i) for i in range(12)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]


def test_paste_back_refuses_a_different_source():
    crop = face.make_crop((100, 120), [(10, 10, 60)])
    with pytest.raises(T2AVError, match="paste back into the picture that was cropped"):
        list(face.paste_back([torch.rand(1, 64, 64, 3)], np.zeros((90, 120, 3), np.uint8), crop))
