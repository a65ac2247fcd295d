"""Strict checkpoint loading: what loads, and the plain-words errors for what does not."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from core_helpers import assert_close, single_thread  # noqa: F401  (autouse)
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
