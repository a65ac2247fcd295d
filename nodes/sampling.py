"""The joint sampler and its swappable parts (solver, schedule, guidance)."""

from __future__ import annotations

from t2av_core import pipeline
from t2av_core.errors import T2AVError

from . import host
from .core_sampler import CoreSamplerSolver
from .host import io
from .types import (CATEGORY, AudioLatent, AVLatent, Conditioning, Face, Guidance, GuidanceSettings, Motion,
                    Solver, TalkerModel, Voice)


class TalkerT2AVSolver(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSolver", display_name="Talker-T2AV Flow Solver", category=f"{CATEGORY}/sampling",
            search_aliases=["euler", "heun", "ode solver", "sampler"],
            description="How each flow head integrates from noise to a patch. Euler is what the model was released with.",
            inputs=[io.Combo.Input("solver", options=list(pipeline.SOLVERS), default="euler",
                                   tooltip="euler: 1 evaluation per step (reference). heun / midpoint: 2 per step, "
                                           "more accurate with few steps.")],
            outputs=[Solver.Output(display_name="solver")])

    @classmethod
    def execute(cls, solver) -> io.NodeOutput:
        return io.NodeOutput(solver)


class TalkerT2AVSolverFromSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSolverFromSampler", display_name="Talker-T2AV Solver from Core Sampler",
            search_aliases=["ksampler select", "core sampler", "dpmpp", "uni_pc"],
            category=f"{CATEGORY}/sampling",
            description="Use a core SAMPLER (e.g. from KSamplerSelect: euler, heun, dpmpp_2m, uni_pc, ...) as the flow "
                        "solver. Samplers that need ComfyUI's own guider (*_cfg_pp) cannot work here and are refused.",
            inputs=[io.Sampler.Input("sampler")],
            outputs=[Solver.Output(display_name="solver")])

    @classmethod
    def execute(cls, sampler) -> io.NodeOutput:
        return io.NodeOutput(CoreSamplerSolver(sampler))


class TalkerT2AVSwaySchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSwaySchedule", display_name="Talker-T2AV Sway Schedule", category=f"{CATEGORY}/sampling",
            search_aliases=["scheduler", "sigmas", "steps"],
            description="Flow time steps from 1 (noise) to 0, bunched near the noise end by sway sampling. Outputs core "
                        "SIGMAS, so core sigma nodes (ManualSigmas, SplitSigmas, ...) can replace or edit it.",
            inputs=[io.Int.Input("steps", default=10, min=1, max=200, tooltip="Solver steps per patch (released: 10)."),
                    io.Float.Input("sway", default=1.0, min=-1.0, max=1.0, step=0.05,
                                   tooltip="Sway coefficient (released: 1.0); 0 gives uniform steps.")],
            outputs=[io.Sigmas.Output(display_name="sigmas")])

    @classmethod
    def execute(cls, steps, sway) -> io.NodeOutput:
        return io.NodeOutput(pipeline.sway_sigmas(steps, sway))


class TalkerT2AVGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVGuidance", display_name="Talker-T2AV Guidance", category=f"{CATEGORY}/sampling",
            search_aliases=["cfg", "classifier free guidance", "cfg zero star"],
            description="Classifier-free guidance of both flow heads (the unconditional branch drops the backbone state).",
            inputs=[io.Float.Input("cfg", default=2.0, min=0.0, max=10.0, step=0.1, tooltip="Guidance scale (released: 2.0)."),
                    io.Boolean.Input("cfg_zero_star", default=True,
                                     tooltip="CFG-Zero*: rescale the unconditional velocity and skip the first step "
                                             "(released: on).")],
            outputs=[Guidance.Output(display_name="guidance")])

    @classmethod
    def execute(cls, cfg, cfg_zero_star) -> io.NodeOutput:
        return io.NodeOutput(GuidanceSettings(cfg=cfg, zero_star=cfg_zero_star))


class TalkerT2AVSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSampler", display_name="Talker-T2AV Joint Sampler", category=f"{CATEGORY}/sampling",
            search_aliases=["ksampler", "generate talking video", "text to audio video", "lip sync", "dubbing"],
            description="Generates speech and face motion together, one 4-frame patch (0.16 s) per step, until the model "
                        "stops or max_seconds is reached. Connect given_audio for audio-driven video, given_motion for "
                        "dubbing, or a reference motion with prefix_seconds > 0 to continue a clip.",
            inputs=[TalkerModel.Input("model"),
                    Conditioning.Input("conditioning"),
                    Voice.Input("voice"),
                    Face.Input("face"),
                    Solver.Input("solver"),
                    io.Sigmas.Input("sigmas", tooltip="Time grid from noise to data: Talker-T2AV Sway Schedule, or any "
                                                      "core scheduler. Grids starting above 1 (Karras, exponential, "
                                                      "VP) are mapped to flow time t = sigma / (1 + sigma), which "
                                                      "keeps each step's noise level; a grid that stops above 0 "
                                                      "(SplitSigmas high half) gets a last step to 0, so every patch "
                                                      "is finished. Both are noted in the console."),
                    Guidance.Input("guidance"),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                                 control_after_generate=io.ControlAfterGenerate.fixed,
                                 tooltip="Every bit of the seed counts, and the noise is drawn on the CPU, so a seed "
                                         "gives the same noise on any device (the same clip, bit for bit, on alike "
                                         "machines). Fixed after each run by default, so "
                                         "editing the text keeps the same delivery; switch to randomize for new "
                                         "takes."),
                    io.Float.Input("max_seconds", default=20.0, min=0.2, max=60.0, step=0.1,
                                   tooltip="Upper bound on the generated length (the stop head usually ends earlier; "
                                           "a given audio or motion stream sets the length instead)."),
                    io.Float.Input("prefix_seconds", default=0.0, min=0.0, max=30.0, step=0.04,
                                   tooltip="Seconds of the reference clip replayed as a continuation prefix (released: "
                                           "0.5). 0: clone identity only. Needs the voice encoded with the audio VAE."),
                    io.Float.Input("temperature", default=0.3, min=0.0, max=2.0, step=0.05,
                                   tooltip="Scale of the starting noise of each patch (released: 0.3)."),
                    Motion.Input("reference_motion", optional=True,
                                 tooltip="Motion of the reference clip: its first frame conditions the face motion "
                                         "and the prefix replays its start (else the still face is used)."),
                    AudioLatent.Input("given_audio", optional=True,
                                      tooltip="Audio-driven mode: this speech is kept and only face motion is generated."),
                    Motion.Input("given_motion", optional=True,
                                 tooltip="Dubbing: this face motion is kept and only speech is generated.")],
            # Lists, so that one clip per line (Text Encode) gives one clip each, and every node after this one
            # runs once per clip; a single text is a list of one.
            outputs=[AVLatent.Output(display_name="av_latent", is_output_list=True,
                                     tooltip="The clip's aligned audio and motion latents (one per line of text with "
                                             "one_clip_per_line)."),
                     io.Float.Output(display_name="seconds", is_output_list=True,
                                     tooltip="Length of the generated clip, prefix included.")])

    @classmethod
    def execute(cls, model, conditioning, voice, face, solver, sigmas, guidance, seed, max_seconds, prefix_seconds,
                temperature, reference_motion=None, given_audio=None, given_motion=None) -> io.NodeOutput:
        # checked before the model is moved to its device
        batch = isinstance(conditioning, pipeline.TextBatch)
        if batch and (given_audio is not None or given_motion is not None):
            raise T2AVError("one clip per line cannot share one given_audio or given_motion stream (it sets a "
                            "single clip's length): turn one_clip_per_line off in Text Encode")
        if given_audio is not None:
            pipeline.check_stream(given_audio, pipeline.AUDIO_LATENT_DIM, "given_audio")
        if given_motion is not None:
            pipeline.check_stream(given_motion, pipeline.MOTION_LATENT_DIM, "given_motion")
        parts = guidance.sampler_parts(solver, sigmas, temperature)
        talker = host.load_model(model)
        # one progress tick per patch; the total (the step budget) is known once the loop starts
        if batch:
            clips = pipeline.sample_batch(talker, list(conditioning.conditions), voice, face, parts, seed,
                                          max_seconds=max_seconds, prefix_seconds=prefix_seconds,
                                          motion=reference_motion, progress=host.progress(1))
        else:
            clips = [pipeline.sample_av(talker, conditioning, voice, face, parts, seed, max_seconds=max_seconds,
                                        prefix_seconds=prefix_seconds, motion=reference_motion,
                                        given_audio=given_audio, given_motion=given_motion,
                                        progress=host.progress(1))]
        return io.NodeOutput(clips, [av.audio.shape[0] / pipeline.FRAME_RATE for av in clips])


NODES = [TalkerT2AVSolver, TalkerT2AVSolverFromSampler, TalkerT2AVSwaySchedule, TalkerT2AVGuidance, TalkerT2AVSampler]
