"""Loading and saving weight files without running code from them.

Supported inputs:

* ``.safetensors``: read directly (no pickle at all); its string metadata header is available via
  :func:`read_metadata`.
* ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` (torch.save pickles): first ``torch.load(weights_only=True)``.
  Files that refer to other classes (a Lightning ``.ckpt`` stores its OmegaConf hyper-parameters in the
  pickle) fall back to :class:`RestrictedUnpickler`, which never imports or calls anything outside a short
  allow-list:

  - real objects: the torch tensor / storage rebuild functions, ``torch.Size``, dtypes, devices,
    ``collections.OrderedDict`` / ``defaultdict``, plain builtin containers and scalars, and
    ``copyreg._reconstructor`` / ``_codecs.encode`` (needed to rebuild plain objects and bytes);
  - refused with :class:`CheckpointError`: any global from a module that can touch the system or run code
    (``os``, ``subprocess``, ``builtins.eval``, ``importlib``, non-allow-listed ``torch`` functions, ...);
  - everything else (``omegaconf.*``, ``typing.Any``, numpy scalars, ...) becomes an inert placeholder
    class: calling it, or restoring state into it, only records the arguments. Nothing of it is executed,
    and the tensors next to it load normally.

Public API: :func:`load_state_dict_file`, :func:`read_metadata`, :func:`read_component_config`,
:func:`save_component`, :func:`load_checkpoint_object`.
"""

from __future__ import annotations

import _compat_pickle
import json
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from t2av_core.errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Wrappers in which training code commonly nests the actual state dict.
_NESTING_KEYS = ("state_dict", "model", "module", "model_state_dict", "generator")
METADATA_FORMAT = "t2av_core.component/1"

# (module, name) pairs that are rebuilt for real. Everything here only builds data.
_ALLOWED_GLOBALS: set[tuple[str, str]] = {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
}
_ALLOWED_BUILTINS = {
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes",
    "bytearray", "slice", "object", "NoneType",
}
# Modules whose globals are refused outright: they can reach the OS, the interpreter or the network.
_REFUSED_MODULES = {
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib", "runpy", "pickle", "_pickle",
    "marshal", "ctypes", "code", "codeop", "pty", "webbrowser", "types", "functools", "operator", "io",
    "pathlib", "tempfile", "multiprocessing", "threading", "signal", "asyncio", "builtins", "__builtin__",
    "torch", "urllib", "http", "ftplib", "smtplib", "inspect", "gc", "weakref", "platform", "sysconfig",
    "pdb", "timeit", "trace", "zipimport", "site", "glob", "fileinput", "_io", "_os", "__main__",
}


class _Placeholder:
    """Stands in for a class the loader will not import (e.g. an OmegaConf DictConfig). Inert by design."""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_placeholder_args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_placeholder_state"] = state

    def __setitem__(self, key, value):  # list/dict-like objects are filled with SETITEM(S)/APPEND(S)
        self.__dict__.setdefault("_placeholder_items", {})[key] = value

    def append(self, value):
        self.__dict__.setdefault("_placeholder_list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("_placeholder_list", []).extend(values)

    def __repr__(self):
        return f"<placeholder for {type(self).__module__}.{type(self).__qualname__}>"


def _placeholder_class(module: str, name: str) -> type:
    return type(name, (_Placeholder,), {"__module__": module, "__qualname__": name})


def _module_root(module: str) -> str:
    return module.split(".", 1)[0]


def resolve_global(module: str, name: str) -> Any:
    """What the restricted unpickler returns for the global ``module.name`` (or CheckpointError)."""
    if (module, name) in _NAME_MAPPING_PY2:  # protocol-2 pickles use Python 2 names (__builtin__.long)
        module, name = _NAME_MAPPING_PY2[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    if module == "builtins" and name in _ALLOWED_BUILTINS:
        return type(None) if name == "NoneType" else getattr(__import__("builtins"), name)
    if (module, name) in _ALLOWED_GLOBALS:
        module_obj = __import__(module, fromlist=[name])
        return getattr(module_obj, name)
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if module == "torch" and name.endswith("Storage") and hasattr(torch, name):
        return getattr(torch, name)  # legacy typed storages; torch.load maps these itself in the zip format
    if module in _REFUSED_MODULES or _module_root(module) in _REFUSED_MODULES:
        raise CheckpointError(
            f"unsafe checkpoint: its pickle refers to {module}.{name}, which could run code on load; "
            "the file was refused and nothing in it was executed. Use a trusted file, or a .safetensors copy")
    return _placeholder_class(module, name)


_NAME_MAPPING_PY2 = dict(_compat_pickle.NAME_MAPPING)


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle.Unpickler whose globals come only from :func:`resolve_global`."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load.
restricted_pickle = types.ModuleType("t2av_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = lambda file, **kw: RestrictedUnpickler(file, **kw).load()
restricted_pickle.__name__ = "t2av_restricted_pickle"


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint file not found: {p}. Check the path or download the weights")
    if p.is_dir():
        raise CheckpointError(f"expected a weights file but {p} is a directory; pass the file inside it")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {p} is empty (0 bytes); the download is incomplete")
    return p


def _load_safetensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(p), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot read safetensors file {p}: {e}. The file is corrupt or truncated") from e


def load_checkpoint_object(path: str | os.PathLike) -> Any:
    """The raw object stored in a torch.save file, loaded without executing pickled code (see module doc)."""
    p = _check_file(path)
    use_mmap = zipfile.is_zipfile(p)  # memory-map big zip-format checkpoints instead of copying them
    try:
        return torch.load(p, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError:
        pass  # refers to classes beyond torch's allow-list (e.g. OmegaConf): retry with our unpickler
    except CheckpointError:
        raise
    except Exception as e:  # zip/record errors, truncated streams
        raise _unreadable(p, e) from e
    try:
        return torch.load(p, map_location="cpu", weights_only=False, pickle_module=restricted_pickle,
                          mmap=use_mmap)
    except CheckpointError:
        raise
    except Exception as e:
        raise _unreadable(p, e) from e


def _unreadable(p: Path, error: Exception) -> CheckpointError:
    return CheckpointError(f"cannot read checkpoint {p}: {error}. The file is corrupt, truncated or not a "
                           "PyTorch checkpoint")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    for _ in range(4):  # e.g. {"model": {"state_dict": {...}}}
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in _NESTING_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, dict) and obj:
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:  # a state dict with a few non-tensor extras (e.g. version numbers)
            return tensors
    found = sorted(obj.keys())[:10] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(f"{p} holds no state dict of tensors (found {found}); expected a model weights file")


def load_state_dict_file(path: str | os.PathLike, *, key_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file as a flat ``{name: tensor}`` dict on the CPU.

    Nested training checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped. With
    ``key_prefix`` only keys starting with it are kept, and the prefix is removed from their names.
    """
    p = _check_file(path)
    if p.suffix == ".safetensors":
        sd = _load_safetensors(p)
    elif p.suffix in PICKLE_SUFFIXES:
        sd = _unwrap(load_checkpoint_object(p), p)
    else:
        raise CheckpointError(f"unsupported weights file type '{p.suffix}' for {p}; expected .safetensors, "
                              + ", ".join(PICKLE_SUFFIXES))
    if key_prefix:
        sd = {k[len(key_prefix):]: v for k, v in sd.items() if k.startswith(key_prefix)}
        if not sd:
            raise CheckpointError(f"{p} has no tensors under the prefix '{key_prefix}'")
    return sd


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata header of a .safetensors file ({} when it has none)."""
    p = _check_file(path)
    if p.suffix != ".safetensors":
        raise CheckpointError(f"metadata can only be read from .safetensors files, not {p.name}")
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read safetensors header of {p}: {e}. The file is corrupt") from e


def read_component_config(path: str | os.PathLike) -> tuple[str, dict] | None:
    """(component, config) written by :func:`save_component`, or None for a file without that header."""
    meta = read_metadata(path) if Path(path).suffix == ".safetensors" else {}
    if "component" not in meta:
        return None
    try:
        return meta["component"], json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its metadata 'config' is not valid JSON ({e})") from e


def save_component(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], component: str,
                   config: dict) -> None:
    """Write ``state_dict`` as safetensors with a header naming the component and its config (as JSON).

    The file is written next to the target and renamed at the end, so an interrupted save never leaves a
    truncated file under the final name.
    """
    if not state_dict:
        raise CheckpointError(f"refusing to write an empty state dict for component '{component}'")
    seen: set[int] = set()
    tensors = {}
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"state dict entry '{name}' is a {type(t).__name__}, not a tensor")
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:  # safetensors refuses tensors that share memory
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    meta = {"format": METADATA_FORMAT, "component": component, "config": json.dumps(config, sort_keys=True)}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, p)
