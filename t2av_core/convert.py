"""Convert a released weights file into one safetensors file per component, with a metadata header.

    python -m t2av_core.convert --component audio_vae whisperx-vae/model.ckpt audio_vae.safetensors

Exit codes: 0 done, 2 bad input (the message says what to fix), 1 internal error, 130 cancelled. The output is
written under a temporary name in its folder and renamed when complete, so a failed or cancelled run leaves
no file and an existing output as it was.

The output keeps the released key names and dtypes (a bf16 file stays bf16), so every loader accepts
either the released file or the converted one. The header holds ``component`` and ``config`` (JSON), and
pickle-based sources are read without executing their pickle (see ``t2av_core.checkpoint_io``).

Components live in :data:`COMPONENTS`. Each names how to pick its tensors and how to infer its config
from them (with the model code's own ``from_state_dict``); :func:`register_component` adds or changes one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Callable

import torch

from t2av_core.atomic import check_destination
from t2av_core.audio.whisperx_vae import check_audio_vae_keys, config_from_checkpoint, select_audio_vae_keys
from t2av_core.checkpoint_io import load_weights_and_hyper_parameters, save_component
from t2av_core.errors import T2AVError
from t2av_core.model.checkpoint_config import resolve_config
from t2av_core.speaker.encoder import checkpoint_key_to_module, configs_from_state_dict, select_speaker_keys
from t2av_core.video.lia_x import LiaXConfig

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
StateDict = dict[str, torch.Tensor]
# (state dict, user options) -> JSON-serialisable config dict; a function with a ``hyper_parameters``
# keyword (see ComponentSpec) also gets the source's training config as plain data ({} when it has none).
ConfigFn = Callable[..., dict]
_log = logging.getLogger(__name__)


@dataclass
class ComponentSpec:
    description: str
    select: Callable[[StateDict], StateDict] = lambda sd: sd  # keep only what the component uses
    infer_config: ConfigFn | None = None  # None: an empty config
    options: tuple[str, ...] | None = None  # the --options names it accepts; None: any (passed on unchecked)
    wants_hyper_parameters: bool = False  # infer_config(sd, options, hyper_parameters=...)
    wants_source: bool = False  # infer_config(sd, options, source=Path): e.g. to read a config.json beside it


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


def _audio_vae_config(sd: StateDict, options: dict, hyper_parameters: dict | None = None) -> dict:
    cfg, note = config_from_checkpoint(sd, hyper_parameters, options.get("whisper_heads"))
    if note:
        _log.warning("note: %s (--options '{\"whisper_heads\": N}')", note)
    check_audio_vae_keys(sd, cfg)
    return cfg.to_dict()


def _talker_config(sd: StateDict, options: dict, source: Path) -> dict:
    # context_patches and the backbone's rope_theta / eps are not in the shapes: the option, else a config.json
    # beside the source, else the released values (logged), as the loader does
    cfg, notes = resolve_config(sd, source, options.get("context_patches"))
    for note in notes:
        _log.warning("note: %s", note)
    return _as_json(cfg)


def _check_options(component: str, spec: ComponentSpec, options: dict) -> None:
    """Refuse unknown options, and a malformed whisper_heads before a large file is read."""
    unknown = sorted(set(options) - set(spec.options)) if spec.options is not None else []
    if unknown:
        accepted = ", ".join(spec.options) or "none"
        raise T2AVError(f"unknown option(s) {', '.join(unknown)} for {component}; it accepts: {accepted}")
    if spec.options is not None and "whisper_heads" in options:  # accepted by this built-in component
        heads = options["whisper_heads"]
        if type(heads) is not int or heads <= 0:
            raise T2AVError(f"whisper_heads must be a positive whole number such as 20, got {json.dumps(heads)}")


def _check_paths(src: Path, dst: Path) -> Path:
    """Output problems found before a possibly huge source is read."""
    if dst.suffix != ".safetensors":
        raise T2AVError(f"the output must be a .safetensors file, got '{dst.name}' (e.g. "
                        f"{dst.with_suffix('.safetensors').name})")
    if src.absolute() == dst.absolute() or (src.exists() and dst.exists() and os.path.samefile(src, dst)):
        raise T2AVError("the converted file must not overwrite the source; choose another output path")
    if dst.is_dir():
        raise T2AVError(f"the output {dst} is a folder; give a file name, e.g. {dst / 'audio_vae.safetensors'}")
    if not dst.parent.is_dir():
        raise T2AVError(f"the output folder {dst.parent} does not exist (or is not a folder); create it first")
    return check_destination(dst, "output file")  # e.g. no permission to write in the folder


def _from_state_dict_of(config_class: type) -> ConfigFn:
    """Config inference through the model code's own ``config_class.from_state_dict``."""
    return lambda sd, options: _as_json(config_class.from_state_dict(sd))


COMPONENTS: dict[str, ComponentSpec] = {
    "talker": ComponentSpec("Talker-T2AV generator (model.safetensors)",
                            infer_config=_talker_config, options=("context_patches",), wants_source=True),
    "audio_vae": ComponentSpec("WhisperX-VAE audio codec (whisperx-vae/model.ckpt)",
                               select=select_audio_vae_keys, infer_config=_audio_vae_config,
                               options=("whisper_heads",), wants_hyper_parameters=True),
    "lia_x": ComponentSpec("LIA-X face renderer (lia-x.pt)",
                           infer_config=_from_state_dict_of(LiaXConfig), options=()),
    "speaker": ComponentSpec("WavLM-Large + ECAPA speaker encoder (wavlm_large_finetune.pth)",
                             select=select_speaker_keys,
                             infer_config=_speaker_config, options=()),
}


def register_component(name: str, description: str = "", *, select: Callable[[StateDict], StateDict] | None = None,
                       infer_config: ConfigFn | None = None) -> None:
    """Add a component, or plug a selection / config-inference function into an existing one (which then
    gets every --options entry, unchecked, and no hyper-parameters)."""
    spec = COMPONENTS.get(name) or ComponentSpec(description or name)
    if select is not None:
        spec.select = select
    if infer_config is not None:
        spec.infer_config, spec.options, spec.wants_hyper_parameters = infer_config, None, False
    COMPONENTS[name] = spec


def convert(component: str, src: str | os.PathLike, dst: str | os.PathLike, *,
            options: dict | None = None) -> dict:
    """Read ``src`` (any supported format), keep the component's tensors, write ``dst`` as safetensors.

    Returns the config written into the header. ``options`` are passed to config inference
    (e.g. ``{"whisper_heads": 20}`` for audio_vae). Bad input (options, paths, files) raises T2AVError, before
    the source is read where possible.
    """
    if component not in COMPONENTS:
        raise T2AVError(f"unknown component '{component}'; choose one of {sorted(COMPONENTS)}")
    spec, options = COMPONENTS[component], dict(options or {})
    _check_options(component, spec, options)
    dst = _check_paths(Path(src), Path(dst))
    weights, hyper_parameters = load_weights_and_hyper_parameters(src)
    sd = spec.select(weights)
    extra = {"hyper_parameters": hyper_parameters} if spec.wants_hyper_parameters else {}
    if spec.wants_source:
        extra["source"] = Path(src)
    config = spec.infer_config(sd, options, **extra) if spec.infer_config else {}
    save_component(dst, sd, component, config)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m t2av_core.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", required=True, choices=sorted(COMPONENTS))
    parser.add_argument("--options", default="{}", help='JSON options for config inference, e.g. \'{"whisper_heads": 20}\'')
    parser.add_argument("src", help="released weights file (.safetensors, .ckpt, .pt, .pth)")
    parser.add_argument("dst", help="output .safetensors file")
    try:
        args = parser.parse_args(argv)
        try:
            options = json.loads(args.options)
            if not isinstance(options, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            parser.error(f"--options must be a JSON object such as '{{\"whisper_heads\": 20}}' ({e})")
    except SystemExit as stop:  # argparse printed the usage error (or the help)
        return EXIT_OK if stop.code == 0 else EXIT_BAD_INPUT
    try:
        config = convert(args.component, args.src, args.dst, options=options)
    except T2AVError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled; no output was written", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as e:  # a bug or a broken environment: show where
        traceback.print_exc()
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    print(f"wrote {args.dst} ({args.component}; config: {json.dumps(config)})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
