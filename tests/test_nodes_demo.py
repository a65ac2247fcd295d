"""The bundled demo model through the nodes (tests/comfy_stub stand-in): every loader's demo choice, the
voice/face fallbacks to the demo's defaults (and their refusal with the released encoders), and the demo
template end to end to a real mp4 read back with PyAV."""

import json
import sys
from pathlib import Path

import av
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import folder_paths  # noqa: E402  (the stand-in)
import pack_harness as H  # noqa: E402

from t2av_core import pipeline  # noqa: E402
from t2av_core.demo.face import DemoFaceRenderer, default_face  # noqa: E402
from t2av_core.demo.mel_codec import MelCodec  # noqa: E402
from t2av_core.demo.text import DemoTokenizer  # noqa: E402
from t2av_core.demo.voice import SpectralVoiceEmbedder  # noqa: E402
from t2av_core.errors import T2AVError  # noqa: E402

DEMO = "bundled demo (no download)"
TEMPLATE = H.REPO / "workflows" / "api" / "Talker-T2AV - try the demo (no download).json"
COMMON = {"precision": "auto", "device": "default"}


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


@pytest.fixture(scope="module")
def loaders(env):
    return H.load_pack().nodes.loaders


@pytest.fixture(scope="module")
def demo(env):
    """The four demo handles, loaded through the loader nodes."""
    n = env.nodes
    return {"model": H.run_node(n["TalkerT2AVModelLoader"], file=DEMO, tokenizer=DEMO, **COMMON).args[0],
            "vae": H.run_node(n["TalkerT2AVAudioVAELoader"], file=DEMO, **COMMON).args[0],
            "video": H.run_node(n["TalkerT2AVVideoModelLoader"], file=DEMO, **COMMON).args[0],
            "speaker": H.run_node(n["TalkerT2AVSpeakerEncoderLoader"], file=DEMO, **COMMON).args[0]}


@pytest.fixture
def one_thread():
    """The demo's width-128 matrices run many times faster on one thread on this shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_loader_offers_the_demo_first_and_keeps_its_released_files(env):
    for node_id in ("TalkerT2AVModelLoader", "TalkerT2AVAudioVAELoader", "TalkerT2AVVideoModelLoader",
                    "TalkerT2AVSpeakerEncoderLoader"):
        ports = {p.id: p for p in env.nodes[node_id].define_schema().inputs}
        assert ports["file"].options[0] == DEMO and len(ports["file"].options) >= 2
        assert list(ports)[:3] == ["file", "precision", "device"]  # widget order of saved workflows unchanged
    ports = {p.id: p for p in env.nodes["TalkerT2AVModelLoader"].define_schema().inputs}
    assert ports["tokenizer"].options == [DEMO, "tokenizer.json"]


def test_demo_loaders_give_the_demo_parts_from_one_shared_bundle(demo, loaders):
    bundle = loaders.demo_bundle()
    model, vae, video, speaker = demo["model"], demo["vae"], demo["video"], demo["speaker"]
    assert model.model is bundle.talker and isinstance(model.tokenizer, DemoTokenizer)
    assert model.patcher.model is bundle.talker and next(bundle.talker.parameters()).dtype == torch.float32
    assert isinstance(vae.model, MelCodec) and vae.model is bundle.audio_codec
    assert isinstance(video.model, DemoFaceRenderer) and video.model is bundle.renderer
    assert isinstance(speaker.model, SpectralVoiceEmbedder) and speaker.model is bundle.speaker_encoder
    for handle in (vae, video, speaker):  # no torch module: nothing for the memory manager to move
        assert handle.patcher is None and pipeline.torch_module(handle.model) is None
        assert H.load_pack().nodes.host.load_model(handle) is handle.model
    assert loaders.demo_bundle() is bundle  # read once per process


def test_demo_talker_handles_are_cached_per_device_and_dtype(env, demo, loaders):
    node = env.nodes["TalkerT2AVModelLoader"]
    # "auto" is float32 for the demo, so it is the same handle as fp32; the tokenizer choice is ignored
    again = H.run_node(node, file=DEMO, tokenizer="tokenizer.json", precision="fp32", device="default").args[0]
    assert again is demo["model"]
    half = H.run_node(node, file=DEMO, tokenizer=DEMO, precision="bf16", device="cpu").args[0]
    assert half.model is not demo["model"].model and half.patcher.model is half.model  # its own copy
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert next(loaders.demo_bundle().talker.parameters()).dtype == torch.float32  # the shared one untouched


def test_released_model_refuses_the_demo_tokenizer(env):
    with pytest.raises(ValueError, match="tokenizer.json"):
        H.run_node(env.nodes["TalkerT2AVModelLoader"], file="model.safetensors", tokenizer=DEMO, **COMMON)


def test_voice_and_face_fall_back_to_the_demo_defaults(env, demo, loaders):
    n, bundle = env.nodes, loaders.demo_bundle()
    voice = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=demo["speaker"]).args[0]
    assert torch.equal(voice.speaker, bundle.default_speaker) and voice.audio_latents is None
    face = H.run_node(n["TalkerT2AVFaceEncode"], video_model=demo["video"]).args[0]
    drawn = pipeline.encode_face(bundle.renderer, default_face(bundle.renderer.image_size))
    assert face.image_size == 256 and torch.equal(face.state.base, drawn.state.base)
    assert torch.equal(face.motion, drawn.motion)
    # a connected input still wins over the default
    audio = H.LoadAudio.execute(audio=H.VOICE).args[0]
    cloned = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=demo["speaker"], audio=audio).args[0]
    assert cloned.seconds > 0 and not torch.allclose(cloned.speaker, voice.speaker)
    picture = H.LoadImage.execute(image=H.FACE).args[0]
    given = H.run_node(n["TalkerT2AVFaceEncode"], video_model=demo["video"], image=picture).args[0]
    assert not torch.equal(given.state.base, face.state.base)


def test_released_encoders_ask_for_the_missing_voice_and_face(env):
    n, m = env.nodes, env.models
    with pytest.raises(T2AVError, match="no voice recording was given"):
        H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio_vae=m.vae)
    with pytest.raises(T2AVError, match="no face picture was given"):
        H.run_node(n["TalkerT2AVFaceEncode"], video_model=m.video)


def _streams(path: Path) -> tuple[float, int, float, int]:
    """(fps, decoded video frames, audio track seconds, audio channels) of an mp4."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        fps = float(video.average_rate)
        frames = sum(1 for _ in container.decode(video))
        return fps, frames, float(audio.duration * audio.time_base), audio.channels


def test_demo_template_runs_text_to_mp4_without_any_model_file(env, one_thread):
    prompt = H.load_api_workflow(TEMPLATE)
    loaders = [node for node in prompt.values() if node["class_type"].endswith("Loader")]
    assert len(loaders) == 4 and all(node["inputs"]["file"] == DEMO for node in loaders)
    for node_id in ("6", "7"):  # Voice / Face encode with nothing connected but the model
        assert set(prompt[node_id]["inputs"]) <= {"speaker_encoder", "video_model"}
    prompt["11"]["inputs"]["max_seconds"] = 1.6  # the demo usually stops by itself after about 2 s
    done = H.run_workflow(prompt, env.nodes)
    info = H.saved_clip(done["15"].ui)
    mp4 = info.path
    fps, frames, audio_seconds, channels = _streams(mp4)
    assert fps == 25 and info.has_audio and channels >= 1
    assert frames == info.frames == done["11"].args[0][0].audio.shape[0] >= 12  # the sampler hands on a list
    assert round(audio_seconds * 25) == frames  # the speech lasts exactly as long as the video
    with av.open(str(mp4)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert picture.shape == (256, 256, 3) and picture.std() > 10  # the drawn face, not a blank frame
    assert json.loads(TEMPLATE.read_text())["11"]["inputs"]["max_seconds"] >= 5  # the shipped template: full length


# ---------------------------------------------------------------- parts that do not fit together


def test_released_generator_with_demo_parts_is_refused_naming_the_loader(env):
    from t2av_core.demo.bundle import load_demo
    demo = load_demo()
    released = env.models.model.model  # the tiny fixture in the released format
    text = pipeline.encode_text(env.models.model.tokenizer, "Hi there.")
    face = pipeline.encode_face(demo.renderer)
    voice = pipeline.default_voice(demo.speaker_encoder)
    with pytest.raises(T2AVError, match=r"the voice came from the bundled demo speaker encoder.*Load "
                                        r"wavlm_large_finetune.pth as the speaker encoder"):
        pipeline.sample_av(released, text, voice, face, pipeline.SamplerParts(), seed=0, max_seconds=0.32)
    released_voice = pipeline.VoiceCondition(speaker=torch.zeros(256), audio_latents=None, seconds=0.0)
    with pytest.raises(T2AVError, match="the face came from the bundled demo video model.*lia-x.pt"):
        pipeline.sample_av(released, text, released_voice, face, pipeline.SamplerParts(), seed=0, max_seconds=0.32)
    demo_text = pipeline.encode_text(demo.tokenizer, "Hi there.")
    with pytest.raises(T2AVError, match="the prompt came from the bundled demo tokenizer"):
        pipeline.sample_av(released, demo_text, released_voice, face, pipeline.SamplerParts(), seed=0)
    # the released generator's latents and the demo decoders (the default of a freshly added loader)
    av = pipeline.join_av(torch.zeros(8, 32), torch.zeros(8, 40))
    av.family = "released"
    with pytest.raises(T2AVError, match=r"the audio latents came from the released generator, but the bundled "
                                        r"demo audio VAE.*Load whisperx-vae/model.ckpt as the audio VAE"):
        pipeline.decode_audio(demo.audio_codec, av)
    with pytest.raises(T2AVError, match="the face motion came from the released generator.*lia-x.pt"):
        next(pipeline.render_frames(demo.renderer, face, av))


def test_a_tokenizer_the_generator_cannot_read_is_refused_at_load(env, parity_dir):
    qwen = pipeline.load_tokenizer(parity_dir / "qwen3_tokenizer")  # 151,671 ids for a 1,024-word fixture model
    with pytest.raises(T2AVError, match="ids up to 151670, but the generator knows only 1024 tokens"):
        pipeline.check_tokenizer(qwen, env.models.model.model)
    text = pipeline.encode_text(qwen, "Hello there.")
    voice = pipeline.VoiceCondition(speaker=torch.zeros(256), audio_latents=None, seconds=0.0)
    face = pipeline.FaceCondition(state=None, motion=torch.zeros(40), image_size=8)
    with pytest.raises(T2AVError, match="encode the text with this model's tokenizer"):
        pipeline.sample_av(env.models.model.model, text, voice, face, pipeline.SamplerParts(), seed=0)


def test_between_two_side_parts_the_demo_one_is_named_first(env):
    from t2av_core.demo.bundle import load_demo
    demo = load_demo()
    wave = torch.sin(torch.arange(48000) * 0.05) * 0.3
    with pytest.raises(T2AVError, match=r"Load whisperx-vae/model.ckpt as the audio VAE \(or the bundled demo"):
        pipeline.encode_voice(env.models.speaker.model, demo.audio_codec, wave, 16000)


def test_long_form_sampler_reads_a_script_in_chunks_into_the_usual_decoders(env):
    n = env.nodes
    loaders = {name: H.run_node(n[node], file=DEMO, precision="auto", device="cpu").args[0]
               for name, node in (("vae", "TalkerT2AVAudioVAELoader"), ("video", "TalkerT2AVVideoModelLoader"),
                                  ("speaker", "TalkerT2AVSpeakerEncoderLoader"))}
    model = H.run_node(n["TalkerT2AVModelLoader"], file=DEMO, precision="auto", device="cpu", tokenizer=DEMO).args[0]
    voice = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=loaders["speaker"]).args[0]
    face = H.run_node(n["TalkerT2AVFaceEncode"], video_model=loaders["video"]).args[0]
    parts = H.sampler_parts(n, steps=10)
    script = "The baker brings some fresh bread. A small boy reads a new book at night. The pilot holds the garden."
    av_latent, seconds, chunks = H.run_node(
        n["TalkerT2AVLongFormSampler"], model=model, text=script, voice=voice, face=face, seed=1, chunk_seconds=4.0,
        pause_seconds=0.2, max_seconds=0.0, prefix_seconds=0.0, temperature=0.3, audio_vae=loaders["vae"],
        **parts).args
    assert chunks == 3 and seconds == av_latent.audio.shape[0] / 25 > 2
    audio = H.run_node(n["TalkerT2AVAudioDecode"], audio_vae=loaders["vae"], av_latent=av_latent).args[0]
    assert audio["waveform"].shape[-1] == av_latent.audio.shape[0] * audio["sample_rate"] // 25
