"""Loading LIA-X weights: the released geometry (on the meta device), safe and strict file loading."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from t2av_core.errors import CheckpointError
from t2av_core.video.lia_x import LiaX, LiaXConfig, build_lia_x, load_lia_x


@pytest.fixture(scope="module")
def folder(parity_dir):
    return parity_dir / "codecs" / "lia_x"


@pytest.fixture(scope="module")
def tiny_sd(folder):
    return load_file(str(folder / "lia_x_tiny.safetensors"))


def test_released_geometry_matches_the_real_key_inventory(folder):
    inventory = json.loads((folder / "lia_x_real_keys.json").read_text())
    with torch.device("meta"):
        model = LiaX(LiaXConfig.released())
    sd = model.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in inventory["keys"]]
    buffers = {name for name, _ in model.named_buffers()}
    assert buffers == {e["key"] for e in inventory["keys"] if e["kind"] == "buffer"}
    assert len(sd) == inventory["n_tensors"] == 596
    assert sum(p.numel() for p in model.parameters()) == inventory["parameter_count"] == 910_571_751
    assert sum(b.numel() for b in model.buffers()) == inventory["buffer_elements"] == 656
    assert LiaXConfig.from_state_dict(sd) == LiaXConfig.released()
    assert LiaXConfig.released().image_size == 512


def test_tiny_geometry_is_read_from_the_shapes(folder, tiny_sd):
    info = json.loads((folder / "lia_x_tiny_config.json").read_text())
    cfg = LiaXConfig.from_state_dict(tiny_sd)
    assert cfg.style_dim == info["style_dim"] and cfg.motion_dim == info["motion_dim"]
    assert list(cfg.decoder_channels) == info["level_channels_decoder"]
    assert cfg.input_size == info["constant_input_size"] and cfg.image_size == info["resolution"]


def test_pt_and_safetensors_load_the_same_weights(folder, tiny_sd, tmp_path):
    pt = tmp_path / "lia-x.pt"
    torch.save(tiny_sd, pt)
    a = load_lia_x(pt).model.state_dict()
    b = load_lia_x(folder / "lia_x_tiny.safetensors").model.state_dict()
    assert a.keys() == b.keys() == tiny_sd.keys()
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], tiny_sd[k]) for k in a)
    assert torch.equal(b["dec.rgb_512.up.kernel"], tiny_sd["dec.rgb_512.up.kernel"])  # buffers come from the file


def test_a_training_wrapper_is_unwrapped(tiny_sd, tmp_path):
    wrapped = tmp_path / "lia-x-train.pt"
    torch.save({"state_dict": tiny_sd, "epoch": 7}, wrapped)
    loaded = load_lia_x(wrapped).model.state_dict()
    assert loaded.keys() == tiny_sd.keys() and all(torch.equal(loaded[k], tiny_sd[k]) for k in loaded)


def test_dtype_is_applied(tiny_sd):
    model = build_lia_x(dict(tiny_sd), dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.state_dict().values())


def _error(sd) -> str:
    with pytest.raises(CheckpointError) as info:
        build_lia_x(sd)
    return str(info.value)


def test_missing_buffer_is_named(tiny_sd):
    sd = dict(tiny_sd)
    del sd["dec.flow3.up.kernel"]
    assert "missing" in _error(sd) and "dec.flow3.up.kernel" in _error(sd)


def test_missing_geometry_key_says_not_lia_x(tiny_sd):
    sd = dict(tiny_sd)
    del sd["dec.direction.weight"]
    message = _error(sd)
    assert "not a LIA-X checkpoint" in message and "dec.direction.weight" in message


def test_wrong_rank_of_a_geometry_key(tiny_sd):
    sd = dict(tiny_sd)
    sd["dec.direction.weight"] = torch.zeros(48)
    assert "not a LIA-X checkpoint" in _error(sd)


def test_wrong_shape_is_named(tiny_sd):
    sd = dict(tiny_sd)
    sd["dec.conv3_2.1.norm.weight"] = torch.zeros(31)
    message = _error(sd)
    assert "wrong shapes" in message and "dec.conv3_2.1.norm.weight" in message


def test_unexpected_key_is_named(tiny_sd):
    sd = dict(tiny_sd)
    sd["dec.extra.weight"] = torch.zeros(3)
    assert "dec.extra.weight" in _error(sd)


def test_integer_tensor_is_refused(tiny_sd):
    sd = dict(tiny_sd)
    sd["dec.rgb2.bias"] = sd["dec.rgb2.bias"].long()
    assert "floating point" in _error(sd)


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused(tiny_sd, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "lia-x.pt"
    torch.save({**tiny_sd, "evil": _Payload(str(marker))}, bad)
    with pytest.raises(CheckpointError, match="unsafe checkpoint"):
        load_lia_x(bad)
    assert not marker.exists()


def test_bad_files_are_refused(tmp_path, tiny_sd):
    with pytest.raises(CheckpointError, match="not found"):
        load_lia_x(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_lia_x(garbage)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, wrapped)
    with pytest.raises(CheckpointError, match="not a LIA-X checkpoint"):
        load_lia_x(wrapped)
    no_tensors = tmp_path / "no_tensors.pt"
    torch.save({"step": 3, "name": "lia"}, no_tensors)
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        load_lia_x(no_tensors)
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a LIA-X checkpoint"):
        load_lia_x(other)


def test_another_component_is_named_as_not_lia_x(parity_dir):
    """The audio VAE file given as LIA-X: the message names the missing key, not 'unexpected tensor ranks'."""
    audio_vae = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"
    with pytest.raises(CheckpointError) as info:
        load_lia_x(audio_vae)
    message = str(info.value)
    assert "not a LIA-X checkpoint" in message and "'dec.direction.weight' is missing" in message
    assert "ranks" not in message and message.count("not a LIA-X checkpoint") == 1
