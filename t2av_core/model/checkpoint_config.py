"""What a generator checkpoint records about itself beyond its tensor shapes.

Most of :class:`TalkerConfig` is read from the shapes (``TalkerConfig.from_state_dict``). A few settings leave
no trace there: ``context_patches`` (how many previous patches each flow head sees: a checkpoint trained with 2
loads fine with 1 and then generates wrong output from the first step), the backbone's ``rope_theta`` and norm
``eps``, ``patch_size`` and ``delay``. They are read, in this order of precedence, from

1. the caller (the loader's ``context_patches`` argument, the loader node, ``--context-patches``);
2. the file's own header, for a file written by ``t2av_core.convert`` (its ``config`` JSON);
3. a ``config.json`` beside the weights, as the released folder has one: training arguments
   (``context_patches``, ``patch_size``, ``delay``, ``patch_encoder_n_head``, ...) and/or the Qwen3 config
   (``rope_theta``, ``rms_norm_eps``, and sizes that must agree with the tensors);
4. the released values, with a note saying the setting was not recorded.

:func:`resolve_config` returns the config and one line per setting saying where its value came from.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import torch

from ..checkpoint_io import read_component_config
from ..errors import CheckpointError
from .config import TalkerConfig

COMPONENT = "talker"
CONFIG_NAME = "config.json"
# Settings the generation code supports only at their released values.
FIXED = {"patch_size": 4, "delay": 0}
MAX_CONTEXT_PATCHES = 16
# config.json keys (Qwen3 / training-argument names) that must agree with the tensor shapes.
_SHAPE_KEYS = {"hidden_size": lambda c: c.backbone.hidden, "num_hidden_layers": lambda c: c.backbone.layers,
               "num_attention_heads": lambda c: c.backbone.n_heads,
               "num_key_value_heads": lambda c: c.backbone.n_kv_heads, "head_dim": lambda c: c.backbone.head_dim,
               "intermediate_size": lambda c: c.backbone.ffn, "speech_embedding_dim": lambda c: c.speech_dim,
               "motion_embedding_dim": lambda c: c.motion_dim, "patch_encoder_n_layer": lambda c: c.patch_encoder.layers,
               "patch_encoder_n_head": lambda c: c.patch_encoder.n_heads}


def check_context_patches(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_CONTEXT_PATCHES:
        raise CheckpointError(f"context_patches must be a whole number from 1 to {MAX_CONTEXT_PATCHES} (the "
                              f"released model uses 1), got {value!r}")
    return int(value)


def resolve_config(sd: Mapping[str, torch.Tensor], weights: str | Path,
                   context_patches: int | None = None) -> tuple[TalkerConfig, list[str]]:
    """(config, notes): the shapes' config with the recorded settings applied; see the module docstring."""
    weights = Path(weights)
    cfg = TalkerConfig.from_state_dict(sd)
    recorded, where = _recorded_settings(weights)
    for key, read in _SHAPE_KEYS.items():
        if key in recorded and recorded[key] != read(cfg):
            raise CheckpointError(f"{where} says {key} = {recorded[key]}, but the weights in {weights.name} have "
                                  f"{read(cfg)}: that config belongs to another model. Remove or fix it")
    for key, value in FIXED.items():
        if recorded.get(key, value) != value:
            raise CheckpointError(f"{where} says {key} = {recorded[key]}; this pack generates only with the "
                                  f"released {key} = {value}")
    notes = []
    if context_patches is not None:
        ctx, source = check_context_patches(context_patches), "set by you"
    elif "context_patches" in recorded:
        ctx, source = _checked(recorded["context_patches"], where, check_context_patches), f"from {where}"
    else:
        ctx, source = cfg.context_patches, "not recorded in the checkpoint: the released value"
    notes.append(f"context_patches = {ctx} ({source})")
    backbone = cfg.backbone
    for key, field in (("rope_theta", "rope_theta"), ("rms_norm_eps", "eps")):
        if key in recorded:
            backbone = replace(backbone, **{field: _checked(recorded[key], where, _positive_number(key))})
            notes.append(f"{key} = {getattr(backbone, field):g} (from {where})")
    return replace(cfg, context_patches=ctx, backbone=backbone), notes


def _recorded_settings(weights: Path) -> tuple[dict, str]:
    """(settings, where they were read) from the file's header, else a config.json beside it; ({}, "") if none."""
    header = read_component_config(weights)
    if header is not None:
        component, config = header
        if component != COMPONENT:
            raise CheckpointError(f"{weights} holds the '{component}' component, not the Talker-T2AV generator")
        return _from_header(config), f"the header of {weights.name}"
    beside = weights.parent / CONFIG_NAME
    if not beside.is_file():
        return {}, ""
    try:
        data = json.loads(beside.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{beside} is not readable JSON ({error}); fix or remove it") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{beside} must hold a JSON object")
    return data, str(beside)


def _from_header(config: dict) -> dict:
    """A converted file's config (a TalkerConfig as JSON) in the config.json key names used above."""
    backbone = config.get("backbone", {})
    names = {"context_patches": config.get("context_patches"), "patch_size": config.get("patch_size"),
             "delay": config.get("delay"), "rope_theta": backbone.get("rope_theta"),
             "rms_norm_eps": backbone.get("eps"), "hidden_size": backbone.get("hidden"),
             "num_hidden_layers": backbone.get("layers")}
    return {key: value for key, value in names.items() if value is not None}


def _checked(value, where: str, check):
    try:
        return check(value)
    except CheckpointError as error:
        raise CheckpointError(f"{where}: {error}") from None


def _positive_number(key: str):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
            raise CheckpointError(f"{key} must be a positive number, got {value!r}")
        return float(value)
    return check


__all__ = ["resolve_config", "check_context_patches"]
