"""Resampler against torchaudio 2.6.0 (fixtures: codecs/audio_vae, `resample.*`): both official paths."""

import pytest
import torch

from conftest import load_cases
from t2av_core.audio.resample import resample, sinc_resample_kernel
from t2av_core.errors import T2AVError

TOL = dict(atol=1e-5, rtol=1e-5)
RATES = [(24000, 16000), (44100, 24000), (16000, 24000), (48000, 16000), (8000, 24000), (22050, 16000)]


@pytest.fixture(scope="module")
def fixture(parity_dir):
    return load_cases(parity_dir / "codecs" / "audio_vae", "audio_vae_tiny")


@pytest.mark.parametrize("orig,new", RATES)
def test_transform_kernel_and_width(fixture, orig, new):
    cases = fixture[1]
    kernel, width = sinc_resample_kernel(orig, new)
    expected = cases[f"resample.{orig}_to_{new}.kernel"]
    assert width == int(cases[f"resample.{orig}_to_{new}.width"])
    assert kernel.shape == expected.shape and kernel.dtype == torch.float32
    torch.testing.assert_close(kernel, expected, **TOL)


@pytest.mark.parametrize("orig,new", RATES)
@pytest.mark.parametrize("path,field", [("transform", "output"), ("functional", "output_functional")])
def test_resample_matches_reference(fixture, orig, new, path, field):
    manifest, cases = fixture
    name = f"resample.{orig}_to_{new}"
    out = resample(cases[f"{name}.input"], orig, new, path=path, use_torchaudio=False)
    assert out.shape == (1, manifest["cases"][name]["settings"]["n_out"])  # ceil(n * new' / orig'), exact
    torch.testing.assert_close(out, cases[f"{name}.{field}"], **TOL)


def test_the_two_paths_really_differ(fixture):
    """22.05 k -> 16 k is where the float32 and float64 kernels part (trap 1): each path must pick its own."""
    x = fixture[1]["resample.22050_to_16000.input"]
    diff = (resample(x, 22050, 16000) - resample(x, 22050, 16000, path="functional")).abs().max().item()
    assert diff > 1e-6


@pytest.mark.parametrize("orig,new", RATES)
def test_torchaudio_path_when_installed(fixture, orig, new):
    pytest.importorskip("torchaudio")
    cases = fixture[1]
    name = f"resample.{orig}_to_{new}"
    for path, field in (("transform", "output"), ("functional", "output_functional")):
        out = resample(cases[f"{name}.input"], orig, new, path=path, use_torchaudio=True)
        torch.testing.assert_close(out, cases[f"{name}.{field}"], **TOL)


def test_leading_axes_are_kept_and_equal_rates_are_identity():
    x = torch.randn(2, 3, 4410)
    assert resample(x, 44100, 16000).shape == (2, 3, 1600)
    assert resample(x, 16000, 16000) is x


@pytest.mark.parametrize("orig,new", [(0, 16000), (-8000, 16000), (22050.5, 16000)])
def test_bad_rates_are_rejected(orig, new):
    with pytest.raises(T2AVError):
        resample(torch.zeros(100), orig, new)


def test_bad_inputs_are_rejected():
    with pytest.raises(T2AVError):
        resample(torch.zeros(100, dtype=torch.int16), 24000, 16000)
    with pytest.raises(T2AVError):
        resample(torch.zeros(100), 24000, 16000, path="sox")
