"""Loader nodes: one per model file, each model wrapped in a ModelPatcher for ComfyUI's memory manager.

Each loader's first choice is the small demo model bundled with the pack (t2av_core/demo), so a template
runs without downloading anything. The demo's codecs, face renderer and voice embedder hold no torch
module: their handles have no patcher and run on the CPU (see ModelHandle).
"""

from __future__ import annotations

import copy
import functools
import logging
import os

import torch

from t2av_core import pipeline
from t2av_core.layout import released_names_with_stand_ins, stand_in_for

from . import host
from .host import io
from .types import (CATEGORY, DEVICE_TOOLTIP, PRECISION_TOOLTIP, AudioVAE, SpeakerModel, ModelHandle,
                    TalkerModel, VideoModel)

_log = logging.getLogger(__name__)
DEVICES = ["default", "cpu"]
FROM_CHECKPOINT = "from checkpoint"
CONTEXT_CHOICES = [FROM_CHECKPOINT, "1", "2", "3", "4"]
DEMO = "bundled demo (no download)"  # the first choice of every file (and tokenizer) combo
DEMO_TOOLTIP = (f" '{DEMO}': the small demo model shipped with the pack (synthetic voice and a drawn face; for "
                "trying the nodes, not for quality).")


def _weights() -> list[str]:
    """The demo, every weights file in the folder, and the released names of parts that are there under another
    accepted name (a flat whisperx_vae.ckpt serves a template asking for whisperx-vae/model.ckpt)."""
    files = [name for name in host.model_files() if not name.endswith(".json")]
    return [DEMO, *files, *released_names_with_stand_ins(files)]


def _model_path(name: str) -> str:
    """The full path of a file chosen in a loader, following a released name to the file that stands in for it."""
    files = host.model_files()
    if name not in files:
        name = stand_in_for(name, files) or name
    return host.model_path(name)


def _tokenizers() -> list[str]:
    return [DEMO, *(name for name in host.model_files() if os.path.basename(name) == "tokenizer.json")]


@functools.lru_cache(maxsize=1)
def demo_bundle():
    """The bundled demo, read once per process and shared by the four loaders. ComfyUI re-runs a loader when
    its inputs change or its cached output was dropped; the parts stay the same objects either way."""
    from t2av_core.demo.bundle import load_demo
    return load_demo()


_DEMO_TALKERS: dict[tuple[str, torch.dtype], ModelHandle] = {}


def _demo_talker(precision: str, device: str) -> ModelHandle:
    """One handle per (device, dtype): a patcher owns its module (it moves it between devices), so a second
    choice of device or precision gets its own copy of the 10 MB demo weights instead of sharing one."""
    target = host.compute_device(device)
    # The demo is tiny: "auto" keeps float32, which is what it was trained and checked in.
    dtype = torch.float32 if precision == "auto" else pipeline.resolve_dtype(precision, target)
    key = (str(target), dtype)
    if key not in _DEMO_TALKERS:
        bundle = demo_bundle()
        shared = any(handle.model is bundle.talker for handle in _DEMO_TALKERS.values())
        module = bundle.talker if dtype == torch.float32 and not shared else copy.deepcopy(bundle.talker).to(dtype)
        _DEMO_TALKERS[key] = ModelHandle(model=module, patcher=host.wrap_model(module, target),
                                         tokenizer=bundle.tokenizer)
    return _DEMO_TALKERS[key]


def _demo_part(name: str) -> ModelHandle:
    """A demo codec/renderer/voice embedder: plain CPU code without weights, so no patcher (precision and
    device do not apply)."""
    return ModelHandle(model=getattr(demo_bundle(), name), patcher=None)


def _common_inputs(tooltip: str) -> list:
    return [io.Combo.Input("file", options=_weights(), tooltip=tooltip + DEMO_TOOLTIP),
            io.Combo.Input("precision", options=list(pipeline.PRECISIONS), default="auto", tooltip=PRECISION_TOOLTIP),
            io.Combo.Input("device", options=DEVICES, default="default", tooltip=DEVICE_TOOLTIP)]


def _load(loader, file: str, precision: str, device: str, side_model: bool):
    """Build the module on the CPU at the chosen precision, then let ComfyUI move it when it is used."""
    target = host.compute_device(device)
    dtype = pipeline.model_dtype(precision, target, side_model)
    _log.info("Talker-T2AV %s on %s: %s", file, target, pipeline.describe_precision(precision, target, side_model))
    model = loader(_model_path(file), device="cpu", dtype=dtype)
    module = pipeline.torch_module(model)
    if module is None:
        raise TypeError(f"{type(model).__name__} keeps no torch module that ComfyUI could manage")
    return ModelHandle(model=model, patcher=host.wrap_model(module, target))


def _load_side_model(loader, demo_part: str, file: str, precision: str, device: str) -> io.NodeOutput:
    """A side model (audio VAE, face renderer, speaker encoder): the bundled demo part or a weights file."""
    if file == DEMO:
        return io.NodeOutput(_demo_part(demo_part))
    return io.NodeOutput(_load(loader, file, precision, device, side_model=True))


class TalkerT2AVModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVModelLoader", display_name="Load Talker-T2AV Model", category=f"{CATEGORY}/loaders",
            search_aliases=["talking head model", "text to speech and video", "qwen3 talker"],
            description="Loads the Talker-T2AV generator (Qwen3 backbone + audio/motion flow heads) and its tokenizer "
                        "from models/talker_t2av/. Accepts the released model.safetensors or a converted file.",
            inputs=[*_common_inputs("Generator weights: the released model.safetensors or a converted .safetensors."),
                    io.Combo.Input("tokenizer", options=_tokenizers(),
                                   tooltip="The Qwen3 tokenizer.json (keep tokenizer_config.json beside it). The "
                                           "bundled demo model always uses its own tokenizer, whatever is chosen here."),
                    io.Combo.Input("context_patches", options=CONTEXT_CHOICES, default=FROM_CHECKPOINT, optional=True,
                                   tooltip="How many previous 4-frame patches each flow head sees. It is not in the "
                                           "weights: by default it is read from the checkpoint (a converted file's "
                                           "header, or config.json beside it), else the released 1. Set it only "
                                           "for a checkpoint trained with another value; the console says what "
                                           "was used.")],
            outputs=[TalkerModel.Output(display_name="model")])

    @classmethod
    def execute(cls, file, precision, device, tokenizer, context_patches=FROM_CHECKPOINT) -> io.NodeOutput:
        if file == DEMO:
            if context_patches != FROM_CHECKPOINT:
                raise ValueError("context_patches applies to released or converted weights; the bundled demo model "
                                 f"uses the value it was trained with: set it to '{FROM_CHECKPOINT}'")
            return io.NodeOutput(_demo_talker(precision, device))
        if tokenizer == DEMO:
            raise ValueError(f"the demo tokenizer only fits the bundled demo model; choose the tokenizer.json "
                             f"that came with {file}")
        context = None if context_patches == FROM_CHECKPOINT else int(context_patches)
        loader = functools.partial(pipeline.load_talker, context_patches=context)
        tokens = pipeline.load_tokenizer(_model_path(tokenizer))
        handle = _load(loader, file, precision, device, side_model=False)
        pipeline.check_tokenizer(tokens, handle.model)  # its ids must exist in this generator's vocabulary
        return io.NodeOutput(ModelHandle(model=handle.model, patcher=handle.patcher, tokenizer=tokens))


class TalkerT2AVAudioVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVAudioVAELoader", display_name="Load Talker-T2AV Audio VAE", category=f"{CATEGORY}/loaders",
            search_aliases=["whisperx vae", "audio codec loader"],
            description="Loads the WhisperX-VAE (24 kHz speech <-> 32-d latents at 25 fps).",
            inputs=_common_inputs("The released whisperx-vae model.ckpt or a converted .safetensors."),
            outputs=[AudioVAE.Output(display_name="audio_vae")])

    @classmethod
    def execute(cls, file, precision, device) -> io.NodeOutput:
        return _load_side_model(pipeline.load_audio_codec, "audio_codec", file, precision, device)


class TalkerT2AVVideoModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVVideoModelLoader", display_name="Load Talker-T2AV LIA-X Video Model",
            search_aliases=["lia-x", "face renderer loader", "talking head renderer"],
            category=f"{CATEGORY}/loaders",
            description="Loads LIA-X, which reads face motion from images and renders 512x512 frames from it.",
            inputs=_common_inputs("The released lia-x.pt or a converted .safetensors."),
            outputs=[VideoModel.Output(display_name="video_model")])

    @classmethod
    def execute(cls, file, precision, device) -> io.NodeOutput:
        return _load_side_model(pipeline.load_renderer, "renderer", file, precision, device)


class TalkerT2AVSpeakerEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVSpeakerEncoderLoader", display_name="Load Talker-T2AV Speaker Encoder",
            search_aliases=["wavlm", "ecapa", "speaker verification"],
            category=f"{CATEGORY}/loaders",
            description="Loads WavLM-Large + ECAPA, which turns a voice recording into a 256-d speaker embedding.",
            inputs=_common_inputs("The released wavlm_large_finetune.pth or a converted .safetensors."),
            outputs=[SpeakerModel.Output(display_name="speaker_encoder")])

    @classmethod
    def execute(cls, file, precision, device) -> io.NodeOutput:
        return _load_side_model(pipeline.load_speaker_encoder, "speaker_encoder", file, precision, device)


NODES = [TalkerT2AVModelLoader, TalkerT2AVAudioVAELoader, TalkerT2AVVideoModelLoader, TalkerT2AVSpeakerEncoderLoader]
