"""The long-form sampler: a script of any length -> one continuous AV latent (see t2av_core.longform)."""

from __future__ import annotations

from t2av_core import pipeline

from . import host
from .host import io
from .types import (CATEGORY, AudioVAE, AVLatent, Face, Guidance, Motion, Solver, TalkerModel, Voice)


class TalkerT2AVLongFormSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVLongFormSampler", display_name="Talker-T2AV Long-form Sampler",
            category=f"{CATEGORY}/sampling",
            search_aliases=["long script", "audiobook", "narration", "long video", "paragraphs"],
            description="Reads a script of any length as one continuous talking clip: the text is cut at sentence "
                        "ends into chunks of about chunk_seconds, and each chunk continues from the end of the one "
                        "before (the released continuation prefix), so voice, prosody and head pose carry across. "
                        "The AV latent plugs into the usual decoders.",
            inputs=[TalkerModel.Input("model"),
                    io.String.Input("text", multiline=True, default="",
                                    tooltip="The script. Paragraphs and sentences of any length; cut at sentence "
                                            "ends (then clauses) into chunks."),
                    Voice.Input("voice"),
                    Face.Input("face"),
                    Solver.Input("solver"),
                    io.Sigmas.Input("sigmas", tooltip="Time grid of each patch, as for the Joint Sampler."),
                    Guidance.Input("guidance"),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                                 control_after_generate=io.ControlAfterGenerate.fixed,
                                 tooltip="One seed gives the same whole clip; each chunk draws from a seed derived "
                                         "from it and its place."),
                    io.Float.Input("chunk_seconds", default=18.0, min=2.0, max=30.0, step=0.5,
                                   tooltip="About how much speech each chunk holds (the model was trained on clips "
                                           "of up to 30 s)."),
                    io.Float.Input("pause_seconds", default=0.0, min=0.0, max=5.0, step=0.04,
                                   tooltip="Silence put between chunks (needs the audio VAE connected)."),
                    io.Float.Input("max_seconds", default=0.0, min=0.0, max=36000.0, step=1.0,
                                   tooltip="Cap on the whole clip; 0: as long as the text needs."),
                    io.Float.Input("prefix_seconds", default=0.0, min=0.0, max=30.0, step=0.04,
                                   tooltip="Seconds of the voice's reference replayed before the first chunk, as "
                                           "for the Joint Sampler."),
                    io.Float.Input("temperature", default=0.3, min=0.0, max=2.0, step=0.05,
                                   tooltip="Scale of the starting noise of each patch (released: 0.3)."),
                    AudioVAE.Input("audio_vae", optional=True,
                                   tooltip="Makes the pauses between chunks (its latent of silence)."),
                    Motion.Input("reference_motion", optional=True,
                                 tooltip="Motion of a reference clip: its first frame conditions the face motion.")],
            outputs=[AVLatent.Output(display_name="av_latent"),
                     io.Float.Output(display_name="seconds", tooltip="Length of the whole clip."),
                     io.Int.Output(display_name="chunks", tooltip="How many chunks the script was read in.")])

    @classmethod
    def execute(cls, model, text, voice, face, solver, sigmas, guidance, seed, chunk_seconds, pause_seconds,
                max_seconds, prefix_seconds, temperature, audio_vae=None, reference_motion=None) -> io.NodeOutput:
        long = pipeline.LongFormSettings(chunk_seconds=chunk_seconds, pause_seconds=pause_seconds,
                                         max_seconds=max_seconds or None)
        parts = guidance.sampler_parts(solver, sigmas, temperature)
        codec = host.load_model(audio_vae) if audio_vae is not None and pause_seconds else None
        talker = host.load_model(model)
        av, chunks = pipeline.sample_long(talker, model.tokenizer, text, voice, face, parts, seed, long,
                                          prefix_seconds=prefix_seconds, motion=reference_motion, audio_codec=codec,
                                          progress=host.progress(1))
        return io.NodeOutput(av, av.seconds, len(chunks))


NODES = [TalkerT2AVLongFormSampler]
