"""Core model modules against the official fp32 reference numbers (tiny random weights)."""

from __future__ import annotations

import json

import pytest
import torch

from core_helpers import assert_close, load_tiny_core
from t2av_core.model.config import BackboneConfig, TalkerConfig, tiny_config
from t2av_core.model.qwen3 import Qwen3Model
from t2av_core.model.talker import TalkerT2AV


@pytest.fixture(scope="module")
def core(parity_dir):
    return load_tiny_core(parity_dir)


def test_config_inferred_from_tiny_file(core, parity_dir):
    _, _, model = core
    assert model.cfg == tiny_config()
    spec = json.loads((parity_dir / "core" / "core_tiny_config.json").read_text())
    assert model.cfg.patch_encoder.mlp_hidden == spec["patch_encoders"]["mlp_hidden"] == 341
    assert model.cfg.dit.n_heads == spec["dit"]["n_head"]
    assert model.cfg.backbone.n_kv_heads == spec["backbone"]["num_key_value_heads"]


def test_released_geometry_matches_real_key_inventory(parity_dir):
    inventory = json.loads((parity_dir / "core" / "core_real_keys.json").read_text())
    with torch.device("meta"):
        model = TalkerT2AV(TalkerConfig.released())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {e["key"]: tuple(e["shape"]) for e in inventory["keys"]}
    assert set(ours) - set(theirs) == set(), "keys the released file lacks"
    assert set(theirs) - set(ours) == set(), "keys of the released file we lack"
    assert ours == theirs
    assert len(ours) == inventory["n_tensors"] == 537
    assert sum(p.numel() for p in model.parameters()) == inventory["total_parameters"] == 912_301_128
    assert sum(b.numel() for b in model.buffers() if b.dim() == 3) == inventory["total_buffer_elements"]
    # and the shapes alone give back the released geometry
    assert TalkerConfig.from_state_dict(model.state_dict()) == TalkerConfig.released()


@pytest.mark.parametrize("head", ["speech", "motion"])
def test_patch_encoder_and_projector(core, head):
    _, t, model = core
    with torch.no_grad():
        pe = getattr(model, f"{head}_patch_encoder")(t[f"patch_encoder.{head}.input"])
        proj = getattr(model, f"projector_{head}")(t[f"projector.{head}.input"])
    assert_close(pe, t[f"patch_encoder.{head}.output"], f"{head} patch encoder")
    assert_close(proj, t[f"projector.{head}.output"], f"{head} projector")


def test_stop_head_and_task_embedding(core):
    _, t, model = core
    with torch.no_grad():
        logits = model.stop_logit(t["stop_head.input"])
    assert_close(logits, t["stop_head.logits"], "stop logits")
    assert_close(torch.sigmoid(logits), t["stop_head.probs"], "stop probs")
    assert_close(model.task_embedding(t["task_embedding.index"]), t["task_embedding.output"], "task embedding")


@pytest.mark.parametrize("case", ["dit.speech.dt0", "dit.speech.dtrand", "dit.motion.dt0", "dit.motion.dtrand"])
def test_dit_estimator(core, case):
    _, t, model = core
    est = getattr(model, f"{case.split('.')[1]}_cfm").estimator
    with torch.no_grad():
        out = est(*(t[f"{case}.{k}"] for k in ("x", "mu", "t", "cond", "global_cond", "dt")))
    assert_close(out, t[f"{case}.output"], case)


def test_backbone_full_pass(core):
    _, t, model = core
    bb = model.backbone
    x = t["backbone.inputs_embeds"]
    with torch.no_grad():
        assert_close(bb(x), t["backbone.last_hidden"], "backbone last hidden")
        # HF hidden_states[1] = residual stream after layer 0 (checks the layers, not only the end)
        cos, sin = bb.rotary(torch.arange(x.shape[1]), x.dtype)
        after0 = bb.layers[0](x, cos, sin, torch.arange(x.shape[1]), None)
    assert_close(after0, t["backbone.all_hidden_states"][1], "residual after layer 0")


def test_backbone_with_static_cache(core):
    _, t, model = core
    bb = model.backbone
    x = t["backbone.inputs_embeds"]
    cache = bb.new_cache(1, 16)  # larger than needed: stale/unwritten slots must be masked out
    with torch.no_grad():
        prefill = bb(x[:, :8], 0, cache)
        steps = [prefill[0, -1]] + [bb(x[:, p:p + 1], p, cache)[0, -1] for p in range(8, 12)]
    assert_close(prefill, t["backbone.cached.prefill_hidden"], "cached prefill")
    assert_close(torch.stack(steps), t["backbone.cached.step_hidden"], "cached steps")


def test_backbone_cache_overflow_is_reported(core):
    _, t, model = core
    bb = model.backbone
    with pytest.raises(ValueError, match="KV cache holds 4"):
        bb(t["backbone.inputs_embeds"][:, :5], 0, bb.new_cache(1, 4))


def test_backbone_wide_heads(core):
    manifest, t, _ = core
    geo = manifest["cases"]["backbone_wide"]["geometry"]
    cfg = BackboneConfig(hidden=geo["D"], layers=geo["layers"], n_heads=geo["n_q_heads"],
                         n_kv_heads=geo["n_kv_heads"], head_dim=geo["head_dim"], ffn=geo["intermediate_size"],
                         vocab=geo["vocab_size"])
    assert cfg.n_heads * cfg.head_dim != cfg.hidden
    model = Qwen3Model(cfg)
    prefix = "backbone_wide.weights.model."
    model.load_state_dict({k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}, strict=True)
    with torch.no_grad():
        out = model(t["backbone_wide.inputs_embeds"])
        from_ids = model(model.embed_tokens(t["backbone_wide.input_ids"]))
    assert_close(out, t["backbone_wide.last_hidden"], "wide backbone")
    assert_close(from_ids, t["backbone_wide.ids_last_hidden"], "wide backbone from ids")
