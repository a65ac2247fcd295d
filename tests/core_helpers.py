"""Shared test helpers: the tiny core fixture (cases + model), tolerance-checked and exact tensor comparisons."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import load_cases
from t2av_core.model.talker import TalkerT2AV, load_talker

TOL = dict(atol=1e-5, rtol=1e-5)  # modules, sampler, backbone (fixture README §6)
ROLLOUT_TOL = dict(atol=1e-4, rtol=1e-4)


def load_tiny_core(parity_dir: Path) -> tuple[dict, dict, TalkerT2AV]:
    """(manifest, tensors, model) of the tiny core fixture; a fresh model for each caller."""
    manifest, tensors = load_cases(parity_dir / "core", "core_tiny")
    return manifest, tensors, load_talker(parity_dir / "core" / "core_tiny.safetensors")


def assert_same_state_dict(a: dict, b: dict) -> None:
    """Same keys, dtypes and values, bit for bit."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, tol: dict = TOL) -> None:
    actual = actual.reshape(expected.shape).float()
    err = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert torch.allclose(actual, expected, **tol), f"{what}: max abs error {err:.3g} exceeds {tol}"

