"""Long form: a script of any length as one continuous clip, chunk by chunk (t2av_core.longform), on the demo."""

import math

import pytest
import torch

from t2av_core import pipeline
from t2av_core.demo.bundle import load_demo
from t2av_core.errors import GenerationCancelled, T2AVError
from t2av_core.longform import LongFormSettings, chunk_seed, plan_chunks

SENTENCES = ["The baker brings some fresh bread.", "A small boy reads a new book at night.",
             "His mother finds a long letter in the morning.", "Listen, the cat watches an apple on the table.",
             "Now, a tall woman paints the green box at the park.", "The pilot holds the quiet garden."]
SCRIPT = " ".join(SENTENCES)
SHORT = LongFormSettings(chunk_seconds=6.0)  # about 84 characters: this script becomes 5 chunks
CHUNKS = 5


@pytest.fixture(scope="module")
def demo():
    bundle = load_demo()
    return bundle, pipeline.default_voice(bundle.speaker_encoder), pipeline.encode_face(bundle.renderer)


def run(demo, text=SCRIPT, long=SHORT, seed=5, **kwargs):
    bundle, voice, face = demo
    return pipeline.sample_long(bundle.talker, bundle.tokenizer, text, voice, face, pipeline.SamplerParts(), seed,
                                long, **kwargs)


def test_the_script_is_cut_at_sentence_ends_within_the_chunk_length():
    chunks = plan_chunks(SCRIPT, SHORT)
    assert len(chunks) == CHUNKS and " ".join(chunks) == SCRIPT
    assert all(len(c) <= SHORT.chunk_chars and c.endswith(".") for c in chunks)
    long_sentence = "one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, fourteen."
    assert all(len(c) <= 40 for c in plan_chunks(long_sentence, SHORT, max_chars=40))  # then at clauses


def test_chunks_join_frame_exactly_into_one_clip(demo):
    av, chunks = run(demo)
    assert len(chunks) == CHUNKS and all(c.stop_reason == "stop" for c in chunks)
    # every chunk's own frames, one after the other: nothing duplicated, nothing missing
    assert [c.start_frame for c in chunks] == [sum(c.frames for c in chunks[:i]) for i in range(CHUNKS)]
    assert av.audio.shape[0] == av.motion_norm.shape[0] == sum(c.frames for c in chunks)
    assert torch.isfinite(av.audio).all() and av.stop_reason == "stop"
    # the head moves on across a join as it does within a chunk, not with a jump back to the start pose
    motion = av.motion_norm
    steps = (motion[1:] - motion[:-1]).norm(dim=1)
    for chunk in chunks[1:]:
        assert steps[chunk.start_frame - 1] < 4 * steps.median() + 1e-3


def test_one_seed_one_clip(demo):
    a, _ = run(demo, seed=11)
    b, _ = run(demo, seed=11)
    c, _ = run(demo, seed=12)
    assert torch.equal(a.audio, b.audio) and torch.equal(a.motion_norm, b.motion_norm)
    assert a.audio.shape != c.audio.shape or not torch.equal(a.audio, c.audio)
    assert chunk_seed(11, 0) == 11 and len({chunk_seed(11, i) for i in range(CHUNKS)}) == CHUNKS


def test_a_one_chunk_script_is_a_single_generation(demo):
    bundle, voice, face = demo
    text = SENTENCES[0]
    long_av, chunks = run(demo, text=text, long=LongFormSettings(), seed=3)
    single = pipeline.sample_av(bundle.talker, pipeline.encode_text(bundle.tokenizer, text), voice, face,
                                pipeline.SamplerParts(), seed=3)
    assert len(chunks) == 1 and torch.equal(long_av.audio, single.audio)


def test_one_progress_bar_over_all_chunks(demo):
    seen, starts = [], []
    run(demo, progress=lambda done, total: seen.append((done, total)),
        on_chunk=lambda i, n, text: starts.append((i, n, text)))
    totals = {total for _, total in seen}
    assert len(totals) == 1, "the total is known up front"
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:])) and seen[-1][0] == seen[-1][1]
    assert [(i, n) for i, n, _ in starts] == [(i, CHUNKS) for i in range(CHUNKS)]


def test_cancel_stops_the_whole_script(demo):
    def cancel(done, total):
        if done > total // 2:
            raise GenerationCancelled("stop")

    with pytest.raises(GenerationCancelled):
        run(demo, progress=cancel)


def test_pauses_come_from_the_codec_and_the_cap_is_kept(demo):
    bundle = demo[0]
    paused, chunks = run(demo, long=LongFormSettings(chunk_seconds=6.0, pause_seconds=0.4),
                         audio_codec=bundle.audio_codec)
    plain, _ = run(demo)
    assert paused.audio.shape[0] == plain.audio.shape[0] + (CHUNKS - 1) * 10  # a 0.4 s pause at each join
    gap = paused.audio[chunks[1].start_frame - 10: chunks[1].start_frame]
    assert torch.allclose(gap, gap[:1].expand_as(gap)), "a pause is the codec's latent of silence"
    with pytest.raises(T2AVError, match="pause between chunks needs the audio codec"):
        run(demo, long=LongFormSettings(chunk_seconds=6.0, pause_seconds=0.4))
    capped, capped_chunks = run(demo, long=LongFormSettings(chunk_seconds=6.0, max_seconds=4.0))
    assert capped.seconds <= 4.0 + 0.16 and len(capped_chunks) < CHUNKS and capped.stop_reason == "budget"


@pytest.mark.parametrize("bad,message", [(dict(chunk_seconds=1.0), "between 2 and 30"),
                                         (dict(chunk_seconds=45.0), "between 2 and 30"),
                                         (dict(pause_seconds=-1.0), "pause_seconds"),
                                         (dict(max_seconds=math.inf), "max_seconds")])
def test_settings_that_cannot_work_are_refused(bad, message):
    with pytest.raises(T2AVError, match=message):
        LongFormSettings(**bad)


def test_the_command_line_reads_a_script_file_as_one_continuous_clip(tmp_path, monkeypatch, capsys):
    import av
    import numpy as np

    from t2av_core.__main__ import main
    monkeypatch.chdir(tmp_path)
    script = " ".join(SENTENCES * 2)
    (tmp_path / "script.txt").write_text(script, encoding="utf-8")
    code = main(["generate", "--text-file", "script.txt", "--chunk-seconds", "6", "--pause", "0.2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "chunk 1/" in err and "chunk 2/" in err
    with av.open(str(tmp_path / "out.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.average_rate) == 25
        frames = sum(1 for _ in container.decode(video))
        audio_seconds = float(audio.duration * audio.time_base)
    with av.open(str(tmp_path / "out.mp4")) as container:
        rate = container.streams.audio[0].rate
        wave = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)])
    assert abs(audio_seconds - frames / 25) <= 1024 / rate, "audio as long as the video, within one AAC frame"
    assert len(script) / 35 < frames / 25 < len(script) / 12, "about as long as the text takes to say"
    # no silent gap longer than the pause plus an ordinary pause between sentences (0.4 s)
    hop = rate // 25
    level = 20 * np.log10(np.sqrt((wave[: len(wave) // hop * hop].reshape(-1, hop) ** 2).mean(axis=1)) + 1e-9)
    longest, run = 0, 0
    for quiet in level < level.max() - 40:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    assert longest <= round(0.2 * 25) + 10, f"a silent gap of {longest / 25:.2f} s"


def test_cancelling_the_command_line_leaves_no_file(tmp_path, monkeypatch, capsys):
    from t2av_core.__main__ import main
    from t2av_core import longform
    monkeypatch.chdir(tmp_path)
    real = longform.generate_av
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C during the second chunk
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(longform, "generate_av", interrupted)
    assert main(["generate", "--text", SCRIPT, "--chunk-seconds", "6"]) == 130
    assert "cancelled" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
