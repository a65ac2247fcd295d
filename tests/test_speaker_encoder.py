"""End-to-end speaker encoder: loading (.pth and .safetensors, strict), embeddings, the Talker input path,
bad files and bad audio. Numbers from codecs/speaker (README §7: embeddings 1e-4, inputs 1e-5)."""

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import load_cases
from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.interfaces import SPEAKER_DIM, SpeakerEncoder
from t2av_core.speaker.encoder import (
    WavLMEcapa, configs_from_state_dict, load_speaker_encoder, module_key_to_checkpoint, released_configs,
    talker_speaker_input, talker_speech_frames)

EMB_TOL = dict(atol=1e-4, rtol=1e-4)
WAVLM_TOL = dict(atol=3e-5, rtol=3e-5)


@pytest.fixture(scope="module")
def folder(parity_dir):
    return parity_dir / "codecs" / "speaker"


@pytest.fixture(scope="module")
def cases(folder):
    manifest, tensors = load_cases(folder, "speaker_tiny")
    return {name: ({k: tensors[v] for k, v in c["inputs"].items()},
                   {k: tensors[v] for k, v in c["expected"].items()}, c["settings"])
            for name, c in manifest["cases"].items()}


@pytest.fixture(scope="module")
def encoder(folder):
    return load_speaker_encoder(folder / "speaker_tiny.pth")  # the released {"model": state_dict} form


def test_encoder_implements_the_protocol(encoder):
    assert isinstance(encoder, SpeakerEncoder)
    assert encoder.sample_rate == 16000


@pytest.mark.parametrize("wave", ["w1200", "w370", "w4000"])
@torch.no_grad()
def test_embedding_matches_reference(encoder, cases, wave):
    inputs, expected, _ = cases[f"speaker.embed.{wave}"]
    net = encoder.net
    feat = net.head.mix_hidden_states(net.wavlm(inputs["wave"]))
    torch.testing.assert_close(feat, expected["feat"], **WAVLM_TOL)
    emb = encoder.embed(inputs["wave"][0])
    assert emb.shape == (SPEAKER_DIM,) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, expected["embedding"][0], **EMB_TOL)


@torch.no_grad()
def test_batch_of_equal_length_waves(encoder, cases):
    inputs, expected, _ = cases["speaker.embed.batch2"]
    torch.testing.assert_close(encoder.net(inputs["wave"]), expected["embedding"], **EMB_TOL)


@pytest.mark.parametrize("name", ["t24a", "t24trap"])
def test_talker_input_path(encoder, cases, name):
    _, expected, settings = cases[f"speaker.talker_path.{name}"]
    wave16k = expected["wave_16k"][0]
    assert talker_speech_frames(wave16k.numel()) == expected["speech_len"].item() == settings["speech_len"]
    spk_input = talker_speaker_input(wave16k)
    assert spk_input.shape == (settings["samples_consumed"],)
    torch.testing.assert_close(spk_input, expected["spk_input"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder.embed(spk_input), expected["embedding"][0], **EMB_TOL)


def test_float_frame_count_trap():
    # The reference's int(n16 / 16000 * 25) drops a frame at 18,560 samples and 36 other exact multiples of 640.
    assert talker_speech_frames(18560) == 28 and 18560 // 640 == 29
    dropped = [k for k in range(1, 751) if talker_speech_frames(k * 640) != k]
    assert len(dropped) == 37 and dropped[:7] == [29, 57, 58, 113, 114, 115, 116]
    assert talker_speech_frames(10**7) == 750 and talker_speech_frames(100) == 1


def test_talker_input_cuts_to_30_s_and_whole_frames():
    wave = torch.sin(torch.arange(31 * 16000) * 0.05)
    assert talker_speaker_input(wave).shape == (480000,)
    assert talker_speaker_input(wave[:1300]).shape == (1280,)
    with pytest.raises(T2AVError, match="too short"):
        talker_speaker_input(wave[:1279])  # one 40 ms frame -> 640 samples -> a single WavLM frame


def test_safetensors_loads_the_same_model_as_pth(encoder, folder, cases):
    other = load_speaker_encoder(folder / "speaker_tiny.safetensors")
    a, b = encoder.net.state_dict(), other.net.state_dict()
    assert a.keys() == b.keys() and len(a) == 311
    assert all(torch.equal(a[k], b[k]) for k in a)
    inputs, expected, _ = cases["speaker.embed.w370"]
    torch.testing.assert_close(other.embed(inputs["wave"][0]), expected["embedding"][0], **EMB_TOL)


def test_released_size_keys_and_shapes_match_inventory(folder):
    inventory = json.loads((folder / "speaker_real_keys.json").read_text())["keys"]
    expected = {e["key"]: tuple(e["shape"]) for e in inventory}
    with torch.device("meta"):
        net = WavLMEcapa(*released_configs())
    sd = net.state_dict()
    got = {module_key_to_checkpoint(k): tuple(v.shape) for k, v in sd.items()}
    assert len(expected) == 710
    assert got == expected
    dtypes = {e["key"]: e["dtype"] for e in inventory}
    assert all(str(sd[k].dtype).removeprefix("torch.") == dtypes[module_key_to_checkpoint(k)] for k in sd)
    assert configs_from_state_dict(sd) == released_configs()


def test_dtype_and_device_arguments(folder, cases):
    inputs, expected, _ = cases["speaker.embed.w1200"]
    enc = load_speaker_encoder(folder / "speaker_tiny.pth", device="cpu", dtype=torch.float64)
    assert next(enc.net.parameters()).dtype == torch.float64
    emb = enc.embed(inputs["wave"][0])
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, expected["embedding"][0], **EMB_TOL)


def test_bfloat16_agrees_statistically_with_the_fp32_reference(folder, cases):
    # The official GPU path runs under bf16 autocast; only close agreement is expected there.
    enc = load_speaker_encoder(folder / "speaker_tiny.safetensors", dtype=torch.bfloat16)
    for wave in ["w1200", "w4000"]:
        inputs, expected, _ = cases[f"speaker.embed.{wave}"]
        emb = enc.embed(inputs["wave"][0])
        assert emb.dtype == torch.float32
        assert torch.cosine_similarity(emb, expected["embedding"][0], dim=0) > 0.999


# ---------------------------------------------------------------- bad checkpoints


def test_missing_key_is_a_checkpoint_error(folder, tmp_path):
    sd = load_file(str(folder / "speaker_tiny.safetensors"))
    del sd["layer3.SE_Connect.linear2.bias"]
    save_file(sd, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 missing.*layer3\.SE_Connect\.linear2\.bias"):
        load_speaker_encoder(tmp_path / "missing.safetensors")


def test_renamed_key_is_a_checkpoint_error(folder, tmp_path):
    sd = torch.load(folder / "speaker_tiny.pth", weights_only=True)["model"]
    key = "feature_extract.model.encoder.layers.1.self_attn.grep_a"
    sd["feature_extract.model.encoder.layers.1.self_attn.gru_rel_pos_const"] = sd.pop(key)
    torch.save({"model": sd}, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match=r"missing.*grep_a.*unexpected.*gru_rel_pos_const"):
        load_speaker_encoder(tmp_path / "renamed.pth")


def test_wrong_shape_is_a_checkpoint_error(folder, tmp_path):
    sd = load_file(str(folder / "speaker_tiny.safetensors"))
    sd["layer2.Conv1dReluBn1.bn.running_var"] = torch.ones(65)
    save_file(sd, str(tmp_path / "shape.safetensors"))
    with pytest.raises(CheckpointError, match=r"wrong shapes.*running_var \(65,\)"):
        load_speaker_encoder(tmp_path / "shape.safetensors")


def test_unrelated_checkpoint_is_a_checkpoint_error(tmp_path):
    save_file({"decoder.weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="wavlm_large_finetune"):
        load_speaker_encoder(tmp_path / "other.safetensors")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": {"feature_weight": _Exploit(str(marker))}}, f, protocol=2)
    torch.save({"model": {"x": _Exploit(str(marker))}}, tmp_path / "evil_zip.pth")
    for name in ["evil.pth", "evil_zip.pth"]:
        with pytest.raises(CheckpointError, match="refused"):
            load_speaker_encoder(tmp_path / name)
    assert not os.path.exists(marker)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_speaker_encoder(tmp_path / "wavlm_large_finetune.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_speaker_encoder(tmp_path / "broken.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError):
        load_speaker_encoder(tmp_path / "broken.safetensors")


# ---------------------------------------------------------------- bad audio


@pytest.mark.parametrize("wave, message", [
    (torch.zeros(0), "empty"),
    (torch.full((16000,), 1e-6), "silent"),
    (torch.zeros(16000), "silent"),
    (torch.randn(2, 16000), "mono"),
    (torch.randint(-100, 100, (16000,), dtype=torch.int16), "float"),
    (torch.tensor([0.1, float("nan")] * 8000), "NaN"),
    (torch.randn(719) * 0.1, "too short"),
    (torch.randn(30 * 16000 + 1) * 0.1, "too long"),
])
def test_bad_audio_gives_actionable_errors(encoder, wave, message):
    with pytest.raises(T2AVError, match=message):
        encoder.embed(wave)
    if message != "too long":  # the Talker path cuts over-long audio itself
        with pytest.raises(T2AVError, match=message):
            talker_speaker_input(wave)


def test_shortest_accepted_wave(encoder):
    emb = encoder.embed(torch.randn(720) * 0.1)
    assert emb.shape == (SPEAKER_DIM,) and torch.isfinite(emb).all()
