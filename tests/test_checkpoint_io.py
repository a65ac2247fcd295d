"""Safe weight-file loading: real files written here and the Lightning-style fixture, plus hostile pickles."""

import os
import pickle
import subprocess
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import save_file

from core_helpers import assert_same_state_dict
from t2av_core.checkpoint_io import (load_checkpoint_object, load_state_dict_file,
                                     load_weights_and_hyper_parameters, plain_data, read_component_config,
                                     read_metadata, save_component)
from t2av_core.errors import CheckpointError


def _sd():
    g = torch.Generator().manual_seed(0)
    return OrderedDict([("enc.weight", torch.randn(4, 3, generator=g)), ("enc.bias", torch.randn(4, generator=g)),
                        ("dec.weight", torch.randn(2, 4, generator=g).to(torch.bfloat16))])


# ---- hostile pickles -------------------------------------------------------------------------------

class _ShellPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _SubprocessPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", self.marker],)


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({self.marker!r}, 'w').write('pwned')",)


def write_marker(path):  # a module-level function: its global is neither allow-listed nor refused
    with open(path, "w") as f:
        f.write("pwned")


class _UnknownFunctionPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return write_marker, (self.marker,)


@pytest.mark.parametrize("payload", [_ShellPayload, _SubprocessPayload, _EvalPayload])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": _sd(), "hyper_parameters": payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="unsafe checkpoint"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_malicious_plain_pickle_with_pt_suffix_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_ShellPayload(str(marker)), protocol=2))  # legacy (non-zip) stream
    with pytest.raises(CheckpointError):
        load_state_dict_file(path)
    assert not marker.exists()


def test_unknown_callable_becomes_inert_placeholder(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": _sd(), "callback": _UnknownFunctionPayload(str(marker))}, path)
    obj = load_checkpoint_object(path)
    assert not marker.exists()  # the function was never called
    assert "placeholder" in repr(obj["callback"])
    assert_same_state_dict(load_state_dict_file(path), _sd())


# ---- Lightning-style checkpoints -------------------------------------------------------------------

@contextmanager
def _fake_omegaconf():
    """A DictConfig class importable only inside the block: what torch.save writes with it cannot be imported
    afterwards, as on a user's machine without the training code."""
    mod = types.ModuleType("fake_omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = content
            self._flags = {"readonly": False}

    DictConfig.__module__ = mod.__name__
    DictConfig.__qualname__ = "DictConfig"
    mod.DictConfig = DictConfig
    package = types.ModuleType("fake_omegaconf")
    package.dictconfig = mod
    sys.modules.update({"fake_omegaconf": package, mod.__name__: mod})
    try:
        yield mod
    finally:
        del sys.modules[mod.__name__], sys.modules["fake_omegaconf"]


def test_lightning_ckpt_with_unimportable_classes_loads(tmp_path):
    path = tmp_path / "model.ckpt"
    with _fake_omegaconf() as mod:
        cfg = mod.DictConfig({"model": {"ratios": [2, 4, 10, 12]}, "sr": 24000})
        torch.save({"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.1.0", "state_dict": _sd(),
                    "hyper_parameters": {"cfg": cfg}, "optimizer_states": [], "lr_schedulers": []}, path)
    with pytest.raises(pickle.UnpicklingError):  # the standard safe mode refuses this file ...
        torch.load(path, weights_only=True)
    assert_same_state_dict(load_state_dict_file(path), _sd())  # ... the restricted unpickler still reads the tensors
    obj = load_checkpoint_object(path)
    assert obj["global_step"] == 1200
    assert obj["hyper_parameters"]["cfg"]._placeholder_state["_content"]["sr"] == 24000


def test_fixture_lightning_ckpt(parity_dir):
    folder = parity_dir / "codecs" / "audio_vae"
    obj = load_checkpoint_object(folder / "audio_vae_tiny.ckpt")
    assert sorted(obj) == sorted(["epoch", "global_step", "pytorch-lightning_version", "state_dict",
                                  "hyper_parameters", "optimizer_states", "lr_schedulers"])
    assert obj["global_step"] == 480000
    assert type(obj["hyper_parameters"]["cfg"]).__module__ == "omegaconf.dictconfig"
    sd = load_state_dict_file(folder / "audio_vae_tiny.ckpt")
    assert len(sd) == 309
    ref = load_state_dict_file(folder / "audio_vae_tiny.safetensors")
    assert len(ref) == 281 and set(ref) <= set(sd)
    assert {k for k in sd if k not in ref} == {k for k in sd if k.startswith("semantic_model.decoder.")}
    for k, v in ref.items():
        assert torch.equal(sd[k], v), k


def test_omegaconf_hyper_parameters_read_back_as_plain_data(parity_dir):
    """The fixture .ckpt was written with the real omegaconf 2.3.0; its cfg comes back without importing it."""
    import json
    folder = parity_dir / "codecs" / "audio_vae"
    official = json.loads((folder / "audio_vae_tiny_config.json").read_text())["cfg"]
    sd, hyper = load_weights_and_hyper_parameters(folder / "audio_vae_tiny.ckpt")
    assert hyper == {"cfg": official} and len(sd) == 309
    assert plain_data(load_checkpoint_object(folder / "audio_vae_tiny.ckpt")["hyper_parameters"]["cfg"]) == official
    assert load_weights_and_hyper_parameters(folder / "audio_vae_tiny.safetensors")[1] == {}


def test_plain_data_never_follows_other_placeholders(tmp_path):
    with _fake_omegaconf() as mod:
        torch.save({"state_dict": _sd(), "hyper_parameters": {"cfg": mod.DictConfig({"a": 1}), "n": [1, 2.5]}},
                   tmp_path / "x.ckpt")
    hyper = load_weights_and_hyper_parameters(tmp_path / "x.ckpt")[1]
    assert hyper == {"cfg": None, "n": [1, 2.5]}  # not an omegaconf class: unreadable, so None


def test_key_prefix_strips_and_filters(parity_dir):
    path = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.ckpt"
    enc = load_state_dict_file(path, key_prefix="semantic_model.encoder.")
    assert len(enc) == 37 and "positional_embedding" in enc and enc["positional_embedding"].shape == (1500, 64)
    with pytest.raises(CheckpointError, match="prefix"):
        load_state_dict_file(path, key_prefix="nothing.here.")


@pytest.mark.parametrize("wrapper", ["model", "state_dict", None])
def test_pth_nested_and_flat(tmp_path, wrapper):
    path = tmp_path / "w.pth"
    torch.save(_sd() if wrapper is None else {wrapper: _sd(), "optimizer": {"lr": 1e-4}}, path)
    assert_same_state_dict(load_state_dict_file(path), _sd())


# ---- safetensors and metadata ----------------------------------------------------------------------

def test_save_component_roundtrip_with_metadata(tmp_path):
    path = tmp_path / "sub" / "c.safetensors"
    base = torch.arange(12.0)
    sd = dict(_sd(), tied_a=base[:6], tied_b=base[6:].view(2, 3))  # views of one storage
    save_component(path, sd, "audio_vae", {"z_dim": 32, "ratios": [2, 4]})
    back = load_state_dict_file(path)
    assert_same_state_dict(back, {k: v.contiguous() for k, v in sd.items()})
    meta = read_metadata(path)
    assert meta["component"] == "audio_vae"
    assert read_component_config(path) == ("audio_vae", {"z_dim": 32, "ratios": [2, 4]})
    assert not list(path.parent.glob("*.partial"))


def test_plain_safetensors_has_no_component(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"a": torch.ones(2)}, str(path))
    assert read_metadata(path) == {}
    assert read_component_config(path) is None


# ---- bad files -------------------------------------------------------------------------------------

def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict_file(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        load_state_dict_file(tmp_path)
    with pytest.raises(CheckpointError, match="directory"):
        read_metadata(tmp_path)


def test_empty_and_unsupported_files(tmp_path):
    (tmp_path / "e.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_state_dict_file(tmp_path / "e.ckpt")
    (tmp_path / "w.onnx").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="unsupported"):
        load_state_dict_file(tmp_path / "w.onnx")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="only be read from .safetensors"):
        read_metadata(tmp_path / "w.pt")


def test_truncated_and_corrupt_files(tmp_path, parity_dir):
    folder = parity_dir / "codecs" / "audio_vae"
    for name in ("audio_vae_tiny.safetensors", "audio_vae_tiny.ckpt"):
        data = (folder / name).read_bytes()
        cut = tmp_path / name
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError):
            load_state_dict_file(cut)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        load_state_dict_file(junk)
    bad_header = tmp_path / "bad.safetensors"
    bad_header.write_bytes((200).to_bytes(8, "little") + b"{not json" + b" " * 191)
    with pytest.raises(CheckpointError):
        load_state_dict_file(bad_header)
    with pytest.raises(CheckpointError):
        read_metadata(bad_header)


def test_file_without_tensors(tmp_path):
    path = tmp_path / "cfg.pt"
    torch.save({"lr": 1e-3, "epochs": 3}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        load_state_dict_file(path)
