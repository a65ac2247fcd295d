"""WhisperX-VAE against the official module outputs (fixtures: codecs/audio_vae, `wxvae.*`)."""

import pytest
import torch

from conftest import load_cases
from t2av_core.audio.dac_blocks import Snake1d
from t2av_core.audio.whisperx_vae import (WhisperXVAE, WhisperXVAEConfig, build_audio_vae, load_audio_vae,
                                          prepare_reference_audio, speech_frames)
from t2av_core.checkpoint_io import load_state_dict_file
from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.interfaces import AudioCodec

TOL = dict(atol=1e-5, rtol=1e-5)  # module-level cases (fixture README, section 4)
E2E_TOL = dict(atol=1e-4, rtol=1e-4)  # wxvae.encode_via_infer.*
HEADS = 2  # audio_vae_tiny_config.json: n_audio_head (not visible in the weight shapes)


@pytest.fixture(scope="module")
def folder(parity_dir):
    return parity_dir / "codecs" / "audio_vae"


@pytest.fixture(scope="module")
def fixture(folder):
    return load_cases(folder, "audio_vae_tiny")


@pytest.fixture(scope="module")
def codec(folder):
    return load_audio_vae(folder / "audio_vae_tiny.safetensors", whisper_heads=HEADS)


@pytest.fixture(scope="module")
def model(codec):
    return codec.model


def test_config_is_read_from_the_weights(model, folder):
    import json
    official = json.loads((folder / "audio_vae_tiny_config.json").read_text())["cfg"]["model"]
    cfg = model.cfg
    assert cfg.enc_base_width == official["codec_encoder"]["in_dim"]
    assert list(cfg.enc_strides) == official["codec_encoder"]["ratios"]
    assert cfg.enc_out_dim == official["codec_encoder"]["hidden_dim"]
    assert cfg.dec_width == official["codec_decoder"]["hidden_dim"]
    assert list(cfg.dec_rates) == official["codec_decoder"]["ratios"]
    assert cfg.z_dim == official["codec_decoder"]["z_dim"] == 32
    assert (cfg.whisper_width, cfg.whisper_layers, cfg.whisper_n_ctx) == (64, 2, 1500)


def test_released_geometry_defaults():
    cfg = WhisperXVAEConfig()
    assert cfg.whisper_width // cfg.whisper_heads == 64 and cfg.enc_out_dim == 1280 and cfg.dec_width == 1536


def test_snake_uses_alpha_as_is(fixture):
    cases = fixture[1]
    snake = Snake1d(6)
    with torch.no_grad():
        snake.alpha.copy_(cases["wxvae.snake.alpha"])
        torch.testing.assert_close(snake(cases["wxvae.snake.x"]), cases["wxvae.snake.output"], **TOL)


@torch.no_grad()
def test_codec_encoder(model, fixture):
    cases = fixture[1]
    out = model.acoustic_features(cases["wxvae.codec_enc.wav"])
    assert out.shape == (2, 64, 10)  # T_lat = 9723 // 960
    torch.testing.assert_close(out, cases["wxvae.codec_enc.output"], **TOL)


@torch.no_grad()
def test_whisper_encoder(model, fixture):
    cases = fixture[1]
    out = model.semantic_model.encoder(cases["mel.chirp.output"][None])
    torch.testing.assert_close(out, cases["wxvae.whisper_enc.output"], **TOL)


@torch.no_grad()
@pytest.mark.parametrize("case,t_lat", [("full", 40), ("cut", 32)])
def test_encode_posterior_mean(model, fixture, case, t_lat):
    cases = fixture[1]
    p = f"wxvae.encode.{case}"
    wav, mel = cases[f"{p}.wav"], cases["mel.chirp.output"].reshape(1, 1, 128, 3000)
    acoustic = model.acoustic_features(wav)
    semantic = model.semantic_features(mel, acoustic.shape[-1])
    torch.testing.assert_close(acoustic, cases[f"{p}.acoustic"], **TOL)
    torch.testing.assert_close(semantic, cases[f"{p}.semantic_25hz"], **TOL)
    torch.testing.assert_close(model.vae.in_proj(acoustic + semantic), cases[f"{p}.in_proj_out"], **TOL)
    latent = model.encode(wav, mel)
    assert latent.shape == (1, t_lat, 32)
    torch.testing.assert_close(latent, cases[f"{p}.latent"], **TOL)


@torch.no_grad()
@pytest.mark.parametrize("case", ["T7", "T25"])
def test_decode(model, fixture, case):
    cases = fixture[1]
    latent = cases[f"wxvae.decode.{case}.latent"]
    wav = model.decode(latent)
    assert wav.shape == (latent.shape[0], 1, latent.shape[1] * 960)
    torch.testing.assert_close(wav, cases[f"wxvae.decode.{case}.wav"], **TOL)


@pytest.mark.parametrize("case", ["native24k", "sr22050_stereo", "native16k_len_edge"])
def test_official_infer_audio_path(codec, fixture, case):
    manifest, cases = fixture
    p = f"wxvae.encode_via_infer.{case}"
    settings = manifest["cases"][p]["settings"]
    ref = prepare_reference_audio(cases[f"{p}.raw"], settings["sample_rate"])
    assert ref.audio_16k.shape[0] == settings["n_16k"] and ref.audio_24k.shape[0] == settings["n_24k"]
    assert ref.speech_len == int(cases[f"{p}.speech_len"]) == settings["speech_len"]
    torch.testing.assert_close(ref.audio_16k, cases[f"{p}.audio_16k"][0], **TOL)
    torch.testing.assert_close(ref.audio_24k, cases[f"{p}.audio_24k"][0], **TOL)
    latent = codec.encode_reference(cases[f"{p}.raw"], settings["sample_rate"])
    assert latent.shape == (settings["T_lat"], 32)
    torch.testing.assert_close(latent, cases[f"{p}.latent"][0], **E2E_TOL)


def test_audio_codec_protocol_encode_of_a_24k_wave(codec, fixture):
    cases = fixture[1]
    assert isinstance(codec, AudioCodec) and codec.sample_rate == 24000
    wave = cases["wxvae.encode_via_infer.native24k.raw"][0]  # mono 24 kHz (N,)
    torch.testing.assert_close(codec.encode(wave), cases["wxvae.encode_via_infer.native24k.latent"][0], **E2E_TOL)


def test_speech_len_float_trap():
    assert speech_frames(18560) == 28  # not 18560 // 640 = 29
    assert [speech_frames(n) for n in (36480, 37120, 72320)] == [n // 640 - 1 for n in (36480, 37120, 72320)]
    assert speech_frames(16800) == 26 and speech_frames(10) == 1 and speech_frames(10 ** 7) == 750


def test_decode_protocol_and_chunking_equal_one_shot(codec, fixture):
    latents = torch.randn(53, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        one_shot = codec.model.decode(latents[None])[0, 0]
    calls = []
    chunked = codec.model.decode_chunked(latents[None], chunk_frames=10, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]
    torch.testing.assert_close(chunked[0, 0], one_shot, **TOL)
    out = codec.decode(latents)
    assert out.shape == (53 * 960,) and out.dtype == torch.float32
    torch.testing.assert_close(out, one_shot, **TOL)
    # the fixture case T25, decoded 4 frames at a time, still matches the official output
    cases = fixture[1]
    wav = codec.model.decode_chunked(cases["wxvae.decode.T25.latent"], chunk_frames=4)
    torch.testing.assert_close(wav, cases["wxvae.decode.T25.wav"], **TOL)


def test_too_little_context_is_detectable(codec):
    """The computed context is needed: without overlap, chunk seams differ from the one-shot decode."""
    latents = torch.randn(40, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        one_shot = codec.model.decode(latents[None])
    seams = codec.model.decode_chunked(latents[None], chunk_frames=10, context_frames=0)
    assert (seams - one_shot).abs().max() > 1e-3
    assert codec.model.decoder_context_frames() >= 8  # measured reach of this decoder: 8 frames


def test_ckpt_and_safetensors_load_the_same_model(codec, folder, fixture):
    from_ckpt = load_audio_vae(folder / "audio_vae_tiny.ckpt", whisper_heads=HEADS)
    a, b = codec.model.state_dict(), from_ckpt.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("semantic_model.decoder.") for k in b)  # text decoder dropped


def test_strict_keys(folder):
    sd = load_state_dict_file(folder / "audio_vae_tiny.safetensors")
    missing = dict(sd)
    del missing["CodecDec.model.2.block.3.block.1.weight_g"]
    with pytest.raises(CheckpointError, match="weight-norm|missing"):
        build_audio_vae(missing, whisper_heads=HEADS)
    extra = dict(sd, **{"CodecEnc.block.9.alpha": torch.ones(1)})
    with pytest.raises(CheckpointError, match="unexpected"):
        build_audio_vae(extra, whisper_heads=HEADS)
    wrong = dict(sd, **{"vae.in_proj.bias": torch.zeros(63)})
    with pytest.raises(CheckpointError, match="shape"):
        build_audio_vae(wrong, whisper_heads=HEADS)
    with pytest.raises(CheckpointError, match="WhisperX-VAE"):
        build_audio_vae({"encoder.weight": torch.ones(2)})
    with pytest.raises(CheckpointError, match="divisible"):
        build_audio_vae(sd, whisper_heads=3)


def test_bad_audio_input(codec):
    with pytest.raises(T2AVError, match="mono"):
        codec.encode(torch.zeros(2, 24000))
    with pytest.raises(T2AVError, match="too short"):
        codec.encode(torch.zeros(500))
    with pytest.raises(T2AVError, match="NaN"):
        codec.encode(torch.full((24000,), float("nan")))
    with pytest.raises(T2AVError, match="channels"):
        codec.encode_reference(torch.zeros(24000, 2), 24000)
    with pytest.raises(T2AVError):
        codec.encode_reference(torch.zeros(1, 24000), 22050.5)
    with pytest.raises(T2AVError, match=r"\(T, 32\)"):
        codec.decode(torch.zeros(1, 10, 32))
    with pytest.raises(T2AVError, match="zero"):
        codec.decode(torch.zeros(0, 32))
    with pytest.raises(T2AVError, match="NaN"):
        codec.decode(torch.full((3, 32), float("inf")))


def test_only_the_first_30_seconds_are_encoded(codec):
    g = torch.Generator().manual_seed(5)
    wave = 0.1 * torch.randn(31 * 24000, generator=g)
    latents = codec.encode(wave)
    assert latents.shape == (750, 32)


def _released_format_shapes(cfg):
    """Meta tensors named and shaped as in the released file (weight-norm g/v instead of folded weights)."""
    with torch.device("meta"):
        model = WhisperXVAE(cfg)
    out = {}
    for name, t in model.state_dict().items():
        is_conv = name.endswith(".weight") and t.dim() == 3 and not name.startswith("semantic_model.")
        if is_conv:
            base = name[: -len(".weight")]
            out[base + ".weight_v"] = t
            out[base + ".weight_g"] = torch.empty(t.shape[0], 1, 1, device="meta")
        else:
            out[name] = t
    return out


def test_released_geometry_round_trips_through_shape_inference():
    """Design sheet A.2: 731 tensors for encode + decode; config read back from shapes alone."""
    sd = _released_format_shapes(WhisperXVAEConfig())
    assert len(sd) == 731
    assert sum(k.startswith("CodecEnc.") for k in sd) == 119 and sum(k.startswith("CodecDec.") for k in sd) == 119
    assert sum(k.startswith("semantic_model.encoder.") for k in sd) == 487
    assert sd["CodecDec.model.1.block.1.weight_v"].shape == (1536, 768, 24)
    assert sd["CodecDec.model.1.block.1.weight_g"].shape == (1536, 1, 1)  # per input channel (transposed conv)
    assert sd["CodecEnc.block.4.block.4.weight_v"].shape == (1024, 512, 24)
    assert WhisperXVAEConfig.from_state_dict(sd) == WhisperXVAEConfig()  # 1280 wide -> 20 heads by default


def test_progress_callback_can_cancel_decoding(codec):
    from t2av_core.errors import GenerationCancelled

    def cancel(done, total):
        raise GenerationCancelled("stop")

    codec.chunk_frames, saved = 5, codec.chunk_frames
    try:
        with pytest.raises(GenerationCancelled):
            codec.decode(torch.zeros(20, 32), progress=cancel)
    finally:
        codec.chunk_frames = saved


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_weights_encode_and_decode(codec, folder, dtype):
    half = load_audio_vae(folder / "audio_vae_tiny.safetensors", dtype=dtype, whisper_heads=HEADS)
    wave = torch.sin(torch.arange(48000) * 0.05) * 0.3
    ref, out = codec.encode(wave), half.encode(wave)  # the Whisper LayerNorms run in fp32 on 16-bit weights
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    decoded, exact = half.decode(ref), codec.decode(ref)
    assert decoded.dtype == torch.float32 and decoded.shape == exact.shape == (ref.shape[0] * 960,)
    # 16-bit weights on the CPU run their convolutions in fp32 (t2av_core.cpu_convs: oneDNN's bf16 convs are
    # wrong on AVX-512/AMX CPUs); what is left is the weights' own rounding
    assert (decoded - exact).abs().max() < 0.05 * exact.abs().max()


# ---- hyper-parameters of a Lightning checkpoint (OmegaConf, read without omegaconf) -------------------------

class _Metadata:
    """Stand-in for omegaconf.base.Metadata / ContainerMetadata: the attributes omegaconf 2.3 pickles."""

    def __init__(self, key, object_type, container):
        import collections
        import typing
        self.ref_type, self.object_type, self.optional, self.key = typing.Any, object_type, True, key
        self.flags, self.flags_root, self.resolver_cache = {}, False, collections.defaultdict(dict)
        if container:
            self.key_type, self.element_type = (int if object_type is list else typing.Any), typing.Any


class _ContainerMetadata(_Metadata):
    pass


class _AnyNode:
    def __init__(self, value, key, parent):
        self._metadata, self._parent, self._val = _Metadata(key, None, False), parent, value


class _DictConfig:
    def __init__(self, content, key=None, parent=None):
        self._metadata, self._parent = _ContainerMetadata(key, dict, True), parent
        self._content = {k: _node(v, k, self) for k, v in content.items()}


class _ListConfig:
    def __init__(self, content, key, parent):
        self._metadata, self._parent = _ContainerMetadata(key, list, True), parent
        self._content = [_node(v, i, self) for i, v in enumerate(content)]


def _node(value, key, parent):
    if isinstance(value, dict):
        return _DictConfig(value, key, parent)
    return _ListConfig(value, key, parent) if isinstance(value, list) else _AnyNode(value, key, parent)


def _save_lightning_ckpt(path, sd, cfg):
    """torch.save a Lightning-style checkpoint whose cfg pickles exactly as an OmegaConf DictConfig does
    (NEWOBJ + BUILD of {_metadata, _parent, _content | _val}); the stand-in modules exist only meanwhile."""
    import sys
    import types
    names = {"omegaconf.base": [("Metadata", _Metadata), ("ContainerMetadata", _ContainerMetadata)],
             "omegaconf.nodes": [("AnyNode", _AnyNode)], "omegaconf.dictconfig": [("DictConfig", _DictConfig)],
             "omegaconf.listconfig": [("ListConfig", _ListConfig)]}
    saved = {m: sys.modules.get(m) for m in ["omegaconf", *names]}
    originals = {cls: (cls.__module__, cls.__qualname__) for classes in names.values() for _, cls in classes}
    sys.modules["omegaconf"] = types.ModuleType("omegaconf")
    try:
        for module, classes in names.items():
            sys.modules[module] = mod = types.ModuleType(module)
            for name, cls in classes:
                setattr(mod, name, cls)
                cls.__module__, cls.__qualname__ = module, name
        torch.save({"epoch": 1, "global_step": 10, "state_dict": sd, "hyper_parameters": {"cfg": _DictConfig(cfg)}},
                   path)
    finally:
        for cls, (module, name) in originals.items():
            cls.__module__, cls.__qualname__ = module, name
        for module, previous in saved.items():
            if previous is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = previous


def _official_cfg(folder):
    import json
    return json.loads((folder / "audio_vae_tiny_config.json").read_text())["cfg"]


@pytest.fixture(scope="module")
def ckpt_sd(folder):
    return load_state_dict_file(folder / "audio_vae_tiny.ckpt")


def test_head_count_is_read_from_the_training_config(folder, fixture, ckpt_sd, tmp_path):
    cfg = _official_cfg(folder)
    cfg["model"]["semantic_model"] = {"whisper": {"n_audio_head": HEADS, "n_audio_layer": 2}}
    path = tmp_path / "model.ckpt"
    _save_lightning_ckpt(path, ckpt_sd, cfg)
    codec = load_audio_vae(path)  # no whisper_heads: the file says 2 (the width / 64 guess would be 1)
    assert codec.model.cfg.whisper_heads == HEADS
    with torch.no_grad():
        out = codec.model.semantic_model.encoder(fixture[1]["mel.chirp.output"][None])
    torch.testing.assert_close(out, fixture[1]["wxvae.whisper_enc.output"], **TOL)
    assert load_audio_vae(path, whisper_heads=4).model.cfg.whisper_heads == 4  # the argument still overrides


def test_training_config_that_contradicts_the_weights_is_refused(folder, ckpt_sd, tmp_path):
    cases = [("codec_encoder", "in_dim", 8, ["8", "4", "in_dim"]),
             ("codec_decoder", "ratios", [10, 12, 4, 2], ["[10, 12, 4, 2]", "[12, 10, 4, 2]"]),
             ("semantic_model", "whisper_model", "openai/whisper-large-v3", ["large-v3", "1280", "64"]),
             ("whisper", "n_audio_head", 3, ["3", "64"])]
    for i, (section, key, value, words) in enumerate(cases):
        cfg = _official_cfg(folder)
        cfg["model"].setdefault(section, {})[key] = value
        path = tmp_path / f"bad{i}.ckpt"
        _save_lightning_ckpt(path, ckpt_sd, cfg)
        with pytest.raises(CheckpointError) as info:
            load_audio_vae(path)
        assert all(w in str(info.value) for w in words), (key, str(info.value))


def test_a_whisper_model_name_is_checked_against_the_weights(folder, ckpt_sd, tmp_path):
    cfg = _official_cfg(folder)
    cfg["model"]["whisper"] = {"name": "tiny.en", "path": "/ckpt/whisper"}  # tiny: 384 wide, 6 heads
    path = tmp_path / "model.ckpt"
    _save_lightning_ckpt(path, ckpt_sd, cfg)
    with pytest.raises(CheckpointError, match="tiny") as info:
        load_audio_vae(path)  # the tiny fixture is 64 wide, not 384
    assert "384" in str(info.value) and "64" in str(info.value)


def test_without_a_recorded_head_count_it_is_guessed_and_said(folder, caplog):
    # the fixture .ckpt was written by the official code with the real omegaconf: its cfg has no Whisper settings
    with caplog.at_level("WARNING"):
        codec = load_audio_vae(folder / "audio_vae_tiny.ckpt")
    assert codec.model.cfg.whisper_heads == 1  # 64 / 64
    assert "guess" in caplog.text and "whisper_heads" in caplog.text


def test_settings_of_other_modules_are_not_taken_for_whisper(folder, ckpt_sd, tmp_path, caplog):
    cfg = _official_cfg(folder)
    cfg["model"]["semantic_model"] = {"name": "hubert_base", "num_heads": 8}  # not Whisper settings
    cfg["model"]["semantic_decoder"] = {"n_head": 4, "ratios": ["${model.codec_encoder.ratios}"]}
    path = tmp_path / "model.ckpt"
    _save_lightning_ckpt(path, ckpt_sd, cfg)
    with caplog.at_level("WARNING"):
        assert load_audio_vae(path).model.cfg.whisper_heads == 1
    assert "guess" in caplog.text
