import torch

from conftest import load_cases
from t2av_core.motion_stats import denormalize_motion, motion_stats, normalize_motion


def test_builtin_motion_stats_equal_the_official_ones(parity_dir):
    _, tensors = load_cases(parity_dir / "core", "core_tiny")
    mean, std = motion_stats()
    torch.testing.assert_close(mean, tensors["motion_mean"], rtol=0, atol=1e-9)
    torch.testing.assert_close(std, tensors["motion_std"], rtol=0, atol=1e-9)


def test_normalisation_round_trips():
    raw = torch.randn(7, 40)
    torch.testing.assert_close(denormalize_motion(normalize_motion(raw)), raw, rtol=1e-5, atol=1e-6)
