"""Shared helpers for the core tests: the tiny fixture model and its cases (loaded once per session)."""

from __future__ import annotations

import torch

TOL = dict(atol=1e-5, rtol=1e-5)  # modules, sampler, backbone (fixture README §6)
ROLLOUT_TOL = dict(atol=1e-4, rtol=1e-4)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, tol: dict = TOL) -> None:
    actual = actual.reshape(expected.shape).float()
    err = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert torch.allclose(actual, expected, **tol), f"{what}: max abs error {err:.3g} exceeds {tol}"
