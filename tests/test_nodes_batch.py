"""One clip per line: Text Encode makes a batch of prompts, the Joint Sampler generates them together, and the
nodes after it run once per clip (ComfyUI's list outputs), down to one saved mp4 each."""

import sys
from pathlib import Path

import av
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import pack_harness as H  # noqa: E402

from core_helpers import ROLLOUT_TOL  # noqa: E402
from t2av_core import pipeline  # noqa: E402
from t2av_core.errors import T2AVError  # noqa: E402
from t2av_core.longform import chunk_seed  # noqa: E402

DEMO_TEMPLATE = H.REPO / "workflows" / "api" / "Talker-T2AV - try the demo (no download).json"
LINES = "Hi there.\n\n  Good morning to you, my friend.  \nBye."


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


@pytest.fixture(scope="module")
def parts(env):
    n, m = env.nodes, env.models
    audio = H.LoadAudio.execute(audio=H.VOICE).args[0]
    image = H.LoadImage.execute(image=H.FACE).args[0]
    return dict(model=m.model,
                voice=H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio=audio).args[0],
                face=H.run_node(n["TalkerT2AVFaceEncode"], video_model=m.video, image=image).args[0],
                **H.sampler_parts(n), max_seconds=0.64, prefix_seconds=0.0, temperature=0.3)


def encode(env, text, per_line=True):
    return H.run_node(env.nodes["TalkerT2AVTextEncode"], model=env.models.model, text=text,
                      one_clip_per_line=per_line).args


def test_each_non_empty_line_is_one_prompt(env):
    batch, tokens = encode(env, LINES)
    assert isinstance(batch, pipeline.TextBatch) and len(batch) == 3
    alone = [encode(env, line, per_line=False)[0] for line in ("Hi there.", "Good morning to you, my friend.", "Bye.")]
    for got, want in zip(batch.conditions, alone):
        assert torch.equal(got.prompt_ids, want.prompt_ids)  # lines are stripped, blank ones skipped
    assert tokens == max(int(c.prompt_ids.numel()) for c in alone)


def test_a_batch_of_lines_gives_one_clip_per_line_each_as_it_would_alone(env, parts):
    batch, _ = encode(env, LINES)
    clips, seconds = H.run_node(env.nodes["TalkerT2AVSampler"], conditioning=batch, seed=11, **parts).args
    assert len(clips) == len(seconds) == 3
    for index, (condition, clip, length) in enumerate(zip(batch.conditions, clips, seconds)):
        # line 1 gets the seed itself, so a one-line batch is exactly the single clip; the others derived seeds
        alone, = H.run_node(env.nodes["TalkerT2AVSampler"], conditioning=condition, seed=chunk_seed(11, index),
                            **parts).args[0]
        assert clip.audio.shape == alone.audio.shape and length == clip.audio.shape[0] / 25
        torch.testing.assert_close(clip.audio, alone.audio, **ROLLOUT_TOL)
        torch.testing.assert_close(clip.motion_norm, alone.motion_norm, **ROLLOUT_TOL)
    assert (clips[0].audio[:4] - clips[1].audio[:4]).abs().max() > 0.05  # different lines, different clips


def test_a_batch_cannot_share_a_given_stream(env, parts):
    batch, _ = encode(env, LINES)
    given = torch.zeros(8, pipeline.AUDIO_LATENT_DIM)
    with pytest.raises(T2AVError, match="one_clip_per_line"):
        H.run_node(env.nodes["TalkerT2AVSampler"], conditioning=batch, seed=1, given_audio=given, **parts)


def test_a_line_too_long_is_named():
    class Tokenizer:  # refuses the second line as the real tokenizer refuses an over-long text
        template_ids = 10

        def build_prompt(self, text):
            if text.startswith("long"):
                raise T2AVError("the text is 2000 tokens long; at most 987 fit")
            return type("Prompt", (), {"text": text, "prefix_ids": torch.arange(12)})()

    with pytest.raises(T2AVError, match=r"line 2 of the text: the text is 2000 tokens long"):
        pipeline.encode_lines(Tokenizer(), "short\nlong text\nshort again")
    with pytest.raises(T2AVError, match="holds no text"):
        pipeline.encode_lines(Tokenizer(), "\n  \n")


def test_the_demo_template_with_one_clip_per_line_saves_one_synchronised_mp4_per_line(env, one_torch_thread):
    prompt = H.load_api_workflow(DEMO_TEMPLATE)
    prompt["5"]["inputs"].update(text="Hello there.\nThe teacher reads a new book.", one_clip_per_line=True)
    prompt["11"]["inputs"]["max_seconds"] = 1.6
    done = H.run_workflow(prompt, env.nodes)
    clips = done["11"].args[0]
    assert len(clips) == 2 and len(done["13"].calls) == len(done["15"].calls) == 2  # decoders ran once per clip
    saved = H.saved_clips(done["15"].ui)
    assert len(saved) == 2 and len({info.path for info in saved}) == 2
    for info, clip in zip(saved, clips):
        assert info.frames == clip.audio.shape[0]
        with av.open(str(info.path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            frames = sum(1 for _ in container.decode(video))
            assert frames == clip.audio.shape[0] and float(video.average_rate) == 25
            assert round(float(audio.duration * audio.time_base) * 25) == frames
