"""The conversion command: released files -> one safetensors per component with a metadata header."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import load_cases
from core_helpers import assert_same_state_dict
from t2av_core import convert as convert_mod
from t2av_core.audio.whisperx_vae import load_audio_vae
from t2av_core.checkpoint_io import load_state_dict_file, read_component_config, read_metadata
from t2av_core.convert import COMPONENTS, convert, main, register_component
from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.video.lia_x import LiaXConfig


def test_audio_vae_ckpt_to_safetensors(parity_dir, tmp_path):
    folder = parity_dir / "codecs" / "audio_vae"
    dst = tmp_path / "audio_vae.safetensors"
    config = convert("audio_vae", folder / "audio_vae_tiny.ckpt", dst, options={"whisper_heads": 2})
    assert config["whisper_heads"] == 2 and list(config["dec_rates"]) == [12, 10, 4, 2]
    component, stored = read_component_config(dst)
    assert component == "audio_vae" and stored["enc_base_width"] == 4 and stored["whisper_heads"] == 2
    # the converted file keeps exactly the official inference keys (281), text decoder dropped
    assert_same_state_dict(load_state_dict_file(dst), load_state_dict_file(folder / "audio_vae_tiny.safetensors"))
    # ... and loads without being told the head count, giving the official decode
    codec = load_audio_vae(dst)
    assert codec.model.cfg.whisper_heads == 2
    cases = load_cases(folder, "audio_vae_tiny")[1]
    wav = codec.decode(cases["wxvae.decode.T7.latent"][0])
    torch.testing.assert_close(wav, cases["wxvae.decode.T7.wav"][0, 0], atol=1e-5, rtol=1e-5)


def test_command_line(parity_dir, tmp_path):
    src = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"
    dst = tmp_path / "out.safetensors"
    done = subprocess.run([sys.executable, "-m", "t2av_core.convert", "--component", "audio_vae",
                           "--options", '{"whisper_heads": 2}', str(src), str(dst)],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and read_metadata(dst)["component"] == "audio_vae"
    assert main(["--component", "audio_vae", str(tmp_path / "missing.ckpt"), str(tmp_path / "x.safetensors")]) == 1
    with pytest.raises(SystemExit):
        main(["--component", "nope", str(src), str(dst)])
    with pytest.raises(SystemExit):
        main(["--component", "audio_vae", "--options", "[1]", str(src), str(dst)])


def test_talker_resave_keeps_bf16(parity_dir, tmp_path):
    sd = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
          for k, v in load_state_dict_file(parity_dir / "core" / "core_tiny.safetensors").items()}
    src = tmp_path / "model.safetensors"  # a bf16 file, as released
    save_file(sd, str(src))
    dst = tmp_path / "talker.safetensors"
    config = convert("talker", src, dst)
    assert_same_state_dict(load_state_dict_file(dst), sd)
    assert read_component_config(dst) == ("talker", json.loads(json.dumps(config)))


def test_lia_x_and_speaker_are_resaved(parity_dir, tmp_path):
    lia = parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors"
    convert("lia_x", lia, tmp_path / "lia.safetensors")
    assert_same_state_dict(load_state_dict_file(tmp_path / "lia.safetensors"), load_state_dict_file(lia))
    component, config = read_component_config(tmp_path / "lia.safetensors")
    tiny = LiaXConfig.from_state_dict(load_state_dict_file(lia))
    assert component == "lia_x" and config["style_dim"] == tiny.style_dim
    assert config["decoder_channels"] == list(tiny.decoder_channels)
    pth = parity_dir / "codecs" / "speaker" / "speaker_tiny.pth"  # released {"model": state_dict} form
    convert("speaker", pth, tmp_path / "spk.safetensors")
    assert_same_state_dict(load_state_dict_file(tmp_path / "spk.safetensors"),
          load_state_dict_file(parity_dir / "codecs" / "speaker" / "speaker_tiny.safetensors"))
    with pytest.raises(CheckpointError, match="speaker"):
        load_audio_vae(tmp_path / "spk.safetensors")  # the header names the wrong component


def test_registry_plug_in(tmp_path, monkeypatch):
    monkeypatch.setattr(convert_mod, "COMPONENTS", dict(COMPONENTS))
    register_component("lia_x", infer_config=lambda sd, opts: {"n_tensors": len(sd), **opts})
    register_component("toy", "a toy component", select=lambda sd: {k: v for k, v in sd.items() if k.startswith("a")})
    src = tmp_path / "w.pth"
    torch.save({"a.w": torch.ones(2), "b.w": torch.zeros(2)}, src)
    assert convert("lia_x", src, tmp_path / "l.safetensors", options={"scale": 2}) == {"n_tensors": 2, "scale": 2}
    convert("toy", src, tmp_path / "t.safetensors")
    assert list(load_state_dict_file(tmp_path / "t.safetensors")) == ["a.w"]


def test_bad_requests(parity_dir, tmp_path):
    src = parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors"
    with pytest.raises(T2AVError, match="unknown component"):
        convert("vocoder", src, tmp_path / "x.safetensors")
    with pytest.raises(T2AVError, match="overwrite"):
        convert("lia_x", src, src)
    with pytest.raises(CheckpointError, match="WhisperX-VAE"):
        convert("audio_vae", src, tmp_path / "x.safetensors")  # LIA-X weights are not an audio VAE
    assert not (tmp_path / "x.safetensors").exists()
