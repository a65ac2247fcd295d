"""Render and Save: frames rendered batch by batch straight into the mp4, so memory does not grow with the clip.

The modular chain (Video Decode -> Paste Back -> Combine Video -> Save Video) hands whole IMAGE batches between
nodes, which ComfyUI keeps in memory: 9.4 GB a minute at 512x512, 37 GB a minute at 1080p. This node does the
same work as that chain in one pass for long scripts and big pictures.
"""

from __future__ import annotations

from t2av_core import face as face_crop_lib
from t2av_core import pipeline
from t2av_core.errors import T2AVError
from t2av_core.media.audio_io import audio_from_comfy

from . import host
from .host import io
from .types import CATEGORY, AVLatent, Face, FaceCropInfo, VideoModel
from .video import save_mp4


class TalkerT2AVRenderSave(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVRenderSave", display_name="Talker-T2AV Render and Save (streamed)",
            category=f"{CATEGORY}/video",
            search_aliases=["save long video", "stream to mp4", "render to file", "long video", "low memory save"],
            description="Renders the face batch by batch and writes each batch straight into an H.264/AAC mp4 "
                        "with the speech, pasting it into your picture when Face Crop's face_crop and the picture "
                        "are connected. Memory stays the same for a clip of any length (the Video Decode -> "
                        "Paste Back -> Combine Video -> Save Video chain holds every frame: 37 GB a minute at "
                        "1080p). Shows the clip in the synchronized player.",
            inputs=[VideoModel.Input("video_model"), Face.Input("face"), AVLatent.Input("av_latent"),
                    io.Audio.Input("audio", optional=True,
                                   tooltip="Speech to put under the frames, e.g. from Talker-T2AV Audio Decode."),
                    FaceCropInfo.Input("face_crop", optional=True,
                                       tooltip="From Face Crop: paste each frame back into the picture (connect "
                                               "the picture as source too). Leave empty for the 512x512 frames."),
                    io.Image.Input("source", optional=True,
                                   tooltip="The photo or video frames that went into Face Crop."),
                    io.Float.Input("feather", default=face_crop_lib.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                                   optional=True, advanced=True, tooltip="Paste-back: width of the soft edge, as a fraction of the face square."),
                    io.Boolean.Input("colour_match", default=False, optional=True, advanced=True,
                                     tooltip="Paste-back: give the rendered face the colours of the original."),
                    io.Int.Input("batch_size", default=8, min=1, max=256,
                                 tooltip="Frames rendered at once; lower it if memory runs out."),
                    io.String.Input("filename_prefix", default="talker_t2av/clip",
                                    tooltip="Sub-folder and file name start inside ComfyUI's output folder.")],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved mp4, read from disk when used.")],
            is_output_node=True)

    @classmethod
    def execute(cls, video_model, face, av_latent, filename_prefix, batch_size=8, audio=None, face_crop=None,
                source=None, feather=face_crop_lib.DEFAULT_FEATHER, colour_match=False) -> io.NodeOutput:
        if (face_crop is None) != (source is None):
            raise T2AVError("paste-back needs both face_crop (from Face Crop) and source (the picture that went "
                            "into it); connect both, or neither for the renderer's own square frames")
        wave, rate = audio_from_comfy(audio) if audio is not None else (None, 0)
        count = int(av_latent.motion_norm.shape[0])
        frames = pipeline.render_frames(host.load_model(video_model), face, av_latent, batch_size,
                                        progress=host.progress(count))  # Cancel stops here; no file is left
        if face_crop is not None:
            frames = face_crop_lib.paste_back(frames, source, face_crop, feather, colour_match)
        path, ui = save_mp4(filename_prefix, frames, count, wave, rate)  # reported as Save Video reports it
        return io.NodeOutput(host.video_from_file(str(path)), ui=ui)


NODES = [TalkerT2AVRenderSave]
