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
    and the tensors next to it load normally (:func:`plain_data` reads OmegaConf configs back from them);
  - the opcodes that change an existing object (BUILD, SETITEM(S), APPEND(S), ADDITEMS) only reach
    containers, tensors and placeholders made by the same load, never a class or function the whole
    process shares, so a refused file leaves nothing changed behind.

Public API: :func:`load_state_dict_file`, :func:`load_weights_and_hyper_parameters`, :func:`read_metadata`,
:func:`read_component_config`, :func:`save_component`, :func:`load_checkpoint_object`, :func:`plain_data`.
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

from t2av_core.atomic import atomic_write
from t2av_core.errors import CheckpointError, T2AVError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Wrappers in which training code commonly nests the actual state dict.
_NESTING_KEYS = ("state_dict", "model", "module", "model_state_dict", "generator")
METADATA_FORMAT = "t2av_core.component/1"

# (module, name) pairs that are rebuilt for real. Everything here only builds data.
_ALLOWED_GLOBALS: set[tuple[str, str]] = {
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("copyreg", "_reconstructor"),
    ("_codecs", "encode"), ("torch", "Size"), ("torch", "device"), ("torch.nn.parameter", "Parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    *(("torch._utils", f) for f in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
                                    "_rebuild_parameter", "_rebuild_parameter_with_state")),
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

    def __setitem__(self, key, value):  # list/dict-like objects are filled with SETITEM(S)/APPEND(S)
        self.__dict__.setdefault("_placeholder_items", {})[key] = value

    def append(self, value):
        self.__dict__.setdefault("_placeholder_list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("_placeholder_list", []).extend(values)

    add = append  # set-like objects are filled with ADDITEMS

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


def _unsafe(action: str, target: Any) -> CheckpointError:
    what = f"the shared {target.__name__}" if hasattr(target, "__name__") else f"a {type(target).__name__}"
    return CheckpointError(
        f"unsafe checkpoint: its pickle tries to {action} {what}, which no checkpoint needs (it could change "
        "how this program runs); the file was refused. Use a trusted file, or a .safetensors copy")


def _container(target: Any, kind: type) -> Any:
    """``target`` if it is a ``kind`` instance or a placeholder (both made by this load), else refused."""
    if isinstance(target, (kind, _Placeholder)):
        return target
    raise _unsafe("fill", target)


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler whose globals come only from :func:`resolve_global`.

    It is the pure-Python unpickler because only its opcodes can be replaced: the ones below that change an
    existing object accept only containers, tensors and placeholders, which are always made by this load.
    Classes and functions from the allow-list are shared by the whole process and must never change.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)

    def _build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, _Placeholder):
            target.__dict__["_placeholder_state"] = state
            return
        if not isinstance(target, (dict, list, set, torch.Tensor)):  # e.g. an OrderedDict's _metadata
            raise _unsafe("restore the state of", target)
        for part in state if isinstance(state, tuple) and len(state) == 2 else (state,):
            if part is None:
                continue
            if not isinstance(part, dict) or any(not isinstance(k, str) or k.startswith("__") for k in part):
                raise _unsafe("restore special attributes of", target)
            for key, value in part.items():
                setattr(target, key, value)

    def _setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        _container(self.stack[-1], dict)[key] = value

    def _setitems(self):
        items = self.pop_mark()
        target = _container(self.stack[-1], dict)
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _append(self):
        value = self.stack.pop()
        _container(self.stack[-1], list).append(value)

    def _appends(self):
        items = self.pop_mark()
        _container(self.stack[-1], list).extend(items)

    def _additems(self):
        items = self.pop_mark()
        target = _container(self.stack[-1], set)
        for item in items:
            target.add(item)

    def _extension(self):  # the copyreg extension registry is process-wide state; torch never uses it
        raise CheckpointError("unsafe checkpoint: its pickle uses the process-wide copyreg extension registry; "
                              "the file was refused. Use a trusted file, or a .safetensors copy")

    dispatch.update({pickle.BUILD[0]: _build, pickle.SETITEM[0]: _setitem, pickle.SETITEMS[0]: _setitems,
                     pickle.APPEND[0]: _append, pickle.APPENDS[0]: _appends, pickle.ADDITEMS[0]: _additems,
                     pickle.EXT1[0]: _extension, pickle.EXT2[0]: _extension, pickle.EXT4[0]: _extension})


# torch.load(pickle_module=...) needs a module-like object with Unpickler and load.
restricted_pickle = types.ModuleType("t2av_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = lambda file, **kw: RestrictedUnpickler(file, **kw).load()


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
    use_mmap = _uncompressed_zip(p)  # memory-map big zip-format checkpoints instead of copying them
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


def _uncompressed_zip(p: Path) -> bool:
    """True for a zip whose members are all stored as they are: torch memory-maps the file's bytes in place,
    which gives wrong values for a compressed (e.g. re-zipped with deflate) checkpoint."""
    try:
        with zipfile.ZipFile(p) as z:
            return all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return False  # not a zip (legacy format), or broken: torch.load reports it


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


def plain_data(obj: Any) -> Any:
    """Plain dicts, lists and scalars from loaded data, with OmegaConf configs read from their placeholders.

    Nothing is called or imported: only the recorded pickle state is read. OmegaConf 2.0 to 2.3 pickle every
    node as ``NEWOBJ()`` + ``BUILD(state)``; a DictConfig / ListConfig's state has ``_content`` (a
    ``{key: node}`` dict, a ``[node]`` list, None, or a string such as "???" or "${interpolation}"), a value
    node's (AnyNode, IntegerNode, ...) has ``_val``; ``_metadata`` and ``_parent`` are skipped. Anything
    else (other placeholders, tensors, enums) becomes None.
    """
    budget = [100_000]  # shared sub-objects could make a hostile file's tree exponentially large

    def read(x: Any, depth: int) -> Any:
        budget[0] -= 1
        if depth > 64 or budget[0] < 0:
            return None
        if isinstance(x, _Placeholder):
            state = x.__dict__.get("_placeholder_state")
            if not type(x).__module__.startswith("omegaconf.") or not isinstance(state, dict):
                return None
            x = state["_content"] if "_content" in state else state.get("_val")
        if isinstance(x, dict):
            return {k if isinstance(k, (str, int, float, bool)) else repr(k): read(v, depth + 1) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [read(v, depth + 1) for v in x]
        return x if x is None or isinstance(x, (bool, int, float, str)) else None

    return read(obj, 0)


def load_state_dict_file(path: str | os.PathLike, *, key_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file as a flat ``{name: tensor}`` dict on the CPU.

    Nested training checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped. With
    ``key_prefix`` only keys starting with it are kept, and the prefix is removed from their names.
    """
    return load_weights_and_hyper_parameters(path, key_prefix=key_prefix)[0]


def load_weights_and_hyper_parameters(path: str | os.PathLike, *, key_prefix: str | None = None
                                      ) -> tuple[dict[str, torch.Tensor], dict]:
    """:func:`load_state_dict_file` plus the training configuration a Lightning checkpoint keeps under
    ``hyper_parameters``, as :func:`plain_data` ({} for files without one, e.g. safetensors)."""
    p = _check_file(path)
    hyper: Any = {}
    if p.suffix == ".safetensors":
        sd = _load_safetensors(p)
    elif p.suffix in PICKLE_SUFFIXES:
        obj = load_checkpoint_object(p)
        sd = _unwrap(obj, p)
        if isinstance(obj, dict):
            hyper = plain_data(obj.get("hyper_parameters")) or {}
    else:
        raise CheckpointError(f"unsupported weights file type '{p.suffix}' for {p}; expected .safetensors, "
                              + ", ".join(PICKLE_SUFFIXES))
    if key_prefix:
        sd = {k[len(key_prefix):]: v for k, v in sd.items() if k.startswith(key_prefix)}
        if not sd:
            raise CheckpointError(f"{p} has no tensors under the prefix '{key_prefix}'")
    return sd, (hyper if isinstance(hyper, dict) else {})


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

    The file is written under a temporary name beside the target and renamed at the end (see
    ``t2av_core.atomic``): an interrupted or failed save leaves no file behind and an existing target as it
    was. Problems with the destination raise T2AVError saying what to fix.
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
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise T2AVError(f"cannot create the folder {p.parent}: {e.strerror or e}; choose another output "
                        "path") from e
    with atomic_write(p, "weights file") as tmp:
        mode = tmp.stat().st_mode & 0o777  # what the umask gives a new file; save_file would leave 0600
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as e:  # its I/O errors (disk full, ...) come as this type, not OSError
            raise T2AVError(f"could not write the weights file {p}: {e}. Nothing was written there; free "
                            "space or choose another folder and run again") from e
        os.chmod(tmp, mode)
