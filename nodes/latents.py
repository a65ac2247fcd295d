"""Editing and decoding the joint latents: split/join the two streams, audio and video decoders."""

from __future__ import annotations

from t2av_core import pipeline
from t2av_core.media.audio_io import audio_to_comfy

from . import host
from .host import io
from .types import CATEGORY, AudioLatent, AudioVAE, AVLatent, Face, Motion, VideoModel


class TalkerT2AVSplit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSplit", display_name="Talker-T2AV Split AV Latent", category=f"{CATEGORY}/latent",
            description="Separates the frame-aligned audio and motion latents (25 fps) so each can be edited or swapped.",
            inputs=[AVLatent.Input("av_latent")],
            outputs=[AudioLatent.Output(display_name="audio_latent"), Motion.Output(display_name="motion")])

    @classmethod
    def execute(cls, av_latent) -> io.NodeOutput:
        audio, motion = pipeline.av_streams(av_latent)
        return io.NodeOutput(audio, motion)


class TalkerT2AVJoin(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVJoin", display_name="Talker-T2AV Join AV Latent", category=f"{CATEGORY}/latent",
            description="Joins audio and motion latents of the same length into one AV latent.",
            inputs=[AudioLatent.Input("audio_latent"), Motion.Input("motion")],
            outputs=[AVLatent.Output(display_name="av_latent")])

    @classmethod
    def execute(cls, audio_latent, motion) -> io.NodeOutput:
        return io.NodeOutput(pipeline.join_av(audio_latent, motion))  # join_av checks both streams


class TalkerT2AVAudioDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVAudioDecode", display_name="Talker-T2AV Audio Decode", category=f"{CATEGORY}/decode",
            description="AV latent -> speech (mono, 24 kHz), exactly as long as the decoded video.",
            inputs=[AudioVAE.Input("audio_vae"), AVLatent.Input("av_latent")],
            outputs=[io.Audio.Output(display_name="audio")])

    @classmethod
    def execute(cls, audio_vae, av_latent) -> io.NodeOutput:
        wave, rate = pipeline.decode_audio(host.load_model(audio_vae), av_latent,
                                           progress=host.progress(av_latent.audio.shape[0]))
        return io.NodeOutput(audio_to_comfy(wave, rate))


class TalkerT2AVVideoDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVVideoDecode", display_name="Talker-T2AV Video Decode", category=f"{CATEGORY}/decode",
            description="AV latent + face -> 512x512 frames at 25 fps, rendered in batches. The fps output plugs into "
                        "core Create Video or Video Combine.",
            inputs=[VideoModel.Input("video_model"), Face.Input("face"), AVLatent.Input("av_latent"),
                    io.Int.Input("batch_size", default=8, min=1, max=256,
                                 tooltip="Frames rendered at once; lower it if memory runs out.")],
            outputs=[io.Image.Output(display_name="images"),
                     io.Float.Output(display_name="fps"),
                     io.Int.Output(display_name="frame_count")])

    @classmethod
    def execute(cls, video_model, face, av_latent, batch_size) -> io.NodeOutput:
        frames = pipeline.decode_video(host.load_model(video_model), face, av_latent, batch_size,
                                       progress=host.progress(av_latent.motion_norm.shape[0]))
        return io.NodeOutput(frames.to(host.intermediate_device()), float(pipeline.FRAME_RATE), int(frames.shape[0]))


NODES = [TalkerT2AVSplit, TalkerT2AVJoin, TalkerT2AVAudioDecode, TalkerT2AVVideoDecode]
