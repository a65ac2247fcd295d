"""t2av_core.pipeline, the host-independent stages behind the nodes and the command line: the parts that need
no model weights (the stages that do are run by the node and workflow tests on the tiny models)."""

import pytest
import torch

from t2av_core import pipeline
from t2av_core.errors import T2AVError


def test_precision_choices(monkeypatch):
    from t2av_core.pipeline import loading
    for accelerates, expected in ((False, torch.float32), (True, torch.bfloat16)):  # AVX2-only / AMX CPUs
        monkeypatch.setattr(loading, "cpu_accelerates_bf16", lambda: accelerates)
        assert pipeline.resolve_dtype("auto", "cpu") == expected
        assert pipeline.model_dtype("auto", "cpu", side_model=True) == torch.float32  # never the side models
        assert pipeline.describe_precision("auto", "cpu").startswith("fp32" if not accelerates else "bf16")
    assert pipeline.describe_precision("fp16", "cpu") == "fp16 (as chosen)"
    assert pipeline.resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert pipeline.resolve_dtype("fp16", "cuda") == torch.float16
    with pytest.raises(T2AVError, match="precision must be one of"):
        pipeline.resolve_dtype("int8", "cpu")


def test_missing_model_files_are_named(tmp_path):
    for load in (pipeline.load_talker, pipeline.load_audio_codec, pipeline.load_renderer,
                 pipeline.load_speaker_encoder, pipeline.load_tokenizer):
        with pytest.raises(T2AVError, match="not found: .*nothing.pt"):
            load(tmp_path / "nothing.pt")


def test_side_models_stay_fp32_under_auto():
    assert pipeline.model_dtype("auto", "cpu", side_model=True) == torch.float32
    assert pipeline.model_dtype("bf16", "cpu", side_model=True) == torch.bfloat16
    assert pipeline.model_dtype("fp16", "cpu") == torch.float16


def test_stages_name_a_model_that_was_not_loaded():
    models = pipeline.Models()  # nothing loaded
    wave, image = torch.sin(torch.arange(16000) * 0.1), torch.rand(8, 8, 3)
    calls = [
        ("tokenizer", lambda: pipeline.encode_text(models.tokenizer, "Hello.")),
        ("speaker_encoder", lambda: pipeline.encode_voice(models.speaker_encoder, None, wave, 16000)),
        ("audio_codec", lambda: pipeline.encode_audio(models.audio_codec, wave, 16000)),
        ("renderer", lambda: pipeline.encode_face(models.renderer, image)),
        ("renderer", lambda: pipeline.reference_motion(models.renderer, image[None])),
        ("talker", lambda: pipeline.sample_av(models.talker, None, None, None, pipeline.SamplerParts(), 0)),
        ("audio_codec", lambda: pipeline.decode_audio(models.audio_codec, None)),
        ("renderer", lambda: pipeline.decode_video(models.renderer, None, None)),
    ]
    for name, call in calls:
        with pytest.raises(T2AVError, match=f"no {name} is loaded"):
            call()


def test_audio_is_mixed_down_and_bad_audio_refused():
    stereo = torch.stack([torch.ones(100) * 0.2, torch.ones(100) * 0.4])
    assert torch.allclose(pipeline.to_mono(stereo[None], 16000), torch.full((100,), 0.3))
    with pytest.raises(T2AVError, match="silent"):
        pipeline.to_mono(torch.zeros(100), 16000)
    with pytest.raises(T2AVError, match="NaN"):
        pipeline.to_mono(torch.tensor([0.5, float("nan")]), 16000)
    with pytest.raises(T2AVError, match="sample rate"):
        pipeline.to_mono(stereo, 0)
    with pytest.raises(T2AVError, match="audio must be"):
        pipeline.to_mono(torch.ones(1, 1, 2, 3), 16000)


def test_frames_are_picked_at_25_fps():
    frames = torch.arange(30).float().reshape(30, 1, 1, 1)
    picked = pipeline.frames_at_25fps(frames, 30.0).reshape(-1).long().tolist()
    assert len(picked) == 25 and picked[:7] == [0, 1, 2, 3, 4, 6, 7]  # 30 -> 25 fps drops every 6th frame
    assert pipeline.frames_at_25fps(frames[:5], 12.5).reshape(-1).long().tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    with pytest.raises(T2AVError, match="frame rate"):
        pipeline.frames_at_25fps(frames, 0)


def test_sampler_parts_become_core_settings():
    settings = pipeline.make_settings(pipeline.SamplerParts(), seed=5, max_seconds=3.0, prefix_seconds=0.5)
    assert (settings.solver, settings.cfm_steps, settings.cfg_scale, settings.temperature) == ("euler", 10, 2.0, 0.3)
    assert settings.seed == 5 and settings.prefix_seconds == 0.5 and settings.times is None
    grid = pipeline.sway_sigmas(4, 0.0)
    custom = pipeline.make_settings(pipeline.SamplerParts(solver="heun", sigmas=grid), 0, 1.0, 0.0)
    assert custom.times == (1.0, 0.75, 0.5, 0.25, 0.0)
    assert torch.equal(custom.sampler().schedule.grid(), grid)

    class HalfStep:  # any object with the core solver interface
        def solve(self, velocity, x, grid):
            return x * 0.5

    own = pipeline.make_settings(pipeline.SamplerParts(solver=HalfStep()), 0, 1.0, 0.0).sampler()
    assert isinstance(own.solver, HalfStep)
    with pytest.raises(T2AVError, match="unknown solver"):
        pipeline.make_settings(pipeline.SamplerParts(solver="rk4"), 0, 1.0, 0.0)
    with pytest.raises(T2AVError, match="solve"):
        pipeline.make_settings(pipeline.SamplerParts(solver=object()), 0, 1.0, 0.0)
    with pytest.raises(T2AVError, match="max_seconds"):
        pipeline.make_settings(pipeline.SamplerParts(), 0, 0.0, 0.0)


def test_joined_streams_split_back_and_mux_refuses_empty_video(tmp_path):
    audio, motion = torch.randn(8, 32), torch.randn(8, 40) * 0.1
    joined = pipeline.join_av(audio, motion)
    back_audio, back_motion = pipeline.av_streams(joined)
    assert torch.equal(back_audio, audio) and torch.allclose(back_motion, motion, atol=1e-6)
    assert joined.fps == 25 and joined.prefix_frames == 0
    with pytest.raises(T2AVError, match=r"\(frames, 40\)"):
        pipeline.join_av(audio, torch.randn(8, 32))
    with pytest.raises(T2AVError, match="non-empty"):
        pipeline.mux(tmp_path / "x.mp4", torch.zeros(0, 8, 8, 3), None, None)


def test_frames_are_rendered_in_batches_and_clamped_only_when_the_renderer_overshoots():
    class Renderer:  # a MotionRenderer that returns slices of a fixed clip
        image_size = 2

        def __init__(self, frames):
            self.frames, self.calls = frames, []

        def render(self, face, motion, batch_size=8, progress=None):
            start = sum(self.calls)
            self.calls.append(motion.shape[0])
            return self.frames[start:start + motion.shape[0]]

    av = pipeline.join_av(torch.zeros(5, 32), torch.zeros(5, 40))
    face = pipeline.FaceCondition(state=None, motion=torch.zeros(40), image_size=2)
    good = torch.rand(5, 2, 2, 3)
    renderer = Renderer(good)
    assert torch.equal(pipeline.decode_video(renderer, face, av, batch_size=2), good)
    assert renderer.calls == [2, 2, 1], "the renderer never holds more than one batch of frames"
    wild = good * 3 - 1
    assert torch.equal(pipeline.decode_video(Renderer(wild), face, av), wild.clamp(0, 1))
    broken = good.clone()
    broken[3, 0, 0, 0] = float("nan")
    with pytest.raises(T2AVError, match="video decoding produced NaN or infinite pixels"):
        pipeline.decode_video(Renderer(broken), face, av, batch_size=2)


def test_nan_from_the_audio_decoder_stops_the_run_naming_the_stage():
    class Codec:  # an AudioCodec whose weights are damaged
        sample_rate = 24000

        def decode(self, latents, progress=None):
            wave = torch.zeros(latents.shape[0] * 960)
            wave[5] = float("nan")
            return wave

    av = pipeline.join_av(torch.zeros(4, 32), torch.zeros(4, 40))
    with pytest.raises(T2AVError, match="audio decoding produced NaN or infinite samples"):
        pipeline.decode_audio(Codec(), av)


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0, -25])
def test_mux_refuses_a_frame_rate_that_cannot_work(tmp_path, fps):
    with pytest.raises(T2AVError, match="fps must be a positive finite number"):
        pipeline.mux(tmp_path / "x.mp4", torch.zeros(2, 8, 8, 3), None, None, fps=fps)
    assert not list(tmp_path.iterdir())


def test_join_fits_streams_of_different_lengths_as_asked():
    audio, motion = torch.randn(10, 32), torch.randn(7, 40) * 0.1
    with pytest.raises(T2AVError, match="set length to 'shorter' or 'audio', or cut one with Trim AV Latent"):
        pipeline.join_av(audio, motion)
    shorter = pipeline.join_av(audio, motion, "shorter")
    assert shorter.audio.shape[0] == shorter.motion_norm.shape[0] == 7
    held = pipeline.join_av(audio, motion, "audio")
    raw = held.motion_raw()
    assert held.audio.shape[0] == raw.shape[0] == 10
    assert torch.allclose(raw[7:], motion[-1:].expand(3, -1), atol=1e-5), "the last pose is held"
    cut = pipeline.join_av(torch.randn(5, 32), motion, "audio")
    assert cut.motion_raw().shape[0] == 5


def test_trim_keeps_both_streams_aligned_and_shrinks_the_prefix():
    av = pipeline.join_av(torch.arange(50.0)[:, None].expand(50, 32), torch.zeros(50, 40))
    av.prefix_frames = 12
    part = pipeline.trim_av(av, 0.2, 1.0)  # frames 5 .. 24
    assert part.audio.shape[0] == part.motion_norm.shape[0] == 20 and part.audio[0, 0] == 5
    assert part.prefix_frames == 7 and part.seconds == 0.8
    assert pipeline.trim_av(av, 0.48).audio.shape[0] == 38  # to the end
    with pytest.raises(T2AVError, match="nothing left"):
        pipeline.trim_av(av, 1.5, 1.0)
    with pytest.raises(T2AVError, match="start_seconds must be"):
        pipeline.trim_av(av, float("nan"))


def test_a_short_voice_sample_is_accepted_with_a_warning(caplog):
    from t2av_core.demo.voice import SpectralVoiceEmbedder
    wave = torch.sin(torch.arange(8000) * 0.07) * 0.3  # 0.5 s at 16 kHz
    with caplog.at_level("WARNING"):
        voice = pipeline.encode_voice(SpectralVoiceEmbedder(), None, wave, 16000)
    assert voice.speaker.shape == (256,)
    assert "only 0.50 s long" in caplog.text and "3-10 s" in caplog.text
    caplog.clear()
    pipeline.encode_voice(SpectralVoiceEmbedder(), None, torch.sin(torch.arange(64000) * 0.07) * 0.3, 16000)
    assert "only" not in caplog.text
