"""16-bit side models on the CPU never send a 16-bit convolution to oneDNN (t2av_core.cpu_convs).

torch 2.13's oneDNN bf16 conv1d is wrong on AVX-512 BF16 / AMX CPUs for some shapes (8 -> 16 channels,
kernel 8 or 20: error larger than the signal). On an AVX2 machine the same calls happen to be right, so the
numeric checks alone could pass there with a broken guard; the dispatch-level checks below prove on every
CPU that no 16-bit convolution reaches a kernel.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from t2av_core.audio.whisperx_vae import load_audio_vae
from t2av_core.cpu_convs import float32_cpu_convolutions, needs_float32_convolutions
from t2av_core.speaker.encoder import load_speaker_encoder
from t2av_core.video.lia_x import load_lia_x

HALF = [torch.bfloat16, torch.float16]
CONVOLUTION_OPS = {"convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                   "conv_transpose2d", "conv_transpose3d"}


class ConvolutionDtypes(TorchDispatchMode):
    """Records the input dtype of every convolution that reaches the kernels."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in CONVOLUTION_OPS:  # composite ops stay whole under inference_mode
            self.seen.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kernel", [8, 20])
def test_the_shapes_oneDNN_gets_wrong_are_right(dtype, kernel):
    torch.manual_seed(0)
    x, w = torch.randn(1, 8, 4000), torch.randn(16, 8, kernel) * 0.1
    reference = F.conv1d(x, w, stride=kernel // 2)
    conv = torch.nn.Conv1d(8, 16, kernel, stride=kernel // 2, bias=False).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(w)
        with float32_cpu_convolutions(conv):
            out = conv(x.to(dtype))
    assert out.dtype == dtype
    # only the final rounding to 16 bits remains (bf16: 8 bits of mantissa, 0.4 %)
    assert (out.float() - reference).abs().max() < 0.01 * reference.abs().max()


def test_only_16_bit_cpu_weights_are_guarded():
    conv = torch.nn.Conv1d(2, 2, 3)
    assert not needs_float32_convolutions(conv)
    assert needs_float32_convolutions(conv.to(torch.bfloat16))
    with ConvolutionDtypes() as seen, float32_cpu_convolutions(conv.float()):
        conv(torch.randn(1, 2, 10))
    assert seen.seen == [torch.float32]


@pytest.fixture(scope="module")
def codecs(parity_dir):
    return parity_dir / "codecs"


def _side_model_calls(codecs, dtype):
    """Every side-model entry point, loaded at ``dtype``: name -> zero-argument call."""
    vae = load_audio_vae(codecs / "audio_vae" / "audio_vae_tiny.safetensors", dtype=dtype, whisper_heads=2)
    lia = load_lia_x(codecs / "lia_x" / "lia_x_tiny.safetensors", dtype=dtype)
    speaker = load_speaker_encoder(codecs / "speaker" / "speaker_tiny.safetensors", dtype=dtype)
    wave = torch.sin(torch.arange(48000) * 0.05) * 0.3
    image = torch.rand(40, 30, 3)
    face = lia.prepare_face(image)
    return {
        "audio encode": lambda: vae.encode(wave),
        "audio decode": lambda: vae.decode(torch.randn(6, 32)),
        "face identity": lambda: lia.prepare_face(image),
        "face motion": lambda: lia.encode_motion(image[None]),
        "render": lambda: lia.render(face, torch.zeros(3, lia.motion_dim)),
        "speaker": lambda: speaker.embed(wave[:16000]),
    }


@pytest.mark.parametrize("dtype", HALF)
def test_no_16_bit_convolution_reaches_a_kernel(codecs, dtype):
    for name, call in _side_model_calls(codecs, dtype).items():
        with ConvolutionDtypes() as seen:
            call()
        assert seen.seen, f"{name}: no convolution ran"
        assert set(seen.seen) == {torch.float32}, f"{name}: 16-bit convolutions ran on the CPU: {set(seen.seen)}"
