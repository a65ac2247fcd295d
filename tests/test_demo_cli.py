"""The command line end to end with the bundled demo model: a real mp4, read back with PyAV."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from t2av_core.__main__ import main
from media_files import read_mp4
from t2av_core.demo.face import DemoFaceRenderer
from t2av_core.demo.metrics import lip_sync_correlation
from t2av_core.motion_stats import normalize_motion

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t2av_core", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def demo_mp4(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("cli")
    result = _run("generate", "--text", "The baker brings some fresh bread.", "--out", "tmp.mp4", cwd=folder)
    return folder / "tmp.mp4", result



def test_generate_writes_a_playable_talking_mp4(demo_mp4):
    path, result = demo_mp4
    assert result.returncode == 0, result.stderr
    assert "demo model" in result.stderr
    frames, fps, wave, rate = read_mp4(path)
    assert fps == 25
    seconds = wave.size / rate
    assert 0.8 < seconds < 10.0 and np.abs(wave).max() > 0.05                 # speech, not silence
    assert abs(frames.shape[0] - seconds * 25) <= 3
    # The mouth moves: read its opening back from the decoded pixels, frame by frame.
    renderer = DemoFaceRenderer(frames.shape[1])
    motion = normalize_motion(renderer.encode_motion(torch.from_numpy(frames).float() / 255))
    opening = motion[:, 0]
    assert float(opening.max() - opening.min()) > 1.0
    # ... and it moves with the sound that is in the file.
    r, _ = lip_sync_correlation(motion, torch.from_numpy(wave).float(), rate)
    assert r > 0.4


def test_bad_input_exits_2_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    code, err = run("generate", "--text", "   ", "--out", "x.mp4")
    assert code == 2 and "text is empty" in err
    code, err = run("generate", "--text", "Hi there.", "--voice", "nope.wav", "--out", "x.mp4")
    assert code == 2 and "nope.wav" in err
    code, err = run("generate", "--text", "Hi there.", "--models", "no_such_dir")
    assert code == 2 and "no_such_dir" in err
    partial = tmp_path / "weights"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"")
    code, err = run("generate", "--text", "Hi there.", "--models", str(partial))
    assert code == 2 and "lia-x.pt" in err
    code, err = run("generate", "--text", "Hi there.", "--out", "missing_folder/x.mp4")
    assert code == 2 and "missing_folder" in err
    code, err = run("generate", "--txet", "Hi")
    assert code == 2 and "--text" in err
    assert not list(tmp_path.glob("**/*.mp4"))


def test_the_command_line_streams_frames_to_the_file(tmp_path, monkeypatch, capsys):
    """decode -> render -> mux in batches: the whole clip never exists as one tensor (3.5 GB a minute at the
    demo's 256 px, 9.4 GB at 512 px)."""
    from t2av_core import pipeline

    def whole_clip(*args, **kwargs):
        raise AssertionError("the command line must not render the whole clip into one tensor")

    monkeypatch.setattr(pipeline, "decode_video", whole_clip)
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--text", "The baker brings some fresh bread.", "--max-seconds", "1"]) == 0
    frames, fps, wave, rate = read_mp4(tmp_path / "out.mp4")
    assert fps == 25 and abs(frames.shape[0] - wave.size / rate * 25) <= 1


def test_a_batch_file_gives_one_clip_per_line(tmp_path, monkeypatch, capsys):
    """--batch: every line is its own clip, all generated in one batch, the same as each line alone."""
    monkeypatch.chdir(tmp_path)
    lines = ["The baker brings some fresh bread.", "A small boy reads a new book at night."]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    assert main(["generate", "--batch", "lines.txt", "--out", "clip.mp4", "--seed", "4"]) == 0
    err = capsys.readouterr().err
    assert "2 clips in one batch" in err
    batched = [read_mp4(tmp_path / f"clip_{i}.mp4") for i in (1, 2)]
    assert batched[0][0].shape[0] != batched[1][0].shape[0] or not np.array_equal(batched[0][2], batched[1][2])
    assert main(["generate", "--text", lines[0], "--out", "alone.mp4", "--seed", "4"]) == 0
    alone = read_mp4(tmp_path / "alone.mp4")
    assert alone[0].shape == batched[0][0].shape  # line 1 uses the seed itself: the same clip as alone
    assert np.abs(alone[2] - batched[0][2]).max() < 0.05
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    assert main(["generate", "--batch", "empty.txt"]) == 2 and "holds no text" in capsys.readouterr().err
