"""Every node of the pack on the tiny random-weight models, through a stand-in of the few ComfyUI functions
the pack uses (tests/comfy_stub): schemas, types and shapes, validation, errors, progress and cancel."""

import math
import os
import sys
from pathlib import Path

import av
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import comfy.model_management as mm  # noqa: E402  (the stand-in)
import comfy.samplers  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import pack_harness as H  # noqa: E402

from t2av_core.errors import T2AVError  # noqa: E402

DEMO = "bundled demo (no download)"


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


@pytest.fixture(scope="module")
def conditions(env):
    """Text, voice (with prefix latents), face and sampler parts, made by the nodes."""
    n, m = env.nodes, env.models
    text, tokens = H.run_node(n["TalkerT2AVTextEncode"], model=m.model, text="Hi there.").args
    audio = H.LoadAudio.execute(audio=H.VOICE).args[0]
    voice = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio=audio, audio_vae=m.vae).args[0]
    image = H.LoadImage.execute(image=H.FACE).args[0]
    face = H.run_node(n["TalkerT2AVFaceEncode"], video_model=m.video, image=image).args[0]
    parts = H.sampler_parts(n)
    return dict(text=text, tokens=tokens, audio=audio, voice=voice, face=face, image=image, parts=parts)


def sample(env, c, **overrides):
    inputs = dict(model=env.models.model, conditioning=c["text"], voice=c["voice"], face=c["face"], **c["parts"],
                  seed=3, max_seconds=0.32, prefix_seconds=0.0, temperature=0.3)
    inputs.update(overrides)
    clips, seconds = H.run_node(env.nodes["TalkerT2AVSampler"], **inputs).args
    assert len(clips) == len(seconds) == 1  # list outputs: one clip for one text
    return clips[0], seconds[0]


def test_schemas_are_prefixed_named_and_explained(env):
    assert len(env.nodes) == 25
    for node_id, node in env.nodes.items():
        schema = node.define_schema()
        assert node_id.startswith("TalkerT2AV") and schema.display_name
        assert schema.search_aliases, f"{node_id} has no search aliases"
        assert schema.category.startswith("Talker-T2AV/") and schema.description
        for port in schema.inputs:
            if port.io_type in ("INT", "FLOAT", "COMBO", "STRING", "BOOLEAN") or port.optional:
                assert port.tooltip, f"{node_id}.{port.id} has no tooltip"
        for port in schema.inputs + schema.outputs:
            assert port.io_type.isupper()
            if port.io_type.startswith("TALKER"):
                assert port.io_type.startswith("TALKER_T2AV_")


def test_model_folder_keeps_yaml_paths_and_lists_released_names(env, tmp_path):
    paths = folder_paths.get_folder_paths("talker_t2av")
    assert paths[0] == os.path.join(folder_paths.models_dir, "talker_t2av")
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "other.safetensors").write_bytes(b"")
    saved = folder_paths.folder_names_and_paths["talker_t2av"]
    try:  # as if extra_model_paths.yaml had registered the folder before the pack was imported
        folder_paths.folder_names_and_paths["talker_t2av"] = ([str(extra)], set())
        H.load_pack().nodes.host.register_model_folder()
        paths, extensions = folder_paths.folder_names_and_paths["talker_t2av"]
        assert paths == [str(extra), saved[0][0]] and ".json" in extensions and ".ckpt" in extensions
        assert "other.safetensors" in H.load_pack().nodes.host.model_files()
    finally:
        folder_paths.folder_names_and_paths["talker_t2av"] = saved
    loader = env.nodes["TalkerT2AVModelLoader"].define_schema()
    options = {p.id: p.options for p in loader.inputs}
    assert "model.safetensors" in options["file"] and "tokenizer.json" not in options["file"]
    assert options["tokenizer"] == [DEMO, "tokenizer.json"] and options["file"][0] == DEMO
    assert options["precision"] == ["auto", "fp32", "bf16", "fp16"]


def test_a_flat_audio_vae_serves_the_released_name(env, parity_dir, tmp_path):
    """Templates ask for whisperx-vae/model.ckpt (the README layout); a folder holding the file flat as
    whisperx_vae.ckpt still runs them."""
    (tmp_path / "whisperx_vae.ckpt").symlink_to(parity_dir / "codecs" / "audio_vae" / "audio_vae_tiny.ckpt")
    saved = folder_paths.folder_names_and_paths["talker_t2av"]
    try:
        folder_paths.folder_names_and_paths["talker_t2av"] = ([str(tmp_path)], saved[1])
        node = env.nodes["TalkerT2AVAudioVAELoader"]
        options = {p.id: p.options for p in node.define_schema().inputs}["file"]
        assert "whisperx_vae.ckpt" in options and "whisperx-vae/model.ckpt" in options
        handle = H.run_node(node, file="whisperx-vae/model.ckpt", precision="auto", device="cpu").args[0]
        assert handle.model.sample_rate == 24000
    finally:
        folder_paths.folder_names_and_paths["talker_t2av"] = saved


def test_loaders_wrap_models_in_model_patchers(env):
    m = env.models
    for handle in (m.model, m.vae, m.video, m.speaker):
        assert isinstance(handle.patcher.model, torch.nn.Module)
        assert handle.patcher.load_device == torch.device("cpu")
        assert next(handle.patcher.model.parameters()).dtype == torch.float32
    assert m.model.tokenizer is not None
    with pytest.raises(FileNotFoundError, match="talker_t2av model folder"):
        H.load_pack().nodes.host.model_path("missing.safetensors")


def test_model_loader_context_patches(env):
    node = env.nodes["TalkerT2AVModelLoader"]
    common = dict(precision="fp32", device="cpu", tokenizer="tokenizer.json")
    assert env.models.model.model.cfg.context_patches == 1  # nothing recorded beside the fixture: released 1
    chosen = H.run_node(node, file="model.safetensors", context_patches="2", **common).args[0]
    assert chosen.model.cfg.context_patches == 2
    assert "context_patches = 2 (set by you)" in chosen.model.config_notes
    with pytest.raises(ValueError, match="bundled demo model uses the value it was trained with"):
        H.run_node(node, file=DEMO, context_patches="2", **common)


def test_text_encode_gives_prompt_ids_and_refuses_empty_text(env, conditions):
    assert conditions["tokens"] == conditions["text"].prompt_ids.numel() > 12
    node = env.nodes["TalkerT2AVTextEncode"]
    assert "empty" in node.validate_inputs(text="   ")
    with pytest.raises(T2AVError, match="empty"):
        node.execute(model=env.models.model, text="")


def test_voice_face_and_motion_encoders(env, conditions):
    voice, face = conditions["voice"], conditions["face"]
    assert voice.speaker.shape == (256,) and voice.audio_latents.shape == (15, 32) and voice.seconds == 0.6
    assert face.motion.shape == (40,) and face.image_size == 128
    n, m = env.nodes, env.models
    no_prefix = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio=conditions["audio"]).args[0]
    assert no_prefix.audio_latents is None and torch.allclose(no_prefix.speaker, voice.speaker)
    video = H.LoadVideo.execute(file=H.VIDEO).args[0]
    motion, seconds = H.run_node(n["TalkerT2AVMotionEncode"], video_model=m.video, video=video, fps=25.0).args
    assert motion.shape == (6, 40) and seconds == 6 / 25  # 8 frames at 30 fps -> 6 at 25 fps
    frames = video.get_components().images
    same, _ = H.run_node(n["TalkerT2AVMotionEncode"], video_model=m.video, images=frames, fps=30.0).args
    assert torch.equal(same, motion)
    with pytest.raises(T2AVError, match="connect a reference VIDEO or an IMAGE"):
        H.run_node(n["TalkerT2AVMotionEncode"], video_model=m.video, fps=25.0)
    latents, secs = H.run_node(n["TalkerT2AVAudioEncode"], audio_vae=m.vae, audio=conditions["audio"]).args
    assert latents.shape == (15, 32) and secs == 0.6
    silent = {"waveform": torch.zeros(1, 1, 16000), "sample_rate": 16000}
    with pytest.raises(T2AVError, match="silent"):
        H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio=silent)


def test_sampler_makes_aligned_streams_and_reproduces_by_seed(env, conditions):
    av_latent, seconds = sample(env, conditions)
    assert av_latent.audio.shape[1] == 32 and av_latent.motion_norm.shape[1] == 40
    assert av_latent.audio.shape[0] == av_latent.motion_norm.shape[0] == 8 and seconds == 8 / 25
    again, _ = sample(env, conditions)
    other, _ = sample(env, conditions, seed=4)
    assert torch.equal(again.audio, av_latent.audio) and not torch.equal(other.audio, av_latent.audio)
    heun, _ = sample(env, conditions, solver=H.run_node(env.nodes["TalkerT2AVSolver"], solver="heun").args[0])
    assert heun.audio.shape == av_latent.audio.shape and not torch.equal(heun.audio, av_latent.audio)


def test_sampler_progress_and_cancel_within_one_patch(env, conditions):
    comfy.utils.updates.clear()
    sample(env, conditions)
    assert comfy.utils.updates == [(1, 2), (2, 2)]  # one tick per 4-frame patch, total = step budget
    calls = []
    original = H.load_pack().nodes.host.progress

    def counting_progress(total):
        update = original(total)
        return lambda done, total_now: (calls.append(done), update(done, total_now))

    H.load_pack().nodes.host.progress = counting_progress
    mm.interrupt_current_processing(True)  # the user pressed Cancel
    try:
        with pytest.raises(mm.InterruptProcessingException):
            sample(env, conditions, max_seconds=2.0)
    finally:
        H.load_pack().nodes.host.progress = original
    assert calls == [1]  # stopped at the end of the first of 13 patches


def test_prefix_needs_reference_audio_and_replays_it(env, conditions):
    n, m = env.nodes, env.models
    voice = H.run_node(n["TalkerT2AVVoiceEncode"], speaker_encoder=m.speaker, audio=conditions["audio"]).args[0]
    with pytest.raises(T2AVError, match="audio VAE"):
        sample(env, conditions, voice=voice, prefix_seconds=0.16)
    av_latent, _ = sample(env, conditions, prefix_seconds=0.16)
    assert av_latent.prefix_frames == 4 and av_latent.audio.shape[0] == 12
    assert torch.equal(av_latent.audio[:4], conditions["voice"].audio_latents[:4])


def test_audio_driven_and_dubbing_keep_the_given_stream(env, conditions):
    n, m = env.nodes, env.models
    latents, _ = H.run_node(n["TalkerT2AVAudioEncode"], audio_vae=m.vae, audio=conditions["audio"]).args
    driven, seconds = sample(env, conditions, given_audio=latents[:8])
    assert torch.equal(driven.audio, latents[:8]) and seconds == 8 / 25
    motion = torch.randn(8, 40) * 0.05
    dubbed, _ = sample(env, conditions, given_motion=motion)
    split_audio, split_motion = H.run_node(n["TalkerT2AVSplit"], av_latent=dubbed).args
    from t2av_core.motion_stats import normalize_motion
    # kept up to the recipe's bf16 rounding of normalised reference motion
    assert torch.allclose(dubbed.motion_norm, normalize_motion(motion), rtol=2 ** -8, atol=1e-6)
    assert torch.allclose(split_motion, motion, atol=2e-3)
    assert split_audio.shape == (8, 32)
    with pytest.raises(T2AVError, match="given_motion must be a \\(frames, 40\\)"):
        sample(env, conditions, given_motion=torch.zeros(8, 32))


def test_split_join_roundtrip_and_length_check(env, conditions):
    n = env.nodes
    av_latent, _ = sample(env, conditions)
    audio, motion = H.run_node(n["TalkerT2AVSplit"], av_latent=av_latent).args
    joined = H.run_node(n["TalkerT2AVJoin"], audio_latent=audio, motion=motion).args[0]
    assert torch.equal(joined.audio, av_latent.audio)
    assert torch.allclose(joined.motion_norm, av_latent.motion_norm, atol=1e-5)
    with pytest.raises(T2AVError, match="equally long"):
        H.run_node(n["TalkerT2AVJoin"], audio_latent=audio[:4], motion=motion)


def test_decoders_give_core_audio_and_images_of_the_same_duration(env, conditions):
    n, m = env.nodes, env.models
    av_latent, _ = sample(env, conditions)
    audio = H.run_node(n["TalkerT2AVAudioDecode"], audio_vae=m.vae, av_latent=av_latent).args[0]
    assert audio["sample_rate"] == 24000 and audio["waveform"].shape == (1, 1, 8 * 960)
    comfy.utils.updates.clear()
    images, fps, count = H.run_node(n["TalkerT2AVVideoDecode"], video_model=m.video, face=conditions["face"],
                                    av_latent=av_latent, batch_size=5).args
    assert images.shape == (8, 128, 128, 3) and images.dtype == torch.float32 and fps == 25.0 and count == 8
    assert 0 <= images.min() and images.max() <= 1
    assert comfy.utils.updates == [(5, 8), (8, 8)]  # batched, with progress
    pytest.decoded = (images, audio)


def test_mux_and_save_write_a_synchronised_mp4_with_a_preview(env, conditions):
    n = env.nodes
    images, audio = pytest.decoded
    video = H.run_node(n["TalkerT2AVMux"], images=images, fps=25.0, audio=audio).args[0]
    parts = video.get_components()
    assert parts.frame_rate == 25 and parts.audio is audio
    out = H.run_node(n["TalkerT2AVSaveVideo"], video=video, filename_prefix="tests/clip")
    info = H.saved_clip(out.ui)
    assert info.frames == 8 and info.seconds == 0.32 and info.has_audio
    # reported as core Save Video does: the Assets panel and API workers pick up "images" + "animated"
    assert out.ui["images"] == [{"filename": info.path.name, "subfolder": "tests", "type": "output"}]
    assert not any(isinstance(v, dict) for v in out.ui["talker_t2av"]), "one result, not a second file entry"
    assert out.ui["animated"] == (True,)
    path = info.path
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25 and sum(1 for _ in container.decode(stream)) == 8
        assert container.streams.audio[0].codec_context.name == "aac"
    with pytest.raises(T2AVError, match="non-empty IMAGE batch"):
        H.run_node(n["TalkerT2AVMux"], images=torch.zeros(0, 8, 8, 3), fps=25.0)


def test_core_sampler_adapter_matches_euler_and_refuses_cfg_pp(env):
    from t2av_core.sampling import EulerSolver, SwaySchedule
    node = env.nodes["TalkerT2AVSolverFromSampler"]
    solver = H.run_node(node, sampler=comfy.samplers.sampler_object("euler")).args[0]
    grid = SwaySchedule(6, 1.0).grid()
    target = torch.randn(2, 32, 4)
    steps = []

    def velocity(x, t, step):  # straight flow to ``target``, zero on the first step (as CFG-Zero* does)
        steps.append(step)
        return torch.zeros_like(x) if step == 1 else (x - target) / t

    x0 = torch.randn(2, 32, 4) * 0.3
    ours = solver.solve(velocity, x0.clone(), grid, draw=lambda shape: torch.randn(shape))
    assert steps == [1, 2, 3, 4, 5, 6]
    assert torch.allclose(ours, EulerSolver().solve(velocity, x0.clone(), grid), atol=1e-5)
    with pytest.raises(T2AVError, match="cfg_pp"):
        H.run_node(node, sampler=comfy.samplers.sampler_object("euler_cfg_pp"))
    with pytest.raises(T2AVError, match="not a core k-diffusion SAMPLER"):
        H.run_node(node, sampler=object())


def test_noise_injecting_core_samplers_follow_the_seed(env, conditions):
    """An ancestral sampler draws its extra noise from the run's seeded generator: another seed gives another
    clip, the same seed the same clip, and every patch gets new noise."""
    ancestral = H.run_node(env.nodes["TalkerT2AVSolverFromSampler"],
                           sampler=comfy.samplers.sampler_object("euler_ancestral")).args[0]
    runs = {seed: sample(env, conditions, solver=ancestral, seed=seed)[0] for seed in (1, 2)}
    again = sample(env, conditions, solver=ancestral, seed=1)[0]
    assert torch.equal(again.audio, runs[1].audio) and torch.equal(again.motion_norm, runs[1].motion_norm)
    assert (runs[1].audio - runs[2].audio).abs().max() > 1e-2
    # the injected noise itself comes from the draw function: same start, two seeded draws
    grid = torch.tensor([1.0, 0.9, 0.6, 0.3, 0.0])
    velocity = lambda x, t, step: x * 0.5  # noqa: E731
    x0 = torch.randn(1, 32, 4)

    def seeded(seed):
        generator = torch.Generator().manual_seed(seed)
        return lambda shape: torch.randn(shape, generator=generator)

    a, b, a2 = (ancestral.solve(velocity, x0.clone(), grid, draw=seeded(s)) for s in (1, 2, 1))
    assert torch.equal(a, a2) and (a - b).abs().max() > 1e-2


def test_core_schedules_above_one_and_short_grids_run(env, conditions):
    karras = torch.tensor([14.6146, 6.0, 2.0, 0.5, 0.0292, 0.0])
    mapped = sample(env, conditions, sigmas=karras)[0]
    same = sample(env, conditions, sigmas=karras / (1 + karras))[0]
    assert torch.equal(mapped.audio, same.audio) and torch.isfinite(mapped.audio).all()
    short = sample(env, conditions, sigmas=torch.tensor([1.0, 0.5]))[0]
    completed = sample(env, conditions, sigmas=torch.tensor([1.0, 0.5, 0.0]))[0]
    assert torch.equal(short.audio, completed.audio), "a grid stopping above 0 is finished with a step to 0"


def test_custom_sigmas_are_checked(env, conditions):
    bad = torch.tensor([1.0, 0.5, 0.7, 0.0])
    with pytest.raises(T2AVError, match="descending"):
        sample(env, conditions, sigmas=bad)
    sigmas = H.run_node(env.nodes["TalkerT2AVSwaySchedule"], steps=10, sway=1.0).args[0]
    assert sigmas.shape == (11,) and sigmas[0] == 1 and sigmas[-1] == 0
    assert math.isclose(float(sigmas[1]), 0.9564, abs_tol=1e-4)  # the released grid
