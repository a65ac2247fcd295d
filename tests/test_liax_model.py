"""LIA-X network cases of the parity set: encoder, direction basis, rendering, full pipeline, self-reconstruction.

Tolerances are those of the fixture README (section 6): 1e-5 for encoder outputs, codes and offsets,
exact preprocessed input, 2e-3 (rtol 0) for rendered images, and the official uint8 frames exactly
except +-1 on at most 0.1 % of the values.
"""

import pytest
import torch

from conftest import load_cases
from t2av_core.errors import GenerationCancelled, T2AVError
from t2av_core.interfaces import MotionRenderer
from t2av_core.motion_stats import denormalize_motion
from t2av_core.video.lia_x import load_lia_x
from t2av_core.video.lia_x_layers import direction_basis
from t2av_core.video.lia_x_renderer import frames_to_uint8, raw_to_unit

TIGHT = dict(atol=1e-5, rtol=1e-5)
IMAGE = dict(atol=2e-3, rtol=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The CPU is shared; one thread is several times faster than two under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lia(parity_dir):
    folder = parity_dir / "codecs" / "lia_x"
    manifest, tensors = load_cases(folder, "lia_x_tiny")
    renderer = load_lia_x(folder / "lia_x_tiny.safetensors")
    return manifest, tensors, renderer


def _u8_hwc(x: torch.Tensor) -> torch.Tensor:
    """(3, R, R) in [-1, 1], made from 8-bit values -> those uint8 values (R, R, 3)."""
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)


def _assert_official_bytes(frames01: torch.Tensor, expected_bgr: torch.Tensor):
    got_bgr = frames_to_uint8(frames01).flip(-1).long()  # RGB -> BGR, as handed to the writer
    diff = (got_bgr - expected_bgr).abs()
    assert diff.max() <= 1
    assert (diff > 0).float().mean() <= 1e-3


def test_every_network_case_is_covered(lia):
    manifest, _, _ = lia
    others = {name for name in manifest["cases"] if not name.startswith("op.")}
    assert others == {"enc", "dec.direction", "dec.render", "pipeline.full", "pipeline.preprocess_up", "selfrecon"}


def test_is_a_motion_renderer(lia):
    _, _, renderer = lia
    assert isinstance(renderer, MotionRenderer)
    assert renderer.image_size == 128


def test_encoder(lia):
    _, t, renderer = lia
    with torch.no_grad():
        z, feats = renderer.model.encode_identity(t["enc.image"])
        alpha = renderer.model.encode_motion(t["enc.image"])
    torch.testing.assert_close(z, t["enc.z"], **TIGHT)
    assert len(feats) == 7
    for i, f in enumerate(feats):  # coarsest first
        torch.testing.assert_close(f, t[f"enc.feat{i}"], **TIGHT)
    torch.testing.assert_close(alpha, t["enc.alpha"], **TIGHT)


def test_direction_basis_keeps_householder_signs(lia):
    _, t, renderer = lia
    weight = renderer.model.dec.direction.weight
    q = direction_basis(weight)
    torch.testing.assert_close(q, t["dec.direction.q"], **TIGHT)
    assert int((torch.diagonal(t["dec.direction.r"]) < 0).sum()) == 20
    with torch.no_grad():
        out = renderer.model.motion_offset(t["dec.direction.motion_raw"])
    torch.testing.assert_close(out, t["dec.direction.output"], **TIGHT)
    # Negative control: the positive-diagonal (Gram-Schmidt) basis must not pass.
    _, r = torch.linalg.qr(weight.detach() + 1e-8)
    q_positive = q * torch.sign(torch.diagonal(r))
    assert (t["dec.direction.motion_raw"] @ q_positive.T - t["dec.direction.output"]).abs().max() > 0.1


def test_render_case(lia):
    _, t, renderer = lia
    face = renderer.prepare_face(_u8_hwc(t["enc.image"][0]))
    assert torch.equal(face.image, t["enc.image"][:1])
    torch.testing.assert_close(face.z, t["dec.render.z"], **TIGHT)
    motion = t["dec.render.motion_raw"]
    with torch.no_grad():
        torch.testing.assert_close(renderer.model.motion_offset(motion), t["dec.render.r_d"], **TIGHT)

    raws, calls = [], []
    hook = renderer.model.dec.register_forward_hook(lambda mod, args, out: raws.append(out.clone()))
    try:
        frames = renderer.render(face, motion, batch_size=2, progress=lambda d, n: calls.append((d, n)))
    finally:
        hook.remove()
    raw = torch.cat(raws)  # the decoder output inside render(), before the clamp
    torch.testing.assert_close(raw, t["dec.render.raw"], **IMAGE)
    assert (raw.abs() > 1).any()  # the clamp is exercised
    assert calls == [(2, 3), (3, 3)]
    assert frames.shape == (3, 128, 128, 3) and frames.dtype == torch.float32
    assert torch.equal(frames, raw_to_unit(raw))
    _assert_official_bytes(frames, t["dec.render.frames_bgr_u8"])
    # Negative controls: rounding instead of truncating, or RGB order, do not give the official bytes.
    rounded = (frames * 255).round().long().flip(-1)
    assert (rounded != t["dec.render.frames_bgr_u8"]).float().mean() > 0.1
    assert (frames_to_uint8(frames).long() - t["dec.render.frames_bgr_u8"]).abs().max() > 100

    chunks = list(renderer.render_iter(face, motion[:2], batch_size=2, uint8=True))
    assert len(chunks) == 1 and chunks[0].dtype == torch.uint8
    assert torch.equal(chunks[0], frames_to_uint8(frames[:2]))  # same batch -> same bytes


def test_pipeline_full(lia):
    _, t, renderer = lia
    motion_raw = denormalize_motion(t["pipeline.full.motion_norm"])
    torch.testing.assert_close(motion_raw, t["pipeline.full.motion_raw"], atol=1e-6, rtol=0)
    ref = t["pipeline.full.ref_rgb_u8"].to(torch.uint8)
    face = renderer.prepare_face(ref.float() / 255)  # the protocol's float 0..1 input
    assert torch.equal(face.image, t["pipeline.full.x"])
    torch.testing.assert_close(face.z, t["pipeline.full.z"], **TIGHT)
    with torch.no_grad():
        r_d = renderer.model.motion_offset(motion_raw)
        raw = renderer.model.decode(face.z + r_d, face.feats)
    torch.testing.assert_close(r_d, t["pipeline.full.r_d"], **TIGHT)
    torch.testing.assert_close(raw, t["pipeline.full.raw"], **IMAGE)


def test_self_reconstruction(lia):
    _, t, renderer = lia
    clip = t["selfrecon.frames"]  # (T, 3, R, R) in [-1, 1]
    frames01 = ((clip + 1) / 2).permute(0, 2, 3, 1)
    alpha = renderer.encode_motion(frames01, batch_size=1)
    torch.testing.assert_close(alpha, t["selfrecon.alpha"], **TIGHT)
    torch.testing.assert_close(alpha.half().float(), t["selfrecon.alpha_f16"], atol=1e-3, rtol=1e-3)
    face = renderer.prepare_face(frames01[0])
    with torch.no_grad():
        raw = renderer.model.decode(face.z + renderer.model.motion_offset(t["selfrecon.alpha"]), face.feats)
    torch.testing.assert_close(raw, t["selfrecon.raw"], **IMAGE)


@pytest.fixture(scope="module")
def face(lia):
    _, t, renderer = lia
    return renderer.prepare_face(_u8_hwc(t["enc.image"][0]))


def test_bad_render_input_is_refused(lia, face):
    _, t, renderer = lia
    with pytest.raises(T2AVError, match=r"\(T, 40\)"):
        renderer.render(face, torch.zeros(3, 39))
    with pytest.raises(T2AVError, match="NaN"):
        renderer.render(face, torch.full((2, 40), float("nan")))
    with pytest.raises(T2AVError, match="batch_size"):
        renderer.render(face, torch.zeros(2, 40), batch_size=0)
    with pytest.raises(T2AVError, match="prepare_face"):
        renderer.render("face.png", torch.zeros(2, 40))
    with pytest.raises(T2AVError, match="frames"):
        renderer.encode_motion(torch.zeros(8, 8, 3))
    assert renderer.encode_motion(torch.rand(3, 90, 70, 3), batch_size=2).shape == (3, 40)  # any frame size
    assert renderer.render(face, torch.zeros(0, 40)).shape == (0, 128, 128, 3)


def test_progress_can_cancel(lia, face):
    _, t, renderer = lia

    def stop(done, total):
        raise GenerationCancelled("stop")

    with pytest.raises(GenerationCancelled):
        renderer.render(face, t["dec.render.motion_raw"][:2], batch_size=1, progress=stop)
