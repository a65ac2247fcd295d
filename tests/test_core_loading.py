"""Strict checkpoint loading: what loads, and the plain-words errors for what does not."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from core_helpers import assert_close
from t2av_core.errors import CheckpointError
from t2av_core.model.config import TalkerConfig
from t2av_core.model.talker import load_talker


@pytest.fixture(scope="module")
def tiny_sd(parity_dir):
    return load_file(str(parity_dir / "core" / "core_tiny.safetensors"))


def _save(tmp_path, sd, name="model.safetensors"):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_folder_and_bf16_file_load(tmp_path, tiny_sd, parity_dir):
    _save(tmp_path, {k: v.to(torch.bfloat16) for k, v in tiny_sd.items()})
    model = load_talker(tmp_path)  # a folder holding model.safetensors
    assert model.task_embedding.weight.dtype == torch.float32
    assert_close(model.task_embedding.weight, tiny_sd["task_embedding.weight"], "bf16 round trip",
                 dict(atol=1e-2, rtol=1e-2))
    half = load_talker(parity_dir / "core" / "core_tiny.safetensors", dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in half.parameters())
    assert not any(t.is_meta for t in list(half.parameters()) + list(half.buffers())), "nothing left on meta"


def test_tied_lm_head_in_file_is_accepted(tmp_path, tiny_sd):
    sd = dict(tiny_sd, **{"llm.lm_head.weight": tiny_sd["llm.model.embed_tokens.weight"].clone()})
    load_talker(_save(tmp_path, sd))


def test_missing_and_unexpected_keys_are_listed(tmp_path, tiny_sd):
    sd = {k: v for k, v in tiny_sd.items() if k != "head_stop.head.weight"}
    sd["speech_cfm.estimator.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        load_talker(_save(tmp_path, sd))
    msg = str(err.value)
    assert "1 missing tensors: head_stop.head.weight" in msg
    assert "1 unexpected tensors: speech_cfm.estimator.extra.weight" in msg


def test_shape_mismatch_is_reported(tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    sd["task_embedding.weight"] = torch.zeros(3, 128)  # infers 3 task rows, fine, so break a fixed shape instead
    sd["motion_pad_emb"] = torch.zeros(1, 2, 128)
    with pytest.raises(CheckpointError, match=r"motion_pad_emb: file has \(1, 2, 128\), model expects \(1, 1, 128\)"):
        load_talker(_save(tmp_path, sd))


def test_wrong_file_kinds(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_talker(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_talker(tmp_path)
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="only .safetensors"):
        load_talker(tmp_path / "model.ckpt")
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_talker(tmp_path)


def test_other_model_file_is_rejected(tmp_path):
    path = _save(tmp_path, {"encoder.conv.weight": torch.zeros(4, 4)})
    with pytest.raises(CheckpointError, match="not a Talker-T2AV generator checkpoint"):
        load_talker(path)


def test_config_inference_from_shapes_only(tiny_sd):
    cfg = TalkerConfig.from_state_dict(tiny_sd)
    assert (cfg.backbone.n_heads, cfg.backbone.n_kv_heads, cfg.backbone.head_dim) == (4, 2, 32)
    assert (cfg.patch_encoder.n_heads, cfg.dit.n_heads, cfg.dit.layers, cfg.patch_encoder.layers) == (4, 4, 2, 2)
    assert (cfg.speech_dim, cfg.motion_dim, cfg.speaker_dim, cfg.backbone.vocab) == (32, 40, 256, 1024)


# ---------------------------------------------------------------- settings the shapes do not show


def _with_config(tmp_path, tiny_sd, config: dict | None):
    path = _save(tmp_path, tiny_sd)
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    return path


def test_context_patches_comes_from_the_checkpoint_config(tmp_path, tiny_sd):
    # a training-argument config.json beside the weights, as Talker-T2AV's training writes them
    path = _with_config(tmp_path, tiny_sd, {"context_patches": 2, "patch_size": 4, "delay": 0,
                                            "speech_embedding_dim": 32, "hidden_size": 128, "rope_theta": 5e5})
    model = load_talker(path)
    assert model.cfg.context_patches == 2 and model.cfg.backbone.rope_theta == 5e5
    assert any("context_patches = 2 (from" in note and "config.json" in note for note in model.config_notes)
    override = load_talker(path, context_patches=3)
    assert override.cfg.context_patches == 3 and "context_patches = 3 (set by you)" in override.config_notes


def test_without_a_recorded_value_the_released_one_is_used_and_said(tmp_path, tiny_sd):
    model = load_talker(_with_config(tmp_path, tiny_sd, None))
    assert model.cfg.context_patches == 1
    assert model.config_notes == ["context_patches = 1 (not recorded in the checkpoint: the released value)"]


def test_context_patches_changes_what_is_generated(tmp_path, tiny_sd):
    from t2av_core.generate import GenerationSettings, generate_av
    path = _with_config(tmp_path, tiny_sd, None)
    inputs = dict(prompt_ids=torch.arange(20), voice=torch.randn(256), face_motion=torch.randn(8, 40),
                  ref_audio_latents=torch.randn(8, 32))
    settings = GenerationSettings(max_seconds=0.48, prefix_seconds=0.32, use_stop=False)
    one, two = (generate_av(load_talker(path, context_patches=c), settings=settings, **inputs) for c in (1, 2))
    assert (one.audio[8:] - two.audio[8:]).abs().max() > 1e-3, "a wrong context_patches silently changes the output"


@pytest.mark.parametrize("config,message", [
    ({"hidden_size": 1024}, "hidden_size = 1024, but the weights"),
    ({"num_hidden_layers": 28}, "num_hidden_layers = 28"),
    ({"patch_size": 8}, "only with the released patch_size = 4"),
    ({"delay": 5}, "released delay = 0"),
    ({"context_patches": 0}, "context_patches must be a whole number from 1"),
    ({"context_patches": 1.5}, "context_patches must be a whole number"),
    ({"rope_theta": -1}, "rope_theta must be a positive number"),
    ([1, 2], "must hold a JSON object"),
])
def test_a_config_that_does_not_fit_the_weights_is_refused(tmp_path, tiny_sd, config, message):
    with pytest.raises(CheckpointError, match=message):
        load_talker(_with_config(tmp_path, tiny_sd, config))


def test_unreadable_config_is_refused(tmp_path, tiny_sd):
    path = _save(tmp_path, tiny_sd)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not readable JSON"):
        load_talker(path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="context_patches must be"):
        load_talker(path, context_patches=-1)


def test_converted_file_keeps_the_recorded_settings(tmp_path, tiny_sd):
    from t2av_core.convert import convert
    source = _with_config(tmp_path, tiny_sd, {"context_patches": 2})
    converted = tmp_path / "out" / "talker.safetensors"
    converted.parent.mkdir()
    assert convert("talker", source, converted)["context_patches"] == 2
    model = load_talker(converted)  # no config.json beside it: the header says it
    assert model.cfg.context_patches == 2 and "header" in model.config_notes[0]
    assert convert("talker", source, converted, options={"context_patches": 3})["context_patches"] == 3
