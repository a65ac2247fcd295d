"""WavLM against the official s3prl numbers (codecs/speaker fixtures, tolerances from their README §7)."""

import pytest
import torch

from conftest import load_cases
from t2av_core.speaker.encoder import load_speaker_encoder
from t2av_core.speaker.wavlm import num_frames, relative_position_bucket

WAVES = ["w1200", "w370", "w4000"]
WAVLM_TOL = dict(atol=3e-5, rtol=3e-5)


@pytest.fixture(scope="module")
def fixtures(parity_dir):
    folder = parity_dir / "codecs" / "speaker"
    manifest, tensors = load_cases(folder, "speaker_tiny")
    wavlm = load_speaker_encoder(folder / "speaker_tiny.safetensors").net.wavlm
    return manifest["cases"], tensors, wavlm


def _case(fixtures, name):
    cases, tensors, _ = fixtures
    case = cases[name]
    return ({k: tensors[v] for k, v in case["inputs"].items()},
            {k: tensors[v] for k, v in case["expected"].items()}, case["settings"])


@pytest.mark.parametrize("wave", WAVES)
@torch.no_grad()
def test_feature_extractor_matches_reference(fixtures, wave):
    wavlm = fixtures[2]
    inputs, expected, settings = _case(fixtures, f"wavlm.feature_extractor.{wave}")
    normalized = wavlm.normalize(inputs["wave"])
    torch.testing.assert_close(normalized, expected["wave_normalized"], atol=1e-5, rtol=1e-5)
    conv = wavlm.feature_extractor(normalized)
    assert conv.shape[2] == settings["frames"] == num_frames(settings["samples"])
    torch.testing.assert_close(conv, expected["conv_features"], **WAVLM_TOL)
    torch.testing.assert_close(wavlm.layer_norm(conv.transpose(1, 2)), expected["features_ln"], **WAVLM_TOL)
    torch.testing.assert_close(wavlm.project(normalized), expected["projected"], **WAVLM_TOL)


@pytest.mark.parametrize("wave", WAVES)
@torch.no_grad()
def test_hidden_states_match_reference(fixtures, wave):
    wavlm = fixtures[2]
    inputs, expected, settings = _case(fixtures, f"wavlm.hidden_states.{wave}")
    projected = wavlm.project(wavlm.normalize(inputs["wave"]))
    pos = wavlm.encoder.pos_conv(projected)
    torch.testing.assert_close(pos.transpose(1, 2), expected["pos_conv"], **WAVLM_TOL)
    hidden = wavlm(inputs["wave"])
    assert hidden.shape == expected["hidden_states"].shape
    assert hidden.shape[0] == settings["n_hidden_states"] and hidden.shape[2] == settings["frames"]
    torch.testing.assert_close(hidden, expected["hidden_states"], **WAVLM_TOL)
    # Entry 0 is exactly the projected features plus the positional term.
    torch.testing.assert_close(hidden[0], projected + pos, atol=0, rtol=0)
    if "rel_pos_bias" in expected:
        bias = wavlm.encoder.layers[0].self_attn.position_bias(settings["frames"])
        torch.testing.assert_close(bias, expected["rel_pos_bias"], atol=1e-6, rtol=1e-6)


def test_relative_position_buckets_are_exact(fixtures):
    inputs, expected, settings = _case(fixtures, "wavlm.rel_bucket")
    buckets = relative_position_bucket(inputs["relative_position"], settings["num_buckets"], settings["max_distance"])
    assert buckets.dtype == torch.int64
    assert torch.equal(buckets, expected["bucket"])


def test_frame_count_formula():
    assert [num_frames(n) for n in (0, 399, 400, 719, 720, 480000)] == [0, 0, 1, 1, 2, 1499]
