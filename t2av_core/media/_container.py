"""Opening media files with PyAV and turning its failures into messages a user can act on."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import T2AVError


@contextmanager
def open_input(path: str | Path, what: str, options: dict[str, str] | None = None
               ) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; ``what`` ("audio", "video", "image") goes into the error messages.
    ``options`` go to FFmpeg's demuxer and decoders (e.g. ``max_pixels``), also while it probes the file."""
    path = Path(path)
    if path.is_dir():
        raise T2AVError(f"{path} is a folder, but a {what} file is needed: give the path of the file itself")
    if not path.is_file():
        raise T2AVError(f"{what} file not found: {path}")
    try:
        container = av.open(str(path), options=options or {})
    except av.error.FFmpegError as error:
        raise T2AVError(f"cannot read {path} as {what}: it is empty, damaged or not a media file ({error})") from error
    try:
        yield container
    except av.error.FFmpegError as error:  # damaged data found while decoding
        raise T2AVError(f"{path} could not be decoded as {what}: the file is damaged or truncated; export it "
                        f"again or use another file ({error})") from error
    finally:
        container.close()


def first_stream(container: av.container.InputContainer, kind: str, path: str | Path):
    """The first ``kind`` ("audio" / "video") stream, or a clear error when the file has none."""
    streams = getattr(container.streams, kind)
    if not streams:
        found = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise T2AVError(f"{path} has no {kind} track (it contains: {found})")
    return streams[0]


def upright_array(frame: av.VideoFrame, format: str, interpolation: str | None = None, **size: int) -> np.ndarray:
    """The frame as an (H, W, C) array, turned the way the file asks it to be shown (phone videos store
    portrait clips sideways plus a rotation); ``size`` rescales (with ``interpolation``, e.g. "AREA") before
    turning."""
    image = frame.to_ndarray(format=format, interpolation=interpolation, **size)
    quarter_turns = round(frame.rotation / 90) % 4  # counterclockwise, like np.rot90
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image
