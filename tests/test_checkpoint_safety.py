"""The restricted unpickler must not let a refused file change anything in the process, and valid
torch.save variants (deflate-compressed zips, the legacy non-zip format) must still load."""

import copyreg
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict

import pytest
import torch
from torch import nn

from core_helpers import assert_same_state_dict
from t2av_core.checkpoint_io import load_checkpoint_object, load_state_dict_file
from t2av_core.errors import CheckpointError

_MISSING = object()


# ---- hand-made pickles -------------------------------------------------------------------------------

def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _text(s: str) -> bytes:
    data = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _build_attack(module: str, name: str, attribute: str, slots: bool) -> bytes:
    """GLOBAL module.name, then BUILD with {attribute: None} as slot state (setattr) or as dict state."""
    state = pickle.EMPTY_DICT + _text(attribute) + pickle.NONE + pickle.SETITEM
    if slots:
        state = pickle.NONE + state + pickle.TUPLE2
    return pickle.PROTO + b"\x02" + _global(module, name) + state + pickle.BUILD + pickle.STOP


# (module, name, attribute it would change, as slot state?)
ATTACKS = [
    ("torch", "TypedStorage", "__new__", True),  # through the legacy "...Storage" rule
    ("torch.nn.parameter", "Parameter", "__new__", True),
    ("torch._utils", "_rebuild_tensor_v2", "__defaults__", True),  # a Python function
    ("torch._utils", "_rebuild_parameter", "marker", False),  # a function's __dict__
    ("copyreg", "_reconstructor", "__defaults__", True),
]


def _target(module: str, name: str):
    return getattr(__import__(module, fromlist=[name]), name)


def _current(obj, attribute):
    if isinstance(obj, type):  # the raw class entry (e.g. the staticmethod wrapping __new__)
        return obj.__dict__.get(attribute, _MISSING)
    return obj.__dict__.get(attribute, _MISSING) if attribute == "marker" else getattr(obj, attribute)


def _restore(obj, attribute, value):
    """Undo a successful attack so that one regression does not break every later test."""
    if _current(obj, attribute) is value:
        return
    if value is _MISSING:
        delattr(obj, attribute)
    else:
        setattr(obj, attribute, value)


def _torch_zip_with_pickle(path, data: bytes):
    """A genuine torch.save zip whose data.pkl is replaced by ``data``."""
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, content in members:
            z.writestr(info, data if info.filename.endswith("/data.pkl") else content)


def _torch_still_works(tmp_path):
    t = torch.arange(6.0).reshape(2, 3)
    torch.save({"t": t, "p": nn.Parameter(torch.ones(2))}, tmp_path / "normal.pt")
    back = torch.load(tmp_path / "normal.pt")
    assert torch.equal(back["t"], t) and isinstance(back["p"], nn.Parameter)


@pytest.mark.parametrize("container", ["raw", "zip"])
@pytest.mark.parametrize("module, name, attribute, slots", ATTACKS)
def test_refused_pickle_cannot_change_shared_objects(tmp_path, container, module, name, attribute, slots):
    target = _target(module, name)
    before = _current(target, attribute)
    data = _build_attack(module, name, attribute, slots)
    path = tmp_path / "evil.ckpt"
    if container == "raw":
        path.write_bytes(data)
    else:
        _torch_zip_with_pickle(path, data)
    try:
        with pytest.raises(CheckpointError, match="unsafe checkpoint"):
            load_checkpoint_object(path)
        assert _current(target, attribute) is before
        _torch_still_works(tmp_path)
    finally:
        _restore(target, attribute, before)


def test_item_and_append_opcodes_cannot_reach_shared_objects(tmp_path):
    setitem = (pickle.PROTO + b"\x02" + _global("torch.nn.parameter", "Parameter") + _text("x") + pickle.NONE
               + pickle.SETITEM + pickle.STOP)
    append = (pickle.PROTO + b"\x02" + _global("copyreg", "_reconstructor") + pickle.NONE + pickle.APPEND
              + pickle.STOP)
    extension = pickle.PROTO + b"\x02" + pickle.EXT1 + b"\x07" + pickle.STOP  # copyreg's process-wide registry
    for i, data in enumerate((setitem, append, extension)):
        path = tmp_path / f"evil{i}.pt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="unsafe checkpoint"):
            load_checkpoint_object(path)
    assert "x" not in vars(nn.Parameter) and not hasattr(copyreg._reconstructor, "append")


# ---- valid files that take the restricted path ------------------------------------------------------------

class _Unimportable:  # saved under a module name that will not exist at load time
    def __init__(self):
        self.value = 3


def _save_with_unimportable(obj, path, **kwargs):
    mod = types.ModuleType("not_installed_anywhere_cfg")
    mod._Unimportable = _Unimportable
    _Unimportable.__module__ = mod.__name__
    sys.modules[mod.__name__] = mod
    try:
        torch.save({**obj, "extra": _Unimportable()}, path, **kwargs)
    finally:
        del sys.modules[mod.__name__]
        _Unimportable.__module__ = __name__


@pytest.mark.parametrize("zip_format", [True, False])
def test_restricted_path_keeps_state_dict_metadata(tmp_path, zip_format):
    sd = nn.Sequential(nn.Linear(3, 2)).state_dict()  # an OrderedDict with a _metadata attribute (BUILD)
    path = tmp_path / "model.pt"
    _save_with_unimportable({"state_dict": sd}, path, _use_new_zipfile_serialization=zip_format)
    obj = load_checkpoint_object(path)
    assert obj["extra"]._placeholder_state == {"value": 3}
    assert isinstance(obj["state_dict"], OrderedDict) and obj["state_dict"]._metadata == sd._metadata
    assert_same_state_dict(load_state_dict_file(path), dict(sd))


# ---- compressed zips --------------------------------------------------------------------------------

@pytest.mark.parametrize("restricted", [False, True])
def test_deflate_compressed_zip_loads_the_right_values(tmp_path, restricted):
    sd = {"w": torch.arange(3000.0).reshape(30, 100), "b": torch.linspace(-1, 1, 7).to(torch.bfloat16)}
    plain = tmp_path / "plain.pt"
    if restricted:
        _save_with_unimportable({"state_dict": sd}, plain)
    else:
        torch.save(sd, plain)
    squeezed = tmp_path / "squeezed.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert squeezed.stat().st_size < plain.stat().st_size
    assert_same_state_dict(load_state_dict_file(squeezed), sd)
