"""Loads the node pack the way ComfyUI does and runs single nodes or whole API-format workflows on it.

Also builds what the workflows read: a models/talker_t2av folder holding the tiny parity models under the
released file names, a byte-level tokenizer whose ids fit the tiny model's 1024-word vocabulary, and
sample reference media (face picture, voice recording, 30 fps video).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import math
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import torch

STUB = Path(__file__).resolve().parent
REPO = STUB.parents[1]
if str(STUB) not in sys.path:
    sys.path.insert(0, str(STUB))

import comfy.samplers  # noqa: E402  (the stand-in)
import folder_paths  # noqa: E402
from comfy_api.latest import InputImpl, Types, io  # noqa: E402

PACK_NAME = "talker_t2av_pack"
FACE, VOICE, VIDEO = "talker_face.png", "talker_voice.wav", "talker_reference.mp4"
MODEL_FILES = {  # released file name -> parity fixture
    "model.safetensors": "core/core_tiny.safetensors",
    "whisperx-vae/model.ckpt": "codecs/audio_vae/audio_vae_tiny.ckpt",  # the released sub-folder, as the README
    "lia-x.pt": "codecs/lia_x/lia_x_tiny.safetensors",  # re-saved as a flat torch pickle, as lia-x.pt is
    "wavlm_large_finetune.pth": "codecs/speaker/speaker_tiny.pth",
}


def load_pack():
    """Import the repository root as a package, as ComfyUI imports custom_nodes/<pack>/__init__.py."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def pack_nodes() -> dict[str, type]:
    extension = asyncio.run(load_pack().comfy_entrypoint())
    return {node.define_schema().node_id: node for node in asyncio.run(extension.get_node_list())}


# ----------------------------------------------------------------------------------------------------------
# Files the workflows read


def tiny_tokenizer_json() -> str:
    """A byte-level BPE tokenizer with the Qwen3 chat tokens, every id below 1024."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    return tokenizer.to_str()


def make_models_dir(root: Path, parity: Path) -> Path:
    """root/talker_t2av/ with the tiny models under the released names; returns root (a models/ folder)."""
    folder = root / "talker_t2av"
    folder.mkdir(parents=True, exist_ok=True)
    for name, fixture in MODEL_FILES.items():
        target = folder / name
        if target.exists():
            continue
        target.parent.mkdir(exist_ok=True)
        if name.endswith(".pt"):
            from safetensors.torch import load_file
            torch.save(load_file(str(parity / fixture)), target)
        else:
            target.symlink_to(parity / fixture)
    (folder / "tokenizer.json").write_text(tiny_tokenizer_json())
    return root


def _write_png(path: Path, image: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def make_inputs(folder: Path, voice_seconds: float = 1.3, video_frames: int = 30) -> Path:
    """A photo with a face off-centre (odd size), stereo 22.05 kHz 'speech', and a 30 fps video of a face moving
    on a textured background, with 16 kHz sound."""
    from t2av_core.demo.portrait import portrait
    folder.mkdir(parents=True, exist_ok=True)
    _write_png(folder / FACE, portrait(135, 181, 70, 15, 100))
    rate, n = 22050, int(voice_seconds * 22050)
    t = np.arange(n) / rate
    tone = 0.3 * np.sin(2 * np.pi * (140 + 60 * np.sin(3 * t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    stereo = np.stack([tone, 0.8 * tone]).astype(np.float32)
    with av.open(str(folder / VOICE), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray((stereo * 32767).astype(np.int16).T.reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    from t2av_core.media.video_io import write_mp4
    frames = torch.from_numpy(np.stack([portrait(96, 128, 20 + i, 8, 80) for i in range(video_frames)])).float() / 255
    sound = torch.from_numpy(np.resize(tone, video_frames * 16000 // 30).astype(np.float32))
    write_mp4(folder / VIDEO, frames, sound, 16000, Fraction(30))
    return folder


@functools.lru_cache(maxsize=None)
def environment(parity: Path) -> SimpleNamespace:
    """One stand-in ComfyUI base folder (models, short sample inputs, output) and the pack's nodes, shared by
    every test module of a session; the tiny models are loaded once through the loader nodes."""
    base = Path(tempfile.mkdtemp(prefix="talker_nodes_"))
    folder_paths.set_base(str(base))
    make_models_dir(Path(folder_paths.models_dir), parity)
    make_inputs(base / "input", voice_seconds=0.6, video_frames=8)
    nodes = pack_nodes()
    common = {"precision": "fp32", "device": "default"}  # "auto" picks bf16 on AMX CPUs: tests pin it
    handles = SimpleNamespace(
        model=load(nodes, "TalkerT2AVModelLoader", file="model.safetensors", tokenizer="tokenizer.json",
                   **common).args[0],
        vae=load(nodes, "TalkerT2AVAudioVAELoader", file="whisperx-vae/model.ckpt", **common).args[0],
        video=load(nodes, "TalkerT2AVVideoModelLoader", file="lia-x.pt", **common).args[0],
        speaker=load(nodes, "TalkerT2AVSpeakerEncoderLoader", file="wavlm_large_finetune.pth", **common).args[0])
    return SimpleNamespace(base=base, nodes=nodes, models=handles)


# ----------------------------------------------------------------------------------------------------------
# Running nodes


def check_inputs(node: type, inputs: dict) -> None:
    """What ComfyUI checks before running a node: required inputs present, no unknown ones, combo values
    and number ranges, then the node's own validate_inputs."""
    schema = node.define_schema()
    declared = {port.id: port for port in schema.inputs}
    unknown = set(inputs) - set(declared)
    assert not unknown, f"{schema.node_id}: unknown inputs {unknown}"
    for name, port in declared.items():
        if name not in inputs:
            assert port.optional, f"{schema.node_id}: required input {name!r} missing"
            continue
        value, extra = inputs[name], port.extra
        if port.io_type == "COMBO":
            assert value in port.options, f"{schema.node_id}.{name}: {value!r} not in {port.options}"
        if port.io_type in ("INT", "FLOAT") and isinstance(value, (int, float)):
            assert extra.get("min", -math.inf) <= value <= extra.get("max", math.inf), f"{name}={value} out of range"
    verdict = node.validate_inputs(**{k: v for k, v in inputs.items() if isinstance(v, (str, int, float, bool))})
    if verdict is not True:
        raise ValueError(f"{schema.node_id}: validation failed: {verdict}")


def run_node(node: type, **inputs):
    check_inputs(node, inputs)
    return node.execute(**inputs)


def sampler_parts(nodes: dict[str, type], steps: int = 4) -> dict:
    """The released sampler parts (Euler, sway schedule of ``steps``, CFG 2 with CFG-Zero*), made by the nodes,
    as the Joint and Long-form Samplers take them."""
    return dict(solver=run_node(nodes["TalkerT2AVSolver"], solver="euler").args[0],
                sigmas=run_node(nodes["TalkerT2AVSwaySchedule"], steps=steps, sway=1.0).args[0],
                guidance=run_node(nodes["TalkerT2AVGuidance"], cfg=2.0, cfg_zero_star=True).args[0])


def _input_path(name: str) -> str:
    return os.path.join(folder_paths.base_path, "input", name)


class LoadImage(io.ComfyNode):  # the core nodes the workflows use, reading with the library's own readers
    @classmethod
    def execute(cls, image, **_):
        from t2av_core.media.image_io import read_image
        picture = read_image(_input_path(image))[None]
        return io.NodeOutput(picture, torch.zeros(picture.shape[:3]))


def _read_track(path: str):
    """A file's first audio track as ComfyUI AUDIO at its own rate and channel count (None if it has none)."""
    from t2av_core.media.audio_io import read_audio
    with av.open(path) as container:
        if not container.streams.audio:
            return None
        rate = container.streams.audio[0].rate
    return {"waveform": read_audio(path, rate, mono=False)[None], "sample_rate": rate}


class LoadAudio(io.ComfyNode):
    @classmethod
    def execute(cls, audio, **_):
        return io.NodeOutput(_read_track(_input_path(audio)))


class LoadVideo(io.ComfyNode):
    @classmethod
    def execute(cls, file, **_):
        from t2av_core.media.video_io import read_video_frames
        frames, fps = read_video_frames(_input_path(file))
        parts = Types.VideoComponents(images=frames, frame_rate=Fraction(fps).limit_denominator(1001),
                                      audio=_read_track(_input_path(file)))
        return io.NodeOutput(InputImpl.VideoFromComponents(parts))


class GetVideoComponents(io.ComfyNode):
    @classmethod
    def execute(cls, video, **_):
        parts = video.get_components()
        return io.NodeOutput(parts.images, parts.audio, float(parts.frame_rate), 8)


class KSamplerSelect(io.ComfyNode):
    @classmethod
    def execute(cls, sampler_name, **_):
        return io.NodeOutput(comfy.samplers.sampler_object(sampler_name))


CORE_STANDINS = {"LoadImage": LoadImage, "LoadAudio": LoadAudio, "LoadVideo": LoadVideo,
                 "GetVideoComponents": GetVideoComponents, "KSamplerSelect": KSamplerSelect}


_LOADED: dict[str, object] = {}  # loader outputs reused between workflows, as ComfyUI's cache does


def load(nodes: dict[str, type], node_id: str, **inputs):
    key = json.dumps([node_id, inputs], sort_keys=True)
    if key not in _LOADED:
        _LOADED[key] = run_node(nodes[node_id], **inputs)
    return _LOADED[key]


def run_workflow(prompt: dict, nodes: dict[str, type], cache: dict | None = None) -> dict[str, object]:
    """Execute an API-format prompt (only what output nodes need, each node once); returns node id -> output.

    As in ComfyUI's executor, values travel as lists: an output marked is_output_list hands on its items one
    by one, and a node fed such a list runs once per item. A node that ran once returns its NodeOutput; one
    that ran per item returns an object with the outputs as lists, the UI messages joined and ``calls``.
    With ``cache`` (a dict kept between prompts) a node whose class, widget values and upstream nodes are
    unchanged since an earlier prompt is not run again: its earlier outputs are handed on, as ComfyUI's
    output cache does."""
    done: dict[str, object] = {}
    lists: dict[str, list[list]] = {}  # node id -> one list of values per output
    keys: dict[str, str] = {}

    def key(node_id: str) -> str:
        if node_id not in keys:
            entry = prompt[node_id]
            inputs = {name: [key(str(v[0])), v[1]] if isinstance(v, list) else v
                      for name, v in sorted(entry["inputs"].items())}
            keys[node_id] = json.dumps([entry["class_type"], inputs], sort_keys=True)
        return keys[node_id]

    def value(node_id: str) -> list[list]:
        if node_id not in lists and cache is not None and key(node_id) in cache:
            lists[node_id], done[node_id] = cache[key(node_id)]
        if node_id not in lists:
            entry = prompt[node_id]
            args = {name: value(str(v[0]))[v[1]] if isinstance(v, list) else [v] for name, v in entry["inputs"].items()}
            calls = [run_one(entry["class_type"], {name: items[min(i, len(items) - 1)] for name, items in args.items()})
                     for i in range(max((len(items) for items in args.values()), default=1))]
            flags = output_list_flags(nodes.get(entry["class_type"]))
            outputs = [[] for _ in (calls[0].args or ())] if calls else []
            for call in calls:
                for k, item in enumerate(call.args or ()):
                    outputs[k].extend(item) if k < len(flags) and flags[k] else outputs[k].append(item)
            lists[node_id] = outputs
            done[node_id] = calls[0] if len(calls) == 1 else SimpleNamespace(
                args=tuple(outputs), calls=calls, ui=joined_ui([call.ui for call in calls]))
            if cache is not None:
                cache[key(node_id)] = lists[node_id], done[node_id]
        return lists[node_id]

    def run_one(class_type: str, args: dict):
        if class_type.endswith("Loader"):
            return load(nodes, class_type, **args)
        if class_type in nodes:
            return run_node(nodes[class_type], **args)
        return CORE_STANDINS[class_type].execute(**args)

    outputs = [nid for nid, entry in prompt.items()
               if entry["class_type"] in nodes and nodes[entry["class_type"]].define_schema().is_output_node]
    assert outputs, "the workflow has no output node"
    for node_id in outputs:
        value(node_id)
    return done


def output_list_flags(node: type | None) -> list[bool]:
    if node is None:
        return []
    return [bool(port.extra.get("is_output_list")) for port in node.define_schema().outputs]


def joined_ui(messages: list) -> dict | None:
    """The UI messages of a node run once per item, joined key by key as ComfyUI joins them."""
    joined: dict = {}
    for message in messages:
        for key, items in (message or {}).items():
            joined.setdefault(key, []).extend(items)
    return joined or None


def load_api_workflow(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    return data["prompt"] if "prompt" in data else data


def saved_clips(ui: dict) -> list[SimpleNamespace]:
    """What the pack's Save Video reports, one entry per mp4: the file (as core Save Video does, under "images")
    and the figures of its synced player ([frames, fps, seconds, has_audio] each, under "talker_t2av")."""
    clips = []
    for index, file in enumerate(ui["images"]):
        frames, fps, seconds, has_audio = ui["talker_t2av"][4 * index:4 * index + 4]
        path = Path(folder_paths.get_output_directory()) / file["subfolder"] / file["filename"]
        clips.append(SimpleNamespace(path=path, frames=frames, fps=fps, seconds=seconds, has_audio=has_audio,
                                     file=file))
    return clips


def saved_clip(ui: dict) -> SimpleNamespace:
    """The one mp4 a Save Video run reports (see saved_clips)."""
    clips = saved_clips(ui)
    assert len(clips) == 1, f"expected one saved clip, got {len(clips)}"
    return clips[0]
