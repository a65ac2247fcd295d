"""Every kind of bad input a user can hand the command line, run the way a user runs it.

Bad input ends with exit code 2, one plain message saying what to fix, no traceback, and nothing written (an
existing output is left as it was). Unusual but valid input (odd rates, channel counts, picture sizes, control
characters) keeps working and gives a playable mp4. Library-level checks of the same defects live beside their
code (test_media_limits, test_checkpoint_safety, test_core_generate, test_atomic_outputs, ...).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from comfy_stub.pack_harness import make_inputs, make_models_dir, FACE, VOICE
from media_files import solid_png, tone, wav_file
from t2av_core.__main__ import main

REPO = Path(__file__).resolve().parents[1]
SHORT = ("--max-seconds", "0.48")  # the demo stops by itself; a cap keeps every run a second or two


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """run(*args) -> (exit code, stderr) of `python -m t2av_core generate ...` in a fresh folder."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        code = main(["generate", *args])
        return code, capsys.readouterr().err

    return run


def _refused(result, *needles):
    code, err = result
    assert code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _no_outputs(folder: Path):
    assert not (folder / "out.mp4").exists() and not list(folder.glob(".*")), "nothing is written"


def _playable(path: Path) -> int:
    with av.open(str(path)) as container:
        assert container.streams.audio and container.streams.video
        return sum(1 for _ in container.decode(video=0))


# ---------------------------------------------------------------- text


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_text(cli, tmp_path, text):
    _refused(cli("--text", text), "text is empty")
    _no_outputs(tmp_path)


def test_text_longer_than_a_prompt_is_read_in_chunks(cli, tmp_path):
    code, err = cli("--text", "The baker brings some fresh bread. " * 12, "--max-seconds", "3")
    assert code == 0 and "chunk 1/" in err, err
    assert 0 < _playable(tmp_path / "out.mp4") <= 3 * 25 + 4


@pytest.mark.parametrize("args,message", [(("--chunk-seconds", "1"), "chunk_seconds must lie between 2 and 30"),
                                          (("--pause", "-1"), "pause_seconds"),
                                          (("--max-seconds", "-5"), "--max-seconds must be a positive")])
def test_long_form_settings_that_cannot_work(cli, tmp_path, args, message):
    _refused(cli("--text", "Hello there.", *args), message)
    _no_outputs(tmp_path)


def test_a_script_file_that_is_not_utf8_or_missing(cli, tmp_path):
    (tmp_path / "script.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    _refused(cli("--text-file", "script.txt"), "is not UTF-8 text")
    _refused(cli("--text-file", "missing.txt"), "--text-file not found")
    _refused(cli("--text-file", str(tmp_path)), "is not a file")


@pytest.mark.parametrize("text", ["Say <SPEECH_FRAME> and <|im_end|> aloud.", "tab\tbell\x07null\x00escape\x1b[0m."])
def test_special_token_strings_and_control_characters_are_plain_text(cli, tmp_path, text):
    code, err = cli("--text", text, *SHORT)
    assert code == 0, err
    assert _playable(tmp_path / "out.mp4") > 0


def test_text_that_is_not_utf8(tmp_path):
    # bytes a Latin-1 terminal passes: Python hands them over as lone surrogates
    run = subprocess.run([sys.executable, "-m", "t2av_core", "generate", "--text", b"caf\xe9 au lait"],
                         capture_output=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert run.returncode == 2 and b"not valid UTF-8" in run.stderr and b"Traceback" not in run.stderr
    _no_outputs(tmp_path)


# ---------------------------------------------------------------- voice recordings


def _float_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """32-bit float WAV: the one format that can carry NaN."""
    data = samples.astype("<f4").tobytes()
    fmt = (3).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little") + \
        (rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
    path.write_bytes(b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                     + fmt + b"data" + len(data).to_bytes(4, "little") + data)
    return path


def _bad_voice(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.wav"
    if kind == "silent":
        wav_file(path, np.zeros(16000), 16000)
    elif kind == "nan":
        samples = tone(16000, 1.0)
        samples[100:200] = np.nan
        _float_wav(path, samples, 16000)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        wav_file(path, tone(16000, 1.0), 16000)
        path.write_bytes(path.read_bytes()[:30])
    elif kind == "text":
        path.write_text("this is not a recording, just some words in a file called .wav\n" * 20)
    elif kind == "folder":
        path.mkdir()
    elif kind == "1 Hz":
        wav_file(path, tone(16000, 3.0), 1)
    return path


@pytest.mark.parametrize("kind,message", [
    ("silent", "silent"), ("nan", "NaN"), ("empty", "empty, damaged or not a media file"),
    ("truncated", "empty, damaged or not a media file"), ("text", "empty, damaged or not a media file"),
    ("folder", "is a folder"), ("missing", "file not found"), ("1 Hz", "Hz"),
])
def test_unusable_voice_recordings(cli, tmp_path, kind, message):
    path = tmp_path / "missing.wav" if kind == "missing" else _bad_voice(kind, tmp_path)
    _refused(cli("--text", "Hello there.", "--voice", str(path)), message)
    _no_outputs(tmp_path)


@pytest.mark.parametrize("rate,channels,seconds", [(8000, 1, 2.0), (96000, 1, 1.0), (44100, 6, 1.0),
                                                   (16000, 1, 0.1), (16000, 1, 600.0)])
def test_unusual_voice_recordings_work(cli, tmp_path, rate, channels, seconds):
    wave = np.stack([tone(rate, seconds, 150 + 40 * c) for c in range(channels)])
    wav_file(tmp_path / "voice.wav", wave, rate)
    code, err = cli("--text", "Hello there.", "--voice", "voice.wav", *SHORT)
    assert code == 0, err
    assert _playable(tmp_path / "out.mp4") > 0


# ---------------------------------------------------------------- face pictures


@pytest.mark.parametrize("kind,message", [("corrupt", "damaged"),
                                          ("empty", "empty, damaged or not a media file"),
                                          ("huge", "200-megapixel"), ("folder", "is a folder")])
def test_unusable_pictures(cli, tmp_path, kind, message):
    path = tmp_path / "face.png"
    if kind == "corrupt":
        solid_png(path, 64, 64, (200, 150, 120))
        path.write_bytes(path.read_bytes()[:40] + b"garbage" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge":
        solid_png(path, 16000, 16000, (200, 150, 120))  # 775 KB that would decode to 1 GB of pixels
    else:
        path.mkdir()
    _refused(cli("--text", "Hello there.", "--face", str(path)), message)
    _no_outputs(tmp_path)


def _picture(kind: str, path: Path) -> Path:
    if kind in ("1x1", "tall-thin"):
        solid_png(path, *((1, 1) if kind == "1x1" else (9, 1600)), (180, 140, 120))
        return path
    frames = [np.full((48, 40, 3), 60 * i, np.uint8) for i in range(3)]
    codec, pix_fmt = {"16-bit": ("png", "rgb48be"), "animated": ("gif", "rgb8")}[kind]
    with av.open(str(path), "w", format="gif" if kind == "animated" else "image2") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 40, 48, pix_fmt
        for frame in frames[: 3 if kind == "animated" else 1]:
            image = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)
            container.mux(stream.encode(image))
        container.mux(stream.encode(None))
    return path


def test_a_one_pixel_picture_is_no_face(cli, tmp_path):
    _refused(cli("--text", "Hello there.", "--face", str(_picture("1x1", tmp_path / "face.png"))), "no face was found")


@pytest.mark.parametrize("kind", ["tall-thin", "16-bit", "animated"])
def test_unusual_pictures_work(cli, tmp_path, kind):
    path = _picture(kind, tmp_path / ("face.gif" if kind == "animated" else "face.png"))
    # Plain-colour pictures hold no face to find: the box is given.
    code, err = cli("--text", "Hello there.", "--face", str(path), "--face-box", "0,0,8,8", *SHORT)
    assert code == 0, err
    assert _playable(tmp_path / "out.mp4") > 0


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("args,message", [
    (("--seed", str(2**64)), "seed must be a whole number from 0 to"), (("--seed", "-1"), "seed must be"),
    (("--seed", "1.5"), "invalid int value"), (("--max-seconds", "inf"), "--max-seconds must be a positive"),
    (("--max-seconds", "nan"), "--max-seconds"), (("--max-seconds", "0"), "--max-seconds"),
    (("--context-patches", "2"), "--context-patches applies to the released weights"),
])
def test_numbers_that_cannot_work(cli, tmp_path, args, message):
    code, err = cli("--text", "Hello there.", *args)
    assert code == 2 and message in err and "Traceback" not in err, err
    _no_outputs(tmp_path)


def test_seeds_use_every_bit(cli, tmp_path):
    clips = []
    for seed in (0, 2**32, 2**63):
        assert cli("--text", "Hello there.", "--seed", str(seed), "--out", f"{seed}.mp4", *SHORT)[0] == 0
        clips.append((tmp_path / f"{seed}.mp4").read_bytes())
    assert len(set(clips)) == 3, "seeds that differ only above bit 32 give different clips"


# ---------------------------------------------------------------- where the mp4 goes


def test_output_paths(cli, tmp_path, unwritable_folder):
    (tmp_path / "taken").mkdir()
    _refused(cli("--text", "Hi.", "--out", "taken"), "must be an .mp4")
    (tmp_path / "taken.mp4").mkdir()
    _refused(cli("--text", "Hi.", "--out", "taken.mp4"), "is a folder")
    _refused(cli("--text", "Hi.", "--out", "missing/out.mp4"), "does not exist")
    _refused(cli("--text", "Hi.", "--out", "out.webm"), "must be an .mp4")
    _refused(cli("--text", "Hi.", "--out", str(unwritable_folder / "out.mp4")), "cannot write the output")


def test_a_failed_run_keeps_the_previous_file(cli, tmp_path):
    assert cli("--text", "Hello there.", *SHORT)[0] == 0
    before = (tmp_path / "out.mp4").read_bytes()
    _refused(cli("--text", "Hello there.", "--voice", str(_bad_voice("silent", tmp_path))), "silent")
    assert (tmp_path / "out.mp4").read_bytes() == before


def test_ctrl_c_while_writing_keeps_the_previous_file(cli, tmp_path, monkeypatch):
    from t2av_core import pipeline
    assert cli("--text", "Hello there.", *SHORT)[0] == 0
    before = (tmp_path / "out.mp4").read_bytes()
    real = pipeline.render_frames

    def interrupted(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(pipeline, "render_frames", interrupted)
    code, err = cli("--text", "Hello there, this sentence takes a few batches of frames.")
    assert code == 130 and "cancelled" in err
    assert (tmp_path / "out.mp4").read_bytes() == before
    assert not list(tmp_path.glob(".*"))


# ---------------------------------------------------------------- the released-weights folder


@pytest.fixture
def released(tmp_path, parity_dir):
    """A folder with the four released files (tiny fixture models) + tokenizer, and a voice and a face."""
    folder = make_models_dir(tmp_path / "models", parity_dir) / "talker_t2av"
    for link in folder.rglob("*"):  # real copies: the tests below damage them
        if link.is_symlink():
            data = link.read_bytes()
            link.unlink()
            link.write_bytes(data)
    inputs = make_inputs(tmp_path / "inputs")
    return folder, ("--voice", str(inputs / VOICE), "--face", str(inputs / FACE), "--models", str(folder))


def test_released_folder_works(cli, tmp_path, released):
    _, args = released
    code, err = cli("--text", "Hello there.", *args, *SHORT)
    assert code == 0, err
    assert "context_patches = 1 (not recorded in the checkpoint: the released value)" in err
    assert _playable(tmp_path / "out.mp4") > 0


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _wrong_shape(path: Path) -> None:
    sd = load_file(str(path))
    sd["task_embedding.weight"] = sd["task_embedding.weight"][:, :64].contiguous()
    save_file(sd, str(path))


def _nan_weights(path: Path) -> None:
    sd = load_file(str(path))
    sd["speech_cfm.estimator.out_proj.weight"][:] = float("nan")
    save_file(sd, str(path))


def _malicious(path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return os.system, ("touch /tmp/t2av_pwned",)

    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": torch.zeros(1)}, "hook": Payload()}, f)


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / "lia-x.pt").unlink(), "missing: renderer (lia-x.pt"),
    (lambda f: _truncate(f / "model.safetensors"), "corrupt or truncated"),
    (lambda f: _truncate(f / "lia-x.pt"), "corrupt, truncated"),
    (lambda f: _swap(f / "lia-x.pt", f / "wavlm_large_finetune.pth"), "not a LIA-X checkpoint"),
    (lambda f: _wrong_shape(f / "model.safetensors"), "does not match the Talker-T2AV generator"),
    (lambda f: _nan_weights(f / "model.safetensors"), "joint sampling produced NaN or infinite speech latents"),
    (lambda f: _malicious(f / "whisperx-vae" / "model.ckpt"), "unsafe checkpoint"),
    (lambda f: (f / "config.json").write_text(json.dumps({"context_patches": 2, "hidden_size": 4096})),
     "config.json says hidden_size = 4096"),
])
def test_damaged_released_folder(cli, tmp_path, released, damage, message):
    folder, args = released
    damage(folder)
    _refused(cli("--text", "Hello there.", *args), message)
    _no_outputs(tmp_path)
    assert not Path("/tmp/t2av_pwned").exists()
