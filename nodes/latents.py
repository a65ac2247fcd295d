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
            search_aliases=["separate audio and motion"],
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
            search_aliases=["merge audio and motion", "combine latents"],
            description="Joins audio and motion latents into one AV latent (frame-aligned at 25 fps).",
            inputs=[AudioLatent.Input("audio_latent"), Motion.Input("motion"),
                    io.Combo.Input("length", options=list(pipeline.JOIN_LENGTHS), default="equal", optional=True,
                                   tooltip="When the two are not equally long: 'equal' stops with a message, "
                                           "'shorter' cuts both to the shorter one, 'audio' keeps the speech's "
                                           "length and cuts the motion or holds its last pose.")],
            outputs=[AVLatent.Output(display_name="av_latent")])

    @classmethod
    def execute(cls, audio_latent, motion, length="equal") -> io.NodeOutput:
        return io.NodeOutput(pipeline.join_av(audio_latent, motion, length))  # join_av checks both streams


class TalkerT2AVTrim(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVTrim", display_name="Talker-T2AV Trim AV Latent", category=f"{CATEGORY}/latent",
            search_aliases=["cut", "crop clip", "trim video", "shorten"],
            description="Keeps the part of an AV latent between two times (both streams together, cut at 25 fps "
                        "frames), e.g. to drop the reference prefix or a tail before decoding or joining.",
            inputs=[AVLatent.Input("av_latent"),
                    io.Float.Input("start_seconds", default=0.0, min=0.0, max=3600.0, step=0.04,
                                   tooltip="Where the kept part starts (rounded to a 0.04 s frame)."),
                    io.Float.Input("end_seconds", default=0.0, min=0.0, max=3600.0, step=0.04,
                                   tooltip="Where it ends; 0 keeps everything to the end.")],
            outputs=[AVLatent.Output(display_name="av_latent"),
                     io.Float.Output(display_name="seconds", tooltip="Length of the kept part.")])

    @classmethod
    def execute(cls, av_latent, start_seconds, end_seconds) -> io.NodeOutput:
        trimmed = pipeline.trim_av(av_latent, start_seconds, end_seconds or None)
        return io.NodeOutput(trimmed, trimmed.seconds)


class TalkerT2AVAudioDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVAudioDecode", display_name="Talker-T2AV Audio Decode", category=f"{CATEGORY}/decode",
            search_aliases=["speech decode", "vae decode audio", "whisperx"],
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
            search_aliases=["render face", "lia-x render", "talking head frames"],
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


NODES = [TalkerT2AVSplit, TalkerT2AVJoin, TalkerT2AVTrim, TalkerT2AVAudioDecode, TalkerT2AVVideoDecode]
