"""Media I/O with PyAV: speech audio in and out, video frames in, H.264 + AAC mp4 out, still images in."""

from .audio_io import (
    audio_from_comfy,
    audio_to_comfy,
    check_audio_usable,
    read_audio,
    write_audio,
)
from .image_io import read_image
from .video_io import read_video_frames, write_mp4

__all__ = [
    "audio_from_comfy",
    "audio_to_comfy",
    "check_audio_usable",
    "read_audio",
    "read_image",
    "read_video_frames",
    "write_audio",
    "write_mp4",
]
