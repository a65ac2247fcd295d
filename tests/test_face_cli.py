"""--face on a real-looking photo: the face is found, cropped, animated and pasted back at the photo's size."""

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from media_files import read_mp4
from t2av_core.demo.face import DemoFaceRenderer
from t2av_core.demo.metrics import lip_sync_correlation
from t2av_core.demo.portrait import drawn_face, face_box, portrait, texture
from t2av_core.motion_stats import normalize_motion

REPO = Path(__file__).resolve().parents[1]
TEXT = "The baker brings some fresh bread."


def write_png(path: Path, image: np.ndarray, pix_fmt: str = "rgb24") -> Path:
    """A PNG of ``image`` ((H, W, 3) uint8 RGB) stored as ``pix_fmt`` (rgb24, gray, rgba)."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], pix_fmt
        frame = av.VideoFrame.from_ndarray(image, format="rgba" if image.shape[2] == 4 else "rgb24")
        for packet in stream.encode(frame.reformat(format=pix_fmt)):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def run_cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """The command line in a fresh process -> (result, its peak resident memory in MiB)."""
    code = ("import resource, sys\nfrom t2av_core.__main__ import main\ncode = main(sys.argv[1:])\n"
            "print(f'PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
            "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, "generate", "--text", TEXT, *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    peak = re.search(r"PEAK_RSS_KB (\d+)", result.stderr)
    return result, int(peak.group(1)) // 1024 if peak else -1



def codec_roundtrip(picture: np.ndarray, folder: Path) -> np.ndarray:
    """The picture as H.264 gives it back (one frame written the same way): what "equal within codec error" means."""
    from t2av_core.media.video_io import write_mp4
    write_mp4(folder / "still.mp4", picture[None])
    with av.open(str(folder / "still.mp4")) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _square(stderr: str) -> tuple[int, int, int]:
    left, top, side = re.search(r"the (\d+)x\d+ square at \((-?\d+), (-?\d+)\)", stderr).group(2, 3, 1)
    return int(left), int(top), int(side)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("face_cli")
    left, top, side = 820, 120, 360  # the drawn face, off-centre on a textured 1280x720 picture
    picture = portrait(720, 1280, left, top, side, seed=3)
    write_png(folder / "photo.png", picture)
    result, _ = run_cli("--face", "photo.png", "--out", "out.mp4", cwd=folder)
    return folder, picture, (left, top, side), result


def test_face_photo_is_animated_and_pasted_back_at_its_own_size(photo_run):
    folder, picture, (left, top, side), result = photo_run
    assert result.returncode == 0, result.stderr
    frames, fps, wave, rate = read_mp4(folder / "out.mp4")
    assert frames.shape[1:] == (720, 1280, 3) and fps == 25
    assert abs(frames.shape[0] - wave.size / rate * 25) <= 3 and np.abs(wave).max() > 0.05  # speech under it

    # Well outside the face's square the output is the photo, up to H.264's rounding.
    outside = np.ones((720, 1280), dtype=bool)
    m = side // 3
    outside[max(0, top - m):top + side + m, max(0, left - m):left + side + m] = False
    error = np.abs(frames[:, outside].astype(np.int16) - picture[outside].astype(np.int16)).mean()
    codec_error = np.abs(codec_roundtrip(picture, folder)[outside].astype(np.int16)
                         - picture[outside].astype(np.int16)).mean()
    assert error < codec_error + 1.0, (error, codec_error)

    # The face's mouth, read back from the pasted pixels, opens and closes with the sound in the file.
    sq_left, sq_top, sq_side = _square(result.stderr)
    assert abs(sq_left + sq_side / 2 - (left + side / 2)) < side * 0.1  # the crop found the face
    face = torch.from_numpy(frames[:, sq_top:sq_top + sq_side, sq_left:sq_left + sq_side]).float() / 255
    motion = normalize_motion(DemoFaceRenderer(256).encode_motion(face))
    opening = motion[:, 0]
    assert float(opening.max() - opening.min()) > 1.0
    r, _ = lip_sync_correlation(motion, torch.from_numpy(wave).float(), rate)
    assert r > 0.4


def test_crop_only_keeps_the_512_pixel_face_video(photo_run, tmp_path):
    folder, *_ = photo_run
    result, _ = run_cli("--face", str(folder / "photo.png"), "--crop-only", "--out", "crop.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames, fps, _, _ = read_mp4(tmp_path / "crop.mp4")
    assert frames.shape[1] == frames.shape[2] and fps == 25
    assert frames.shape[1] == DemoFaceRenderer().image_size  # the renderer's own frames, not pasted back


def test_no_face_found_exits_2_with_how_to_give_a_box_and_writes_nothing(tmp_path):
    write_png(tmp_path / "wall.png", np.full((300, 400, 3), (40, 90, 160), dtype=np.uint8))
    result, _ = run_cli("--face", "wall.png", "--out", "x.mp4", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no face was found" in errors[0] and "--face-box" in errors[0]
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("bad", ["10,20,30", "a,b,c,d", "10,20,1,1"])
def test_bad_face_box_exits_2(tmp_path, bad):
    write_png(tmp_path / "p.png", portrait(200, 300, 80, 20, 150))
    result, _ = run_cli("--face", "p.png", "--face-box", bad, "--out", "x.mp4", cwd=tmp_path)
    assert result.returncode == 2 and "box" in result.stderr and not (tmp_path / "x.mp4").exists()


def test_face_box_without_face_exits_2(tmp_path):
    result, _ = run_cli("--face-box", "1,2,3,4", "--out", "x.mp4", cwd=tmp_path)
    assert result.returncode == 2 and "--face" in result.stderr


def test_greyscale_portrait_needs_a_box_and_then_keeps_its_size(tmp_path):
    # The built-in finder needs colour, so a grey picture asks for the box; with it the video keeps its size.
    picture = portrait(640, 360, 60, 200, 240)  # a phone-style portrait picture
    grey = np.repeat(picture.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    write_png(tmp_path / "grey.png", grey, "gray")
    result, _ = run_cli("--face", "grey.png", "--out", "grey.mp4", cwd=tmp_path)
    assert result.returncode == 2 and "--face-box" in result.stderr
    box = ",".join(f"{v:.0f}" for v in face_box(60, 200, 240))
    result, _ = run_cli("--face", "grey.png", "--face-box", box, "--max-seconds", "0.5", "--out", "grey.mp4",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames, *_ = read_mp4(tmp_path / "grey.mp4")
    assert frames.shape[1:3] == (640, 360)
    corner = frames[:, :100, 300:].astype(np.int16)
    assert np.abs(corner - grey[:100, 300:].astype(np.int16)).mean() < 3.0


LARGE_PHOTO_RUN = """
import resource, sys, torch
from t2av_core.face import paste_back
from t2av_core.face.photo import frame_photo
torch.set_num_threads(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
photo = frame_photo(sys.argv[1])
after_crop = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rendered = (torch.rand(8, 256, 256, 3) for _ in range(int(sys.argv[2]) // 8))  # the renderer's batches
count = sum(frame.shape[0] for frame in paste_back(rendered, photo.pixels, photo.crop, colour_match=True))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(photo.pixels.shape[0], photo.pixels.shape[1], count, (after_crop - before) // 1024, (peak - before) // 1024)
"""


@pytest.mark.slow
def test_a_6000x4000_rgba_photo_is_cropped_and_pasted_back_in_bounded_memory(tmp_path):
    big = np.full((4000, 6000, 4), 255, dtype=np.uint8)
    big[..., :3] = np.tile(texture(500, 500, seed=5), (8, 12, 1))  # tiled: quick to make at 24 megapixels
    big[600:2100, 3900:5400, :3] = drawn_face(1500)
    big[:400, :400, 3] = 0  # a transparent corner becomes white
    write_png(tmp_path / "big.png", big, "rgba")
    del big
    run = subprocess.run([sys.executable, "-c", LARGE_PHOTO_RUN, str(tmp_path / "big.png"), "200"],
                         capture_output=True, text=True, timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    height, width, count, crop_mib, peak_mib = (int(v) for v in run.stdout.split())
    assert (height, width, count) == (round(4000 * 4096 / 6000), 4096, 200)  # read at 4096 on the long side
    one_frame = height * width * 3 // 2**20  # 32 MiB as 8-bit
    assert crop_mib < 14 * one_frame  # reading and cropping: a few copies of the picture (float: 4 frames' worth)
    assert peak_mib < 16 * one_frame  # 200 frames pasted back, a few at a time (all of them: 200 frames' worth)

    # The command line writes it at that size (short clip: H.264 at 4096 pixels is slow on a CPU).
    result, _ = run_cli("--face", "big.png", "--max-seconds", "0.3", "--out", "big.mp4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "big.mp4")) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (4096, height + height % 2)  # odd sizes padded to even
        first = next(container.decode(video)).to_ndarray(format="rgb24")
    assert first[:200, :200].min() > 240  # white where the picture was transparent


def test_batch_clips_are_pasted_back_into_the_photo_too(photo_run, tmp_path):
    folder, picture, *_ = photo_run
    (tmp_path / "lines.txt").write_text("Good morning.\nSee you soon.\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "t2av_core", "generate", "--batch", "lines.txt",
                             "--face", str(folder / "photo.png"), "--out", "clip.mp4"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for name in ("clip_1.mp4", "clip_2.mp4"):
        frames, fps, wave, _ = read_mp4(tmp_path / name)
        assert frames.shape[1:] == picture.shape and fps == 25 and np.abs(wave).max() > 0.05
