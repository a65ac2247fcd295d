"""Encoder nodes: text, voice, face, reference motion and given audio, each a call into t2av_core.pipeline."""

from __future__ import annotations

from t2av_core import pipeline
from t2av_core.errors import T2AVError
from t2av_core.media.audio_io import audio_from_comfy

from . import host
from .host import io
from .types import (CATEGORY, AudioLatent, AudioVAE, Conditioning, Face, Motion, SpeakerModel, TalkerModel,
                    VideoModel, Voice)


class TalkerT2AVTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVTextEncode", display_name="Talker-T2AV Text Encode", category=f"{CATEGORY}/conditioning",
            search_aliases=["script", "prompt", "what to say", "speech text", "tts text"],
            description="Turns the words to speak into the prompt the generator reads (Qwen3 chat layout). With "
                        "one_clip_per_line on, each line is its own clip and the Joint Sampler makes them all in "
                        "one batch.",
            inputs=[TalkerModel.Input("model"),
                    io.String.Input("text", multiline=True, default="Hello! It is nice to meet you.",
                                    tooltip="What the person says. Any language the Qwen3 tokenizer knows."),
                    io.Boolean.Input("one_clip_per_line", default=False, optional=True, advanced=True,
                                     tooltip="Each non-empty line becomes its own clip, all generated together in "
                                             "one batch by the Joint Sampler (faster per clip than one by one, "
                                             "above all on a GPU); every node after it then runs once per clip.")],
            outputs=[Conditioning.Output(display_name="conditioning"),
                     io.Int.Output(display_name="prompt_tokens",
                                   tooltip="Length of the prompt in tokens (the longest, with one clip per line).")])

    @classmethod
    def validate_inputs(cls, text=None, one_clip_per_line=None):  # ComfyUI reports the message on each listed input
        if isinstance(text, str) and not text.strip():
            return "the text is empty: type what the speaker should say"
        return True

    @classmethod
    def execute(cls, model, text, one_clip_per_line=False) -> io.NodeOutput:
        if one_clip_per_line:
            batch = pipeline.encode_lines(model.tokenizer, text)
            return io.NodeOutput(batch, max(int(c.prompt_ids.numel()) for c in batch.conditions))
        condition = pipeline.encode_text(model.tokenizer, text)
        return io.NodeOutput(condition, int(condition.prompt_ids.numel()))


class TalkerT2AVVoiceEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVVoiceEncode", display_name="Talker-T2AV Voice Reference", category=f"{CATEGORY}/conditioning",
            search_aliases=["voice clone", "speaker embedding", "reference voice"],
            description="A recording of the voice to clone (at most 30 s are used) -> speaker embedding. With the audio "
                        "VAE connected it also keeps the clip's audio latents, which a continuation prefix needs. "
                        "Without audio the bundled demo's default voice is used (the released encoder needs audio).",
            inputs=[SpeakerModel.Input("speaker_encoder"),
                    io.Audio.Input("audio", optional=True,
                                   tooltip="Reference speech; stereo is averaged, any sample rate. Leave empty with the "
                                           "bundled demo to use its default voice."),
                    AudioVAE.Input("audio_vae", optional=True,
                                   tooltip="Connect to keep the reference audio latents (needed when prefix_seconds > 0).")],
            outputs=[Voice.Output(display_name="voice")])

    @classmethod
    def execute(cls, speaker_encoder, audio=None, audio_vae=None) -> io.NodeOutput:
        wave, rate = audio_from_comfy(audio) if audio is not None else (None, None)
        codec = host.load_model(audio_vae) if audio_vae is not None else None
        encoder = host.load_model(speaker_encoder)
        return io.NodeOutput(pipeline.encode_voice(encoder, codec, wave, rate))


class TalkerT2AVFaceEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVFaceEncode", display_name="Talker-T2AV Face Reference", category=f"{CATEGORY}/conditioning",
            search_aliases=["portrait", "reference face", "face image", "avatar"],
            description="A picture of the face to animate (any size, first image of a batch) -> identity and its motion "
                        "code. Without a picture the bundled demo's drawn face is used (LIA-X needs a picture).",
            inputs=[VideoModel.Input("video_model"),
                    io.Image.Input("image", optional=True,
                                   tooltip="A frontal portrait; it is resized to the model's 512x512. Leave empty with "
                                           "the bundled demo to use its drawn face.")],
            outputs=[Face.Output(display_name="face")])

    @classmethod
    def execute(cls, video_model, image=None) -> io.NodeOutput:
        return io.NodeOutput(pipeline.encode_face(host.load_model(video_model), image))


class TalkerT2AVMotionEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVMotionEncode", display_name="Talker-T2AV Reference Motion", category=f"{CATEGORY}/conditioning",
            search_aliases=["head motion", "driving video", "pose from video"],
            description="Face motion of a reference video at 25 fps (at most 30 s): the prefix of a continuation, or the "
                        "fixed motion of video dubbing. Connect a VIDEO, or an IMAGE batch with its frame rate.",
            inputs=[VideoModel.Input("video_model"),
                    io.Video.Input("video", optional=True, tooltip="A core VIDEO (e.g. from Load Video)."),
                    io.Image.Input("images", optional=True, tooltip="Frames, used when no video is connected."),
                    io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.01,
                                   tooltip="Frame rate of 'images' (ignored for a VIDEO, which knows its own).")],
            outputs=[Motion.Output(display_name="motion"),
                     io.Float.Output(display_name="seconds", tooltip="Length of the motion at 25 fps.")])

    @classmethod
    def execute(cls, video_model, fps, video=None, images=None) -> io.NodeOutput:
        if video is not None:
            images, _, fps = host.video_components(video)
        elif images is None:
            raise T2AVError("connect a reference VIDEO or an IMAGE batch")
        motion = pipeline.reference_motion(host.load_model(video_model), images, fps,
                                           progress=host.progress(images.shape[0]))
        return io.NodeOutput(motion, motion.shape[0] / pipeline.FRAME_RATE)


class TalkerT2AVAudioEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVAudioEncode", display_name="Talker-T2AV Audio Encode", category=f"{CATEGORY}/conditioning",
            search_aliases=["audio driven", "lip sync from audio", "speech latents"],
            description="Speech -> audio latents at 25 fps, for the audio-driven mode (given_audio of the sampler).",
            inputs=[AudioVAE.Input("audio_vae"), io.Audio.Input("audio")],
            outputs=[AudioLatent.Output(display_name="audio_latent"),
                     io.Float.Output(display_name="seconds")])

    @classmethod
    def execute(cls, audio_vae, audio) -> io.NodeOutput:
        wave, rate = audio_from_comfy(audio)
        latents = pipeline.encode_audio(host.load_model(audio_vae), wave, rate)
        return io.NodeOutput(latents, latents.shape[0] / pipeline.FRAME_RATE)


NODES = [TalkerT2AVTextEncode, TalkerT2AVVoiceEncode, TalkerT2AVFaceEncode, TalkerT2AVMotionEncode,
         TalkerT2AVAudioEncode]
