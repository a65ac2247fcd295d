"""Output files appear only complete: a failed, cancelled or concurrent write never leaves a broken file."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from t2av_core import atomic
from t2av_core.errors import T2AVError
from t2av_core.media.video_io import write_mp4

REPO = Path(__file__).resolve().parents[1]


def _frames(count, value=0.5, fail_at=None, error=RuntimeError):
    for i in range(count):
        if i == fail_at:
            raise error("stopped while writing")
        yield np.full((16, 16, 3), value, np.float32)


def _duration_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_or_cancelled_write_keeps_the_previous_file(tmp_path, error):
    out = tmp_path / "clip.mp4"
    write_mp4(out, _frames(10))
    before = out.read_bytes()
    with pytest.raises(error):
        write_mp4(out, _frames(30, 0.2, fail_at=20, error=error))
    assert out.read_bytes() == before and _duration_frames(out) == 10
    assert _leftovers(tmp_path) == [], "the temporary file is removed"


def test_a_complete_write_replaces_the_file_with_normal_permissions(tmp_path):
    out = tmp_path / "clip.mp4"
    write_mp4(out, _frames(10))
    write_mp4(out, _frames(7))
    assert _duration_frames(out) == 7 and _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "clip.mp4"
    write_mp4(out, _frames(4))
    before = out.read_bytes()

    def full_disk(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)  # the last step of every write
    with pytest.raises(T2AVError, match="the disk is full.*unchanged"):
        write_mp4(out, _frames(4, 0.9))
    assert out.read_bytes() == before and _leftovers(tmp_path) == []


def test_destination_checks(tmp_path, unwritable_folder):
    with pytest.raises(T2AVError, match="is a folder"):
        atomic.check_destination(tmp_path)
    with pytest.raises(T2AVError, match="does not exist"):
        atomic.check_destination(tmp_path / "missing" / "clip.mp4")
    with pytest.raises(T2AVError, match="cannot write"):
        atomic.check_destination(unwritable_folder / "clip.mp4")


WRITER = """
import sys, numpy as np
from t2av_core.media.video_io import write_mp4
count, value = int(sys.argv[2]), float(sys.argv[3])
write_mp4(sys.argv[1], (np.full((64, 64, 3), value, np.float32) for _ in range(count)))
"""


def test_two_writers_of_one_path_leave_one_whole_file(tmp_path):
    out = tmp_path / "clip.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(count), str(value)], env=env)
               for count, value in ((60, 0.1), (45, 0.9))]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert _duration_frames(out) in (60, 45), "one writer's complete file, not a mix"
    assert _leftovers(tmp_path) == []
