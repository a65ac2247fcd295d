"""Render and Save (streamed): the same mp4 as the Video Decode -> (Paste Back ->) Combine -> Save chain, written
batch by batch; paste-back needs both of its inputs; Cancel leaves no file."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import comfy.model_management as mm  # noqa: E402  (the stand-in)
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import pack_harness as H  # noqa: E402

from media_files import read_mp4  # noqa: E402
from t2av_core.errors import T2AVError  # noqa: E402


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


@pytest.fixture(scope="module")
def clip(env):
    """A 0.64 s AV latent, its speech, the face and the photo it was cropped from, made by the nodes."""
    n, m = env.nodes, env.models
    photo = H.LoadImage.execute(image=H.FACE).args[0]
    face_image, face_crop, _ = H.run_node(n["TalkerT2AVFaceCrop"], image=photo).args
    face = H.run_node(n["TalkerT2AVFaceEncode"], video_model=m.video, image=face_image).args[0]
    voice = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker,
                       audio=H.LoadAudio.execute(audio=H.VOICE).args[0]).args[0]
    text = H.run_node(n["TalkerT2AVTextEncode"], model=m.model, text="Hi there.").args[0]
    clips, _ = H.run_node(n["TalkerT2AVSampler"], model=m.model, conditioning=text, voice=voice, face=face,
                          **H.sampler_parts(n), seed=5, max_seconds=0.64, prefix_seconds=0.0, temperature=0.3).args
    audio = H.run_node(n["TalkerT2AVAudioDecode"], audio_vae=m.vae, av_latent=clips[0]).args[0]
    return dict(av_latent=clips[0], audio=audio, face=face, photo=photo, face_crop=face_crop)


def saved(out) -> Path:
    return H.saved_clip(out.ui).path


def chain(env, clip, paste: bool) -> Path:
    """The modular nodes' mp4: Video Decode -> (Paste Back ->) Combine Video -> Save Video."""
    n = env.nodes
    images = H.run_node(n["TalkerT2AVVideoDecode"], video_model=env.models.video, face=clip["face"],
                        av_latent=clip["av_latent"], batch_size=8).args[0]
    if paste:
        images = H.run_node(n["TalkerT2AVPasteBack"], images=images, source=clip["photo"],
                            face_crop=clip["face_crop"], feather=0.12, colour_match=False).args[0]
    video = H.run_node(n["TalkerT2AVMux"], images=images, fps=25.0, audio=clip["audio"]).args[0]
    return saved(H.run_node(n["TalkerT2AVSaveVideo"], video=video, filename_prefix="tests/chain"))


def render_save(env, clip, **extra):
    return H.run_node(env.nodes["TalkerT2AVRenderSave"], video_model=env.models.video, face=clip["face"],
                      av_latent=clip["av_latent"], audio=clip["audio"], batch_size=8,
                      filename_prefix="tests/streamed", **extra)


@pytest.mark.parametrize("paste", [False, True], ids=["renderer's frames", "pasted into the photo"])
def test_streamed_mp4_equals_the_modular_chain(env, clip, paste):
    extra = dict(face_crop=clip["face_crop"], source=clip["photo"]) if paste else {}
    comfy.utils.updates.clear()
    out = render_save(env, clip, **extra)
    assert comfy.utils.updates[-2:] == [(8, 16), (16, 16)]  # rendered in batches, with progress
    info = H.saved_clip(out.ui)
    assert info.frames == 16 and info.fps == 25.0 and info.has_audio and out.ui["animated"] == (True,)
    frames, fps, wave, rate = read_mp4(info.path)
    reference, _, reference_wave, _ = read_mp4(chain(env, clip, paste))
    height, width = clip["photo"].shape[1:3] if paste else (128, 128)
    assert frames.shape == (16, height + height % 2, width + width % 2, 3) and fps == 25
    assert np.array_equal(frames, reference) and np.array_equal(wave, reference_wave)
    # its VIDEO output is the file, for any node that takes a VIDEO
    parts = out.args[0].get_components()
    assert parts.images.shape[0] == 16 and parts.frame_rate == 25


def test_paste_back_needs_both_inputs(env, clip):
    for one in (dict(face_crop=clip["face_crop"]), dict(source=clip["photo"])):
        with pytest.raises(T2AVError, match="needs both face_crop"):
            render_save(env, clip, **one)


def test_cancel_leaves_no_file(env, clip):
    folder = Path(folder_paths.get_output_directory()) / "tests"
    before = set(folder.iterdir()) if folder.exists() else set()
    mm.interrupt_current_processing(True)  # the user pressed Cancel
    with pytest.raises(mm.InterruptProcessingException):
        render_save(env, clip)
    assert set(folder.iterdir()) - before == set()  # no mp4 and no temporary file
    assert torch.is_tensor(clip["av_latent"].audio)
