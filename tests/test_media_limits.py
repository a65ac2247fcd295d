"""Inputs that used to exhaust memory or be misread: huge pictures, absurd or very long audio, samples-first
audio arrays, 0..255 and RGBA pictures. Big files are made here cheaply (a solid colour compresses ~1000:1)."""

import json
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from t2av_core import pipeline
from t2av_core.audio.resample import resample
from t2av_core.errors import T2AVError
from t2av_core.media import audio_io, read_audio, read_image
from t2av_core.pipeline.encoding import _reference_cut

from media_files import png_chunk, solid_png, tone, wav_file

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _read_image_in_child(path, memory_cap_gb=6):
    """read_image in a fresh process: (result, peak RSS in MB). The address-space cap keeps a regression
    from taking the whole machine down; the child reports its own peak, unaffected by other tests."""
    code = f"""
import json, resource, sys
cap = {memory_cap_gb} * 1024 ** 3
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from t2av_core.errors import T2AVError
from t2av_core.media import read_image
try:
    image = read_image(sys.argv[1])
    result = dict(shape=list(image.shape), colour=image.reshape(-1, 3).mean(0).tolist())
except T2AVError as error:
    result = dict(error=str(error))
result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:  # Linux: the peak of this program alone (ru_maxrss also counts the parent's memory at the fork)
    with open("/proc/self/status") as status:
        result["peak_mb"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps(result))
"""
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, result.pop("peak_mb")


# ---------------------------------------------------------------------------------------------- pictures
def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    solid_png(path, 16000, 16000, (200, 120, 80))  # 256 megapixels in < 1 MB
    assert path.stat().st_size < MB
    result, peak_mb = _read_image_in_child(path)
    assert "megapixel limit" in result.get("error", "") and "resize" in result["error"], result
    assert peak_mb < 600, f"refusing the picture took {peak_mb:.0f} MB"  # it was 11.7 GB


def test_big_picture_is_downscaled_in_bounded_memory(tmp_path):
    path = tmp_path / "big.png"
    solid_png(path, 10000, 10000, (200, 120, 80))  # 100 megapixels: allowed, but more than the model needs
    result, peak_mb = _read_image_in_child(path)
    assert result.get("shape") == [4096, 4096, 3], result
    assert np.allclose(result["colour"], np.array([200, 120, 80]) / 255, atol=1e-3)
    assert peak_mb < 1536, f"reading took {peak_mb:.0f} MB"  # it was 4.8 GB


def test_downscaling_keeps_aspect_layout_and_transparency(tmp_path):
    path = tmp_path / "wide.png"
    picture = np.zeros((200, 400, 4), np.uint8)
    picture[:, :200] = (255, 0, 0, 255)  # left half opaque red
    picture[:, 200:] = (0, 0, 0, 0)      # right half fully transparent black: white once composited
    rows = b"".join(b"\x00" + row.tobytes() for row in picture)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 400, 200, 8, 6, 0, 0, 0))
                     + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))
    image = read_image(path, max_side=100)
    assert image.shape == (50, 100, 3)
    assert torch.allclose(image[:, :50], torch.tensor([1.0, 0.0, 0.0]).expand(50, 50, 3), atol=1e-3)
    assert torch.allclose(image[:, 50:], torch.ones(50, 50, 3), atol=1e-3)
    assert read_image(path).shape == (200, 400, 3)  # below max_side: untouched
    with pytest.raises(T2AVError, match="max_side"):
        read_image(path, max_side=0)


# ----------------------------------------------------------------------------------------------- audio
def test_absurd_source_rate_is_refused(tmp_path):
    path = tmp_path / "one_hz.wav"
    wav_file(path, np.random.default_rng(0).uniform(-0.5, 0.5, 2000), 1)  # 33 minutes "at 1 Hz" in 4 KB
    with pytest.raises(T2AVError, match="1 Hz.*4000"):
        read_audio(path, 16000)


def _decoded_frames(monkeypatch, read) -> int:
    """How many audio frames ``read()`` pulls from the decoder."""
    real_open = audio_io.open_input
    count = 0

    class Counting:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def decode(self, *streams):
            nonlocal count
            for frame in self._container.decode(*streams):
                count += 1
                yield frame

    @contextmanager
    def open_counting(path, what):
        with real_open(path, what) as container:
            yield Counting(container)

    monkeypatch.setattr(audio_io, "open_input", open_counting)
    try:
        read()
    finally:
        monkeypatch.setattr(audio_io, "open_input", real_open)
    return count


def test_max_seconds_stops_decoding_early(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    wav_file(path, tone(8000, 120.0), 8000)  # two minutes
    whole = read_audio(path, 16000)
    first = read_audio(path, 16000, max_seconds=2.5)
    assert first.shape == (40000,)
    assert torch.equal(first, whole[:40000])  # the same samples as a full read
    early = _decoded_frames(monkeypatch, lambda: read_audio(path, 16000, max_seconds=2.5))
    assert early * 10 < _decoded_frames(monkeypatch, lambda: read_audio(path, 16000))  # stopped long before the end
    assert read_audio(path, 16000, max_seconds=500).shape == whole.shape  # longer than the file: all of it
    with pytest.raises(T2AVError, match="max_seconds"):
        read_audio(path, 16000, max_seconds=0)


def test_unusual_rates_channels_and_lengths_still_read(tmp_path):
    cases = {"6ch_96k": (np.stack([tone(96000, 1.0)] * 6), 96000), "8k": (tone(8000, 1.0), 8000),
             "short": (tone(8000, 0.1), 8000)}
    for name, (samples, rate) in cases.items():
        wav_file(tmp_path / f"{name}.wav", samples, rate)
    assert read_audio(tmp_path / "6ch_96k.wav", 16000, mono=False).shape == (6, 16000)
    assert read_audio(tmp_path / "6ch_96k.wav", 16000).abs().max() == pytest.approx(0.5, abs=0.01)
    assert read_audio(tmp_path / "8k.wav", 16000).shape == (16000,)
    assert read_audio(tmp_path / "short.wav", 16000).shape == (1600,)


def test_folder_given_as_media_file(tmp_path):
    for read in (lambda p: read_audio(p, 16000), read_image):
        with pytest.raises(T2AVError, match="is a folder"):
            read(tmp_path)


# ------------------------------------------------------------------------------------ pipeline: voice
@pytest.fixture(scope="module")
def demo():
    from t2av_core.demo.bundle import load_demo
    return load_demo()


def test_cutting_before_resampling_keeps_the_first_30_s():
    """The pipeline cuts at the source rate before resampling; the 30 s kept must come out as before."""
    noise = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, 40 * 48000).astype(np.float32))
    worst = 0.0
    for rate in (8000, 22050, 44100, 48000):
        wave = resample(noise, 48000, rate) if rate != 48000 else noise  # 40 s at ``rate``
        cut = _reference_cut(wave, rate)
        assert cut.numel() < wave.numel()
        for target in (16000, 24000):
            old = resample(wave, rate, target)[: 30 * target]
            new = resample(cut, rate, target)[: 30 * target]
            assert new.shape == old.shape
            worst = max(worst, float((new - old).abs().max()))
    assert worst <= 1e-6, worst


def test_voice_is_cut_at_the_source_rate_before_resampling(demo, monkeypatch):
    from t2av_core.audio import resample as resample_module
    seen = []

    def spy(wave, orig_freq, new_freq, **kwargs):
        seen.append(wave.shape[-1] / orig_freq)  # seconds of input handed to the resampler
        return resample(wave, orig_freq, new_freq, **kwargs)

    long_clip = torch.from_numpy(np.stack([tone(48000, 90.0)] * 2))
    expected = pipeline.encode_voice(demo.speaker_encoder, demo.audio_codec, long_clip[:, : 40 * 48000], 48000)
    monkeypatch.setattr(resample_module, "resample", spy)
    voice = pipeline.encode_voice(demo.speaker_encoder, demo.audio_codec, long_clip, 48000)
    latents = pipeline.encode_audio(demo.audio_codec, long_clip, 48000)
    assert seen and max(seen) < 31.5, seen  # was 90 s: the whole clip was resampled, then cut
    assert voice.seconds == 30.0 and voice.audio_latents.shape[0] == 750 and latents.shape[0] == 750
    assert torch.allclose(voice.speaker, expected.speaker, atol=1e-5)
    assert torch.allclose(voice.audio_latents, expected.audio_latents, atol=1e-5)


def test_voice_of_unusual_shapes_and_lengths(demo):
    encoder, codec = demo.speaker_encoder, demo.audio_codec
    six = torch.from_numpy(np.stack([tone(96000, 2.0)] * 6))
    assert pipeline.encode_voice(encoder, codec, six, 96000).seconds == 2.0
    assert pipeline.encode_voice(encoder, codec, torch.from_numpy(tone(8000, 2.0)), 8000).seconds == 2.0
    ten_minutes = torch.from_numpy(tone(16000, 600.0))
    assert pipeline.encode_voice(encoder, codec, ten_minutes, 16000).seconds == 30.0
    with pytest.raises(T2AVError, match="too short"):
        pipeline.encode_voice(encoder, codec, torch.from_numpy(tone(8000, 0.05)), 8000)
    with pytest.raises(T2AVError, match="silent"):
        pipeline.encode_voice(encoder, codec, torch.zeros(2, 16000), 16000)


def test_samples_first_audio_is_transposed():
    stereo = torch.from_numpy(np.stack([tone(16000, 1.0), tone(16000, 1.0, amplitude=0.3)]))
    expected = pipeline.to_mono(stereo, 16000)
    assert torch.equal(pipeline.to_mono(stereo.T, 16000), expected)  # (N, 2), e.g. from soundfile
    assert torch.equal(pipeline.to_mono(stereo.T[None], 16000), expected)
    with pytest.raises(T2AVError, match=r"\(channels, samples\)"):
        pipeline.to_mono(torch.rand(40, 30), 16000)


# ------------------------------------------------------------------------------------ pipeline: pictures
def _face(demo):
    return (pipeline.default_face_image(demo.renderer) * 255).round() / 255  # exactly representable in uint8


def test_uint8_and_0_255_pictures_match_0_1(demo):
    face = _face(demo)
    expected = pipeline.encode_face(demo.renderer, face)
    for picture in ((face * 255).round().to(torch.uint8), face * 255):
        got = pipeline.encode_face(demo.renderer, picture)
        assert torch.allclose(got.motion, expected.motion, atol=1e-6)
        assert torch.allclose(got.state.base, expected.state.base, atol=1e-6)
    with pytest.raises(T2AVError, match="0..255"):
        pipeline.encode_face(demo.renderer, face * 1000)
    frames = face[None].repeat(3, 1, 1, 1)
    motion = pipeline.reference_motion(demo.renderer, frames)
    assert torch.allclose(pipeline.reference_motion(demo.renderer, (frames * 255).round().to(torch.uint8)), motion,
                          atol=1e-6)


def test_rgba_picture_is_composited_over_white(demo):
    face = _face(demo)
    size = face.shape[0]
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    alpha = (1.5 - 2 * (x**2 + y**2)).clamp(0, 1)  # opaque middle, soft edge, transparent corners
    cut_out = torch.cat([face * (alpha[..., None] > 0), alpha[..., None]], dim=-1)  # black where transparent
    over_white = face * (alpha[..., None] > 0) * alpha[..., None] + (1 - alpha[..., None])
    got, expected = pipeline.encode_face(demo.renderer, cut_out), pipeline.encode_face(demo.renderer, over_white)
    assert torch.allclose(got.state.base, expected.state.base, atol=1e-5)
    assert torch.allclose(got.motion, expected.motion, atol=1e-5)
    motion = pipeline.reference_motion(demo.renderer, cut_out[None])
    assert torch.allclose(motion, pipeline.reference_motion(demo.renderer, over_white[None]), atol=1e-5)
