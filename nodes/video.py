"""Putting frames and speech together: a muxer to core VIDEO and a save node with a synchronized preview."""

from __future__ import annotations

import os

import torch

from t2av_core import pipeline
from t2av_core.errors import T2AVError

from . import host
from .host import io
from .types import CATEGORY


class TalkerT2AVMux(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVMux", display_name="Talker-T2AV Combine Video", category=f"{CATEGORY}/video",
            search_aliases=["create video", "images and audio to video", "video combine"],
            description="IMAGE frames + AUDIO + fps -> core VIDEO (works with core Save Video too).",
            inputs=[io.Image.Input("images", tooltip="Frames, e.g. from Talker-T2AV Video Decode."),
                    io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.01,
                                   tooltip="Talker-T2AV renders at 25 fps."),
                    io.Audio.Input("audio", optional=True,
                                   tooltip="Speech to put under the frames (cut or padded to their length on save).")],
            outputs=[io.Video.Output(display_name="video")])

    @classmethod
    def execute(cls, images, fps, audio=None) -> io.NodeOutput:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
            raise T2AVError("images must be a non-empty IMAGE batch (frames, height, width, 3)")
        return io.NodeOutput(host.make_video(images, audio, fps))


class TalkerT2AVSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSaveVideo", display_name="Talker-T2AV Save Video", category=f"{CATEGORY}/video",
            search_aliases=["export mp4", "save mp4", "preview video"],
            description="Writes the VIDEO as an H.264/AAC mp4 to the output folder and shows it with a synchronized "
                        "audio-video player and its duration.",
            inputs=[io.Video.Input("video"),
                    io.String.Input("filename_prefix", default="talker_t2av/clip",
                                    tooltip="Sub-folder and file name start inside ComfyUI's output folder.")],
            outputs=[],
            is_output_node=True)

    @classmethod
    def execute(cls, video, filename_prefix) -> io.NodeOutput:
        frames, audio, fps = host.video_components(video)
        wave, rate = None, 0
        if audio is not None:  # (channels, samples); mux mixes it down and cuts or pads it to the frames
            wave, rate = audio["waveform"][0].float().cpu(), int(audio["sample_rate"])
        _, ui = save_mp4(filename_prefix, frames.float().cpu(), int(frames.shape[0]), wave, rate, fps)
        return io.NodeOutput(ui=ui)


def save_mp4(filename_prefix: str, frames, frame_count: int, wave, rate: int, fps: float = pipeline.FRAME_RATE):
    """Write ``frames`` (a batch, or batches as they come) and the speech as the next numbered mp4 for
    ``filename_prefix`` in the output folder; returns (its path, the node's UI message).

    The file is reported as core Save Video does ("images" + "animated"), so it is listed in the Assets panel and
    collected by API workers. The pack's synced player, which replaces the core preview, reads the file from
    "images" and the clip's figures from its own key: plain values, not a second file entry (ComfyUI counts
    every dict in the lists of a node's output as a result, so a dict here would list the mp4 twice)."""
    folder, filename, subfolder = host.save_path(filename_prefix)
    path = pipeline.mux(os.path.join(folder, filename), frames, wave, rate, fps)
    ui = host.saved_video_ui(filename, subfolder)
    ui["talker_t2av"] = [frame_count, float(fps), round(frame_count / fps, 3), wave is not None]
    return path, ui


NODES = [TalkerT2AVMux, TalkerT2AVSaveVideo]
