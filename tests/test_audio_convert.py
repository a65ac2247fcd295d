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
    # bad input exits with 2 (as the generate command), without a traceback
    assert main(["--component", "audio_vae", str(tmp_path / "missing.ckpt"), str(tmp_path / "x.safetensors")]) == 2
    assert main(["--component", "nope", str(src), str(dst)]) == 2
    assert main(["--component", "audio_vae", "--options", "[1]", str(src), str(dst)]) == 2


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


# ---- bad input: exit code 2, a plain message, nothing left behind ------------------------------------------

def _run_main(capsys, *args):
    code = main(list(map(str, args)))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("heads", [-3, 3, 2.5, "two", 0, True])
def test_invalid_whisper_heads_are_refused(parity_dir, tmp_path, capsys, heads):
    src = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"  # Whisper width 64
    code, err = _run_main(capsys, "--component", "audio_vae", "--options", json.dumps({"whisper_heads": heads}),
                          src, tmp_path / "out.safetensors")
    assert code == 2 and "whisper_heads" in err, err
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_refused(parity_dir, tmp_path, capsys):
    src = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"
    code, err = _run_main(capsys, "--component", "audio_vae", "--options", '{"whisper_head": 2}', src,
                          tmp_path / "out.safetensors")
    assert code == 2 and "whisper_head" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_destinations_are_refused(parity_dir, tmp_path, capsys):
    src = parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors"
    (tmp_path / "folder.safetensors").mkdir()
    (tmp_path / "plain_file").write_text("x")
    cases = [(tmp_path / "out.pt", ".safetensors"),
             (tmp_path / "folder.safetensors", "folder"),
             (tmp_path / "plain_file" / "out.safetensors", "plain_file"),  # its "folder" is a file
             (tmp_path / "absent" / "deeper" / "out.safetensors", "absent")]
    for dst, word in cases:
        code, err = _run_main(capsys, "--component", "lia_x", src, dst)
        assert code == 2 and word in err, (dst, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.safetensors", "plain_file"]
    assert list((tmp_path / "folder.safetensors").iterdir()) == []


def test_the_cli_entry_point_exits_2_on_bad_input(parity_dir, tmp_path):
    src = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"
    done = subprocess.run([sys.executable, "-m", "t2av_core", "convert", "--component", "audio_vae", "--options",
                           '{"whisper_heads": "two"}', str(src), str(tmp_path / "o.safetensors")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "Traceback" not in done.stderr and "whisper_heads" in done.stderr


# ---- writing: normal permissions, atomic replacement ---------------------------------------------------------

def test_output_gets_normal_permissions(parity_dir, tmp_path):
    import os
    old = os.umask(0o027)
    try:
        convert("lia_x", parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors", tmp_path / "l.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "l.safetensors").stat().st_mode & 0o777 == 0o640  # 0o666 & ~umask, not 0o600


@pytest.mark.parametrize("failure", [KeyboardInterrupt, lambda: OSError(28, "No space left on device")])
def test_a_failed_write_keeps_the_old_file(parity_dir, tmp_path, monkeypatch, capsys, failure):
    from t2av_core import checkpoint_io

    def half_write(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise failure()

    dst = tmp_path / "l.safetensors"
    dst.write_bytes(b"the previous file")
    monkeypatch.setattr(checkpoint_io, "save_file", half_write)
    src = parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors"
    if failure is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            convert("lia_x", src, dst)
    else:
        code, err = _run_main(capsys, "--component", "lia_x", src, dst)
        assert code == 2 and "disk is full" in err
    assert dst.read_bytes() == b"the previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["l.safetensors"]


def test_a_complete_write_replaces_the_old_file(parity_dir, tmp_path):
    dst = tmp_path / "l.safetensors"
    dst.write_bytes(b"the previous file")
    lia = parity_dir / "codecs" / "lia_x" / "lia_x_tiny.safetensors"
    convert("lia_x", lia, dst)
    assert_same_state_dict(load_state_dict_file(dst), load_state_dict_file(lia))
    assert [p.name for p in tmp_path.iterdir()] == ["l.safetensors"]


def test_convert_reads_the_training_config_and_says_when_it_guessed(parity_dir, tmp_path, caplog):
    src = parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.ckpt"  # its cfg has no Whisper head count
    with caplog.at_level("WARNING"):
        config = convert("audio_vae", src, tmp_path / "a.safetensors")
    assert config["whisper_heads"] == 1 and "guess" in caplog.text
