"""Reading video frames and writing H.264 + AAC mp4 files with PyAV.

``write_mp4`` streams: each frame is converted and encoded on its own, and the audio is encoded alongside,
exactly ``sample_rate / fps`` samples per frame, so minutes of video never exist as one uint8 copy and the
audio track ends where the video does (padded with silence or trimmed; no drift). The file is written under a
temporary name and renamed when complete (``t2av_core.atomic``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import T2AVError
from ..interfaces import FRAME_RATE
from ._container import first_stream, open_input, upright_array
from .audio_io import AudioTrack, as_mono_array


def read_video_frames(
    path: str | Path, max_frames: int | None = None, fps: float | None = None
) -> tuple[torch.Tensor, float]:
    """Decode the first video track to (frames (T, H, W, 3) float32 in [0, 1], fps).

    With ``fps`` the frames are resampled in time (each output tick shows the latest frame shown at that
    moment: frames are repeated or dropped) and that fps is returned; otherwise the file's own average rate.
    ``max_frames`` stops decoding once that many frames are out. A rotation stored in the file (portrait
    phone clips) is applied, so H and W are as the clip is meant to be watched.
    """
    if max_frames is not None and max_frames < 1:
        raise T2AVError(f"max_frames must be at least 1, got {max_frames}")
    if fps is not None and fps <= 0:
        raise T2AVError(f"fps must be positive, got {fps}")
    frames: list[np.ndarray] = []
    with open_input(path, "video") as container:
        stream = first_stream(container, "video", path)
        source_fps = float(stream.average_rate or stream.guessed_rate or FRAME_RATE)
        size, first_time = {}, None
        for index, frame in enumerate(container.decode(stream)):
            size = size or {"width": frame.width, "height": frame.height}  # later frames follow the first's size
            image = upright_array(frame, "rgb24", **size)
            if fps is None:
                frames.append(image)
            else:  # repeat this frame for every output tick that falls while it is shown
                time = frame.time if frame.time is not None else index / source_fps
                first_time = time if first_time is None else first_time
                frames += [image] * _ticks_before(time - first_time + 1.0 / source_fps, fps, len(frames))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise T2AVError(f"{path} has a video track but no frame could be decoded")
    frames = frames[:max_frames]
    return torch.from_numpy(np.stack(frames)).float().div_(255.0), float(fps or source_fps)


def _ticks_before(end_time: float, fps: float, ticks_done: int) -> int:
    """How many output ticks k/fps with k >= ticks_done fall before ``end_time``."""
    return max(0, int(np.ceil(end_time * fps - 1e-6)) - ticks_done)


def write_mp4(
    path: str | Path,
    frames: torch.Tensor | np.ndarray | Iterable,
    audio: torch.Tensor | np.ndarray | None = None,
    sample_rate: int | None = None,
    fps: int | Fraction = FRAME_RATE,
    *,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Write H.264 (yuv420p) video at exactly ``fps`` and, optionally, mono AAC audio of the same duration.

    ``frames``: (T, H, W, 3) float in [0, 1] (clamped) or uint8, as a tensor/array or any iterable of
    (H, W, 3) frames (e.g. a generator, so the whole clip need never be in memory). Odd widths/heights are
    padded by one repeated edge pixel, as 4:2:0 chroma needs even sizes. ``audio`` (N,) at ``sample_rate``
    is cut or padded with silence to exactly T / fps seconds.
    """
    fps = Fraction(fps)
    if fps <= 0:
        raise T2AVError(f"fps must be positive, got {fps}")
    if audio is not None:
        audio = as_mono_array(audio)
        if sample_rate is None:
            raise T2AVError("write_mp4 got audio without its sample_rate")
        sample_rate = int(sample_rate)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "video") as partial:  # an existing file is replaced only by a complete one
        _write_mp4_file(partial, frames, audio, sample_rate, fps, crf, preset)


def _write_mp4_file(path: Path, frames, audio: np.ndarray | None, sample_rate: int | None, fps: Fraction,
                    crf: int, preset: str) -> None:
    count = 0
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video, track, first_shape = None, None, None
        for frame in frames:
            image = _to_uint8_frame(frame, count)
            if video is None:
                first_shape = image.shape
                video = _add_video_stream(container, image.shape, fps, crf, preset)
                track = AudioTrack(container, "aac", sample_rate) if audio is not None else None
            elif image.shape != first_shape:
                raise T2AVError(f"frame {count} is {image.shape[:2]} but the first frame was {first_shape[:2]}")
            out = av.VideoFrame.from_ndarray(_pad_to_even(image), format="rgb24")
            out.pts = count  # time base 1/fps: frame i starts at exactly i / fps
            container.mux(video.encode(out))
            if track is not None:  # the audio that plays during this frame, cut at exact sample positions
                start, end = (round(Fraction(i * sample_rate) / fps) for i in (count, count + 1))
                track.write(_audio_slice(audio, start, end))
            count += 1
        if video is None:
            raise T2AVError("write_mp4 got no frames: a video needs at least one frame")
        container.mux(video.encode(None))
        if track is not None:
            track.close()


def _add_video_stream(container, shape: tuple[int, ...], fps: Fraction, crf: int, preset: str):
    stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": preset})
    stream.height, stream.width = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = 1 / fps
    return stream


def _to_uint8_frame(frame, index: int) -> np.ndarray:
    """One (H, W, 3) frame as uint8; float input is read as 0..1 and clamped."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu()
        frame = frame.numpy() if frame.dtype == torch.uint8 else frame.float().numpy()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise T2AVError(f"frame {index} has shape {frame.shape}; video frames must be (H, W, 3) RGB")
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if not np.issubdtype(frame.dtype, np.floating):
        raise T2AVError(f"frame {index} has dtype {frame.dtype}; use float in [0, 1] or uint8")
    return (np.clip(np.nan_to_num(frame), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _pad_to_even(image: np.ndarray) -> np.ndarray:
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else image


def _audio_slice(audio: np.ndarray, start: int, end: int) -> np.ndarray:
    """audio[start:end], padded with silence past the end of the recording."""
    piece = audio[start:end]
    return np.pad(piece, (0, end - start - len(piece))) if len(piece) < end - start else piece
