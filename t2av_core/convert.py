"""Convert a released weights file into one safetensors file per component, with a metadata header.

    python -m t2av_core.convert --component audio_vae whisperx-vae/model.ckpt audio_vae.safetensors

The output keeps the released key names and dtypes (a bf16 file stays bf16), so every loader accepts
either the released file or the converted one. The header holds ``component`` and ``config`` (JSON), and
pickle-based sources are read without executing their pickle (see ``t2av_core.checkpoint_io``).

Components live in :data:`COMPONENTS`. Each names how to pick its tensors and how to infer its config
from them (with the model code's own ``from_state_dict``); :func:`register_component` adds or changes one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, fields, is_dataclass
from typing import Callable

import torch

from t2av_core.audio.whisperx_vae import WhisperXVAEConfig, check_audio_vae_keys, select_audio_vae_keys
from t2av_core.checkpoint_io import load_state_dict_file, save_component
from t2av_core.errors import T2AVError
from t2av_core.model.config import TalkerConfig
from t2av_core.speaker.encoder import checkpoint_key_to_module, configs_from_state_dict, select_speaker_keys
from t2av_core.video.lia_x import LiaXConfig

StateDict = dict[str, torch.Tensor]
# (state dict, user options) -> JSON-serialisable config dict
ConfigFn = Callable[[StateDict, dict], dict]


@dataclass
class ComponentSpec:
    description: str
    select: Callable[[StateDict], StateDict] = lambda sd: sd  # keep only what the component uses
    infer_config: ConfigFn | None = None  # None: an empty config


def _as_json(obj) -> object:
    """Config objects (nested dataclasses, tuples) as plain JSON values."""
    if is_dataclass(obj):
        return {f.name: _as_json(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_as_json(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _as_json(v) for k, v in obj.items()}
    return obj


def _speaker_config(sd: StateDict, options: dict) -> dict:
    # the speaker model code infers its sizes from its own (module) key names
    wavlm, ecapa = configs_from_state_dict({checkpoint_key_to_module(k): v for k, v in sd.items()})
    return {"wavlm": _as_json(wavlm), "ecapa": _as_json(ecapa)}


def _audio_vae_config(sd: StateDict, options: dict) -> dict:
    cfg = WhisperXVAEConfig.from_state_dict(sd, options.get("whisper_heads"))
    check_audio_vae_keys(sd, cfg)
    return cfg.to_dict()


def _from_state_dict_of(config_class: type) -> ConfigFn:
    """Config inference through the model code's own ``config_class.from_state_dict``."""
    return lambda sd, options: _as_json(config_class.from_state_dict(sd))


COMPONENTS: dict[str, ComponentSpec] = {
    "talker": ComponentSpec("Talker-T2AV generator (model.safetensors)",
                            infer_config=_from_state_dict_of(TalkerConfig)),
    "audio_vae": ComponentSpec("WhisperX-VAE audio codec (whisperx-vae/model.ckpt)",
                               select=select_audio_vae_keys, infer_config=_audio_vae_config),
    "lia_x": ComponentSpec("LIA-X face renderer (lia-x.pt)",
                           infer_config=_from_state_dict_of(LiaXConfig)),
    "speaker": ComponentSpec("WavLM-Large + ECAPA speaker encoder (wavlm_large_finetune.pth)",
                             select=select_speaker_keys,
                             infer_config=_speaker_config),
}


def register_component(name: str, description: str = "", *, select: Callable[[StateDict], StateDict] | None = None,
                       infer_config: ConfigFn | None = None) -> None:
    """Add a component, or plug a selection / config-inference function into an existing one."""
    spec = COMPONENTS.get(name) or ComponentSpec(description or name)
    if select is not None:
        spec.select = select
    if infer_config is not None:
        spec.infer_config = infer_config
    COMPONENTS[name] = spec


def convert(component: str, src: str | os.PathLike, dst: str | os.PathLike, *,
            options: dict | None = None) -> dict:
    """Read ``src`` (any supported format), keep the component's tensors, write ``dst`` as safetensors.

    Returns the config written into the header. ``options`` are passed to config inference
    (e.g. ``{"whisper_heads": 20}`` for audio_vae).
    """
    if component not in COMPONENTS:
        raise T2AVError(f"unknown component '{component}'; choose one of {sorted(COMPONENTS)}")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise T2AVError("the converted file must not overwrite the source; choose another output path")
    spec = COMPONENTS[component]
    sd = spec.select(load_state_dict_file(src))
    config = spec.infer_config(sd, dict(options or {})) if spec.infer_config else {}
    save_component(dst, sd, component, config)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m t2av_core.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", required=True, choices=sorted(COMPONENTS))
    parser.add_argument("--options", default="{}", help='JSON options for config inference, e.g. \'{"whisper_heads": 20}\'')
    parser.add_argument("src", help="released weights file (.safetensors, .ckpt, .pt, .pth)")
    parser.add_argument("dst", help="output .safetensors file")
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        parser.error(f"--options must be a JSON object: {e}")
    try:
        config = convert(args.component, args.src, args.dst, options=options)
    except T2AVError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst} ({args.component}; config: {json.dumps(config)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
