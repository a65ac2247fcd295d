"""Convolutions of 16-bit side models on the CPU, computed in float32.

torch 2.13's oneDNN bfloat16 convolutions return wrong values on some CPUs, with no error: on machines with
AVX-512 BF16 / AMX, ``conv1d`` from 8 to 16 channels with kernel 8 or 20 is off by more than the signal
itself (64 -> 128 channels happens to be right; with oneDNN switched off the same call is within 0.4 %).
oneDNN's bf16 kernels have a record of such shape-dependent faults, so probing a few shapes at load time
could not prove a layer right for every input length.

So a side model (audio VAE, LIA-X, speaker encoder) whose weights are 16-bit and on the CPU runs each
convolution in float32 inside :func:`float32_cpu_convolutions`: the input, weight and bias are upcast for
that one call and the result is cast back. That is right on every CPU and keeps the memory saving of 16-bit
weights. It is also much faster on AVX2-only CPUs, which have no bf16 arithmetic: conv1d 256 -> 256
channels, kernel 7, 2400 steps, one thread took 2.01 s in bf16 and 0.034 s this way (AMD EPYC, AVX2).
GPUs and float32 models are left alone (the context does nothing for them).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_CONVOLUTIONS = {torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
                 torch.conv_transpose3d}
_HALF = (torch.bfloat16, torch.float16)


def _upcast(value):
    if isinstance(value, torch.Tensor) and value.dtype in _HALF:
        return value.float()
    return value


class _Float32Convolutions(TorchFunctionMode):
    """While active (on this thread), a convolution whose input is a 16-bit CPU tensor runs in float32."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        x = args[0] if args else kwargs.get("input")
        if func in _CONVOLUTIONS and isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dtype in _HALF:
            out = func(*(_upcast(a) for a in args), **{k: _upcast(v) for k, v in kwargs.items()})
            return out.to(x.dtype)
        return func(*args, **kwargs)


def needs_float32_convolutions(module: nn.Module) -> bool:
    """True when ``module``'s weights are 16-bit on the CPU (read at each call: ComfyUI moves models)."""
    weight = next(module.parameters(), None)
    return weight is not None and weight.device.type == "cpu" and weight.dtype in _HALF


@contextmanager
def float32_cpu_convolutions(module: nn.Module) -> Iterator[None]:
    """Run the enclosed calls of ``module`` with float32 convolutions if its weights are 16-bit on the CPU.
    Keep the block to the model call itself (not around a ``yield``): the mode is per thread."""
    with _Float32Convolutions() if needs_float32_convolutions(module) else nullcontext():
        yield
