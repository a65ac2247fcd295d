"""Reference-face preprocessing: the fixture's OpenCV INTER_AREA cases bit for bit, and any input layout."""

import numpy as np
import pytest
import torch

from conftest import load_cases
from t2av_core.errors import T2AVError
from t2av_core.video.face_prep import preprocess_face, resize_area_u8, to_rgb_u8


@pytest.fixture(scope="module")
def tensors(parity_dir):
    return load_cases(parity_dir / "codecs" / "lia_x", "lia_x_tiny")[1]


@pytest.mark.parametrize("case", ["pipeline.full", "pipeline.preprocess_up"])
def test_fixture_preprocessing_is_exact(tensors, case):
    """Shrinking 141x187 and enlarging 61x97 to 128x128 give the official model input exactly."""
    ref = tensors[f"{case}.ref_rgb_u8"].to(torch.uint8)
    x = preprocess_face(ref, 128)
    assert x.shape == (1, 3, 128, 128) and x.dtype == torch.float32
    assert torch.equal(x, tensors[f"{case}.x"])
    # The same pixels as float 0..1 (what image loaders give) must quantise back to the same input.
    assert torch.equal(preprocess_face(ref.float() / 255, 128), x)


@pytest.mark.parametrize("case", ["pipeline.full", "pipeline.preprocess_up"])
def test_torch_resizes_are_not_good_enough(tensors, case):
    """Negative control: torch's area / antialiased bilinear resizes miss the official input."""
    ref = tensors[f"{case}.ref_rgb_u8"].float().permute(2, 0, 1)[None]
    for kwargs in (dict(mode="area"), dict(mode="bilinear", antialias=True, align_corners=False)):
        resized = torch.nn.functional.interpolate(ref, size=(128, 128), **kwargs)
        assert (resized / 127.5 - 1 - tensors[f"{case}.x"]).abs().max() > 5e-3


def test_same_size_is_a_copy(tensors):
    x = tensors["enc.image"][:1]
    u8 = ((x[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    assert torch.equal(preprocess_face(u8, 128), x)


def test_integer_factors():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    big = small.repeat(2, axis=0).repeat(2, axis=1)
    # Enlarging 2x copies pixels; halving a 2x2-block image gives the blocks back.
    assert np.array_equal(resize_area_u8(small, 16, 12), big)
    assert np.array_equal(resize_area_u8(big, 8, 6), small)
    # 2x2 means round halves up ((sum + 2) >> 2); a 3x3 mean rounds to nearest.
    assert resize_area_u8(np.array([[[0], [1]], [[0], [1]]], np.uint8), 1, 1).item() == 1
    block = np.full((3, 3, 1), 10, np.uint8)
    block[0, 0] = 14  # mean 10.44
    assert resize_area_u8(block, 1, 1).item() == 10


def test_mixed_aspect_and_constant_images():
    """Shrinking one axis while enlarging the other keeps a flat colour flat and gives the asked size."""
    flat = np.full((300, 40, 3), (12, 200, 77), np.uint8)
    out = resize_area_u8(flat, 128, 128)
    assert out.shape == (128, 128, 3)
    assert (out == np.array((12, 200, 77), np.uint8)).all()


def test_layouts_rgba_and_greyscale():
    rng = np.random.default_rng(1)
    grey = rng.random((20, 30), dtype=np.float32)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    assert np.array_equal(to_rgb_u8(grey), to_rgb_u8(rgb))
    assert np.array_equal(to_rgb_u8(grey[:, :, None]), to_rgb_u8(rgb))
    opaque = np.concatenate([rgb, np.ones_like(grey)[:, :, None]], axis=2)
    assert np.array_equal(to_rgb_u8(opaque), to_rgb_u8(rgb))
    clear = np.concatenate([rgb, np.zeros_like(grey)[:, :, None]], axis=2)
    assert (to_rgb_u8(clear) == 255).all()  # composited over white
    half = np.concatenate([np.zeros_like(rgb), np.full_like(grey, 0.5)[:, :, None]], axis=2)
    assert (to_rgb_u8(half) == 128).all()  # 0 * 0.5 + (1 - 0.5) = 0.5 -> round(127.5) = 128
    rgba_u8 = (opaque * 255).round().astype(np.uint8)
    assert np.array_equal(to_rgb_u8(rgba_u8), to_rgb_u8(rgb))
    assert preprocess_face(torch.from_numpy(grey), 64).shape == (1, 3, 64, 64)
    assert np.array_equal(to_rgb_u8(torch.from_numpy(rgba_u8).long()), to_rgb_u8(rgb))  # int64 0..255


@pytest.mark.parametrize("image, message", [
    (torch.zeros(0, 5, 3), "empty"),
    (torch.zeros(2, 4, 4, 3), "shaped"),
    (torch.zeros(4, 4, 2), "shaped"),
    (torch.full((4, 4, 3), float("nan")), "NaN"),
    (torch.full((4, 4, 3), 255.0), "0..1"),
    (torch.full((4, 4, 3), 256), "0..255"),
])
def test_bad_images_are_refused(image, message):
    with pytest.raises(T2AVError, match=message):
        preprocess_face(image, 64)
