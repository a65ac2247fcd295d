"""Every op-level LIA-X parity case (``op.*``): our modules loaded strictly with the official weights."""

import pytest
import torch

from conftest import load_cases
from t2av_core.video.lia_x_decoder import DecoderResBlock, FlowResBlock
from t2av_core.video.lia_x_encoder import EncoderResBlock
from t2av_core.video.lia_x_layers import (ConvLayer, Direction, EqualConv2d, EqualLinear, ModulatedConv2d,
                                          StyledConv, ToFlow, ToRGB)
from t2av_core.video.upfirdn import Blur, Downsample, FusedLeakyReLU, Upsample, upfirdn2d

TOL = dict(atol=1e-5, rtol=1e-5)  # README section 6: op cases

MODULES = {
    "op.upfirdn2d.up2": lambda: Upsample(),
    "op.upfirdn2d.blur_down_k3": lambda: Blur((2, 2)),
    "op.upfirdn2d.blur_down_k1": lambda: Blur((1, 1)),
    "op.upfirdn2d.blur_up": lambda: Blur((1, 1), gain=4.0),
    "op.upfirdn2d.down2": lambda: Downsample(),
    "op.fused_leaky_relu": lambda: FusedLeakyReLU(5),
    "op.equal_conv2d.s1": lambda: EqualConv2d(6, 7, 3, stride=1, padding=1),
    "op.equal_conv2d.s2": lambda: EqualConv2d(6, 7, 3, stride=2, padding=0, bias=False),
    "op.equal_linear": lambda: EqualLinear(48, 40),
    "op.modulated_conv2d.plain": lambda: ModulatedConv2d(6, 8, 3, 48),
    "op.modulated_conv2d.up": lambda: ModulatedConv2d(6, 8, 3, 48, upsample=True),
    "op.modulated_conv2d.nodemod_k1": lambda: ModulatedConv2d(6, 3, 1, 48, demodulate=False),
    "op.styled_conv.plain": lambda: StyledConv(6, 8, 3, 48),
    "op.styled_conv.up": lambda: StyledConv(6, 8, 3, 48, upsample=True),
    "op.conv_layer.up": lambda: ConvLayer(6, 6, 3, upsample=True),
    "op.conv_layer.down": lambda: ConvLayer(6, 6, 3, downsample=True),
    "op.to_rgb.skip": lambda: ToRGB(8),
    "op.to_rgb.noskip": lambda: ToRGB(8),
    "op.to_flow.skip": lambda: ToFlow(8, 48),
    "op.to_flow.noskip": lambda: ToFlow(8, 48),
    "op.encoder_resblock": lambda: EncoderResBlock(6, 10),
    "op.flow_resblock": lambda: FlowResBlock(64, 48),
    "op.decoder_resblock": lambda: DecoderResBlock(8),
    "op.direction_full": lambda: Direction(1024, 40),
}


@pytest.fixture(scope="module")
def cases(parity_dir):
    return load_cases(parity_dir / "codecs" / "lia_x", "lia_x_tiny")


def _inputs(case, tensors):
    return {role: tensors[name] for role, name in case["inputs"].items()}


def test_every_module_case_is_covered(cases):
    manifest, _ = cases
    op_cases = {name for name in manifest["cases"] if name.startswith("op.")}
    assert op_cases == set(MODULES) | {"op.upfirdn2d.asym_up2", "op.upfirdn2d.asym_down2"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_case(cases, name):
    manifest, tensors = cases
    case = manifest["cases"][name]
    module = MODULES[name]()
    weights = {key: tensors[t].clone() for key, t in case["weights"].items()}
    module.load_state_dict(weights, strict=True)
    inputs = _inputs(case, tensors)
    with torch.no_grad():
        if "style" in inputs and "h" in inputs:  # ToFlow
            out = module(inputs["h"], inputs["style"], inputs["feat"], inputs.get("skip"))
        elif "style" in inputs:
            out = module(inputs["x"], inputs["style"])
        elif "skip" in inputs:
            out = module(inputs["x"], inputs["skip"])
        elif "motion_raw" in inputs:
            out = module(inputs["motion_raw"])
        else:
            out = module(inputs["x"])
    outs = out if isinstance(out, tuple) else (out,)
    expected = [tensors[t] for t in case["expected"].values()]  # manifest order = return order
    assert len(outs) == len(expected)
    for got, want in zip(outs, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("name", ["op.upfirdn2d.asym_up2", "op.upfirdn2d.asym_down2"])
def test_upfirdn2d_asymmetric_kernel(cases, name):
    """Only an asymmetric kernel shows whether the filter is flipped (a true convolution)."""
    manifest, tensors = cases
    case = manifest["cases"][name]
    s = case["settings"]
    x, kernel = tensors[case["inputs"]["x"]], tensors[case["inputs"]["kernel"]]
    out = upfirdn2d(x, kernel, up=s["up"], down=s["down"], pad=tuple(s["pad"]))
    torch.testing.assert_close(out, tensors[case["expected"]["output"]], **TOL)
    unflipped = upfirdn2d(x, kernel.flip(0, 1), up=s["up"], down=s["down"], pad=tuple(s["pad"]))
    assert (unflipped - tensors[case["expected"]["output"]]).abs().max() > 1.0  # negative control


def test_upfirdn2d_matches_direct_sum():
    """The definition, written as loops: zero insertion, padding, true convolution, decimation."""
    torch.manual_seed(0)
    x, k = torch.randn(1, 2, 4, 5, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    up, down, (p0, p1) = 3, 2, (2, -1)
    out = upfirdn2d(x, k, up=up, down=down, pad=(p0, p1))
    h, w = 4 * up + p0 + p1, 5 * up + p0 + p1
    big = torch.zeros(1, 2, 4 * up + 10, 5 * up + 10, dtype=torch.float64)
    big[:, :, p0:p0 + 4 * up:up, p0:p0 + 5 * up:up] = x  # offset p0 (p1 < 0 only crops the end)
    big = big[:, :, :h, :w]
    kh, kw = k.shape
    ref = torch.zeros(1, 2, (h - kh) // down + 1, (w - kw) // down + 1, dtype=torch.float64)
    for i in range(ref.shape[2]):
        for j in range(ref.shape[3]):
            patch = big[:, :, i * down:i * down + kh, j * down:j * down + kw]
            ref[:, :, i, j] = (patch * k.flip(0, 1)).sum(dim=(2, 3))
    torch.testing.assert_close(out, ref)
