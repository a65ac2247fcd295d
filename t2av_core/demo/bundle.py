"""The committed demo model: ``assets/talker.safetensors`` (TalkerT2AV weights, loaded by the same strict
loader as the released model.safetensors) and ``assets/demo.json`` (codec settings, the default voice
vector and how the weights were trained)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..interfaces import DEMO
from .face import DemoFaceRenderer
from .mel_codec import MelCodec
from .text import DemoTokenizer
from .voice import SpectralVoiceEmbedder

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS_NAME = "talker.safetensors"
META_NAME = "demo.json"


@dataclass
class DemoBundle:
    talker: Any
    tokenizer: DemoTokenizer
    audio_codec: MelCodec
    renderer: DemoFaceRenderer
    speaker_encoder: SpectralVoiceEmbedder
    default_speaker: torch.Tensor   # (256,) the voice used when no voice sample is given
    meta: dict


def read_meta(folder: Path = ASSETS) -> dict:
    path = Path(folder) / META_NAME
    if not path.is_file():
        raise CheckpointError(f"the demo model is missing ({path}); train it with scripts/train_demo.py")
    return json.loads(path.read_text())


def codec_from_meta(meta: dict) -> MelCodec:
    return MelCodec(**meta["codec"])


def load_demo(folder: Path | str = ASSETS, device: str | torch.device = "cpu") -> DemoBundle:
    from ..model.talker import load_talker
    folder = Path(folder)
    meta = read_meta(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"the demo weights are missing ({weights}); train them with scripts/train_demo.py")
    talker = load_talker(weights, device=device, dtype=torch.float32)
    talker.family = DEMO  # fits only the demo's codec, face renderer, voice embedder and tokenizer
    speaker = torch.tensor(meta["default_speaker"], dtype=torch.float32)
    return DemoBundle(talker=talker, tokenizer=DemoTokenizer(), audio_codec=codec_from_meta(meta),
                      renderer=DemoFaceRenderer(meta["renderer"]["image_size"]),
                      speaker_encoder=SpectralVoiceEmbedder(default_speaker=speaker),
                      default_speaker=speaker, meta=meta)


def save_demo(folder: Path | str, model: torch.nn.Module, meta: dict) -> None:
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    (folder / META_NAME).write_text(json.dumps(meta, indent=1) + "\n")
