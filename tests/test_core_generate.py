"""The joint AR loop against the four official rollouts (recorded noise injected), plus its other modes."""

from __future__ import annotations

import math

import pytest
import torch

from core_helpers import ROLLOUT_TOL, assert_close, load_tiny_core
from t2av_core.errors import GenerationCancelled, T2AVError
from t2av_core.generate import GenerationSettings, generate_av, generate_av_batch, step_budget
from t2av_core.model.talker import load_talker
from t2av_core.motion_stats import denormalize_motion
from t2av_core.sampling import RecordedNoise

ROLLOUTS = ["prefix0p5", "prefix0", "prefix0p5_budget", "prefix0p5_short_speech"]
TRACED = ["prefill_inputs_embeds", "prefill_last_hidden", "mu", "speech_cond", "motion_cond", "speech_patch",
          "motion_patch", "next_embed", "hidden_after_step", "stop_logits"]


@pytest.fixture(scope="module")
def core(parity_dir):
    return load_tiny_core(parity_dir)


def rollout(core, name):
    manifest, t, _ = core
    spec = manifest["cases"][f"rollout.{name}"]
    get = lambda key: t[spec["tensors"][key]]  # noqa: E731
    return spec, get


def recorded(get, streams=("speech", "motion")):
    """The official draw order: per step speech then motion."""
    noise = {s: get(f"{s}_noise") for s in streams}
    n = next(iter(noise.values())).shape[0]
    return RecordedNoise([noise[s][i:i + 1] for i in range(n) for s in streams])


def inputs(get):
    s0 = int(get("speech_span")[0])
    return dict(prompt_ids=get("input_ids")[:, :s0], voice=get("speaker_embedding"), face_motion=get("ref_motion_raw"),
                ref_audio_latents=get("ref_speech_latents"))


@pytest.mark.parametrize("name", ROLLOUTS)
def test_official_rollout(core, name):
    spec, get = rollout(core, name)
    settings = GenerationSettings(budget="reference", prefix_seconds=spec["settings"]["gt_prefix_seconds"])
    trace = {}
    out = generate_av(core[2], settings=settings, noise=recorded(get), trace=trace, **inputs(get))

    result, derived = spec["result"], spec["derived"]
    assert out.n_steps == result["n_steps_sampled"]
    assert out.stop_reason == {"stop_head": "stop", "budget_exhausted": "budget"}[result["termination"]]
    if result["stop_fired_at_step"] is not None:
        assert spec["stop_checks"][-1]["step"] == out.n_steps == result["stop_fired_at_step"]
    assert out.prefix_frames == derived["prefix_frames"]
    assert trace["prefill_inputs_embeds"].shape[1] == derived["prefill_len"]
    for key in TRACED:  # first mismatch localises a bug
        assert_close(trace[key], get(key), key, ROLLOUT_TOL)

    pf = out.prefix_frames
    assert out.audio.shape == (pf + 4 * out.n_steps, 32) and out.motion_norm.shape == (pf + 4 * out.n_steps, 40)
    assert_close(out.audio[pf:], get("gen_speech_latents"), "generated audio latents", ROLLOUT_TOL)
    assert_close(out.motion_norm[pf:], get("gen_motion_latents_norm"), "generated motion", ROLLOUT_TOL)
    assert_close(out.motion_raw(), get("pred_motion_raw"), "returned raw motion", ROLLOUT_TOL)
    used = derived["speech_prefix_frames_used"]
    assert_close(out.audio[:used], get("full_speech_latents")[:used], "audio prefix", ROLLOUT_TOL)
    assert not out.audio[used:pf].any(), "audio prefix is zero-padded where the reference is shorter (kept aligned)"


def test_audio_driven_reproduces_the_motion_of_a_rollout(core):
    spec, get = rollout(core, "prefix0p5_budget")
    settings = GenerationSettings(budget="reference", prefix_seconds=0.5)
    out = generate_av(core[2], settings=settings, given_audio=get("gen_speech_latents"),
                      noise=recorded(get, ("motion",)), **inputs(get))
    assert (out.n_steps, out.stop_reason) == (spec["result"]["n_steps_sampled"], "budget")
    assert_close(out.motion_norm[12:], get("gen_motion_latents_norm"), "audio-driven motion", ROLLOUT_TOL)
    assert torch.equal(out.audio[12:], get("gen_speech_latents"))


def test_dubbing_reproduces_the_audio_of_a_rollout(core):
    spec, get = rollout(core, "prefix0p5_budget")
    given = denormalize_motion(get("gen_motion_latents_norm"))  # dubbing takes raw motion codes
    out = generate_av(core[2], settings=GenerationSettings(prefix_seconds=0.5), given_motion=given,
                      noise=recorded(get, ("speech",)), **inputs(get))
    assert out.n_steps == spec["result"]["n_steps_sampled"]
    assert_close(out.audio[12:], get("gen_speech_latents"), "dubbed audio", ROLLOUT_TOL)


def test_batch_of_seeds_matches_single_runs(core):
    spec, get = rollout(core, "prefix0p5")
    settings = GenerationSettings(budget="reference", prefix_seconds=0.5)
    a, b = generate_av_batch(core[2], settings=settings, noise=[recorded(get), recorded(get)], **inputs(get))
    for out in (a, b):
        assert (out.n_steps, out.stop_reason) == (13, "stop")
        assert_close(out.audio[12:], get("gen_speech_latents"), "batched audio", ROLLOUT_TOL)
    seeded = generate_av_batch(core[2], settings=GenerationSettings(budget="text", max_seconds=1.0),
                               seeds=[1, 2, 1], **inputs(get))
    assert_close(seeded[0].audio, seeded[2].audio, "same seed twice in one batch", ROLLOUT_TOL)
    assert (seeded[0].audio - seeded[1].audio).abs().max() > 0.1, "different seeds give different samples"
    again = generate_av(core[2], settings=GenerationSettings(budget="text", max_seconds=1.0, seed=2), **inputs(get))
    assert_close(again.audio, seeded[1].audio, "seed 2 alone vs in a batch", ROLLOUT_TOL)


def test_progress_callback_and_cancellation(core):
    _, get = rollout(core, "prefix0")
    seen = []
    out = generate_av(core[2], settings=GenerationSettings(max_seconds=0.8, prefix_seconds=0), callback=lambda i, n: seen.append((i, n)),
                      **inputs(get))
    assert seen == [(i, 5) for i in range(1, 6)] and out.n_steps == 5 and out.stop_reason == "budget"
    assert out.prefix_frames == 0 and out.audio.shape == (20, 32)

    def cancel(i, n):
        if i == 2:
            raise GenerationCancelled("user pressed stop")

    with pytest.raises(GenerationCancelled):
        generate_av(core[2], callback=cancel, **inputs(get))
    assert core[2].backbone.max_len == 0, "the KV cache is released after a cancelled run"


def test_step_budget_rules():
    ref = GenerationSettings(budget="reference")
    assert step_budget(ref, 21, 3, 41, 40) == 11 - 3 + 15
    assert step_budget(ref, 21, 3, 10, 20) == 5 - 3 + 15
    text = GenerationSettings(budget="text", max_seconds=30.0)
    short, long = step_budget(text, 12 + 5, 0, 0, 0), step_budget(text, 12 + 500, 0, 0, 0)
    assert short == math.ceil((2.0 + 0.6 * 5) * 25 / 4) and long == math.ceil(30 * 25 / 4)
    for bad in (dict(budget="forever"), dict(temperature=-1), dict(max_seconds=0), dict(task_tag="middle"),
                dict(cfm_steps=0)):
        with pytest.raises(T2AVError):
            GenerationSettings(**bad)


def test_bad_inputs_are_rejected(core):
    _, get = rollout(core, "prefix0")
    good = inputs(get)
    model = core[2]
    cases = [
        (dict(voice=torch.zeros(128)), "speaker embedding"),
        (dict(prompt_ids=torch.zeros(1, 0, dtype=torch.long)), "non-empty"),
        (dict(prompt_ids=torch.tensor([[5000]])), r"\[0, 1024\)"),
        (dict(face_motion=torch.zeros(10, 39)), "face_motion"),
        (dict(face_motion=torch.full((4, 40), float("nan"))), "NaN"),
        (dict(given_audio=torch.zeros(8, 32), given_motion=torch.zeros(8, 40)), "not both"),
    ]
    for change, message in cases:
        with pytest.raises(T2AVError, match=message):
            generate_av(model, **{**good, **change})
    with pytest.raises(T2AVError, match="solver"):
        generate_av(model, settings=GenerationSettings(solver="rk45"), **good)


def test_reduced_precision_and_training_layout_run(core, parity_dir):
    _, get = rollout(core, "prefix0p5")
    half = load_talker(parity_dir / "core" / "core_tiny.safetensors", dtype=torch.bfloat16)
    settings = GenerationSettings(prefix_seconds=0.5, max_seconds=1.0)  # 7 patches, within the recorded noise
    ref = generate_av(core[2], settings=settings, noise=recorded(get), **inputs(get))
    out = generate_av(half, settings=settings, noise=recorded(get), **inputs(get))
    assert out.audio.dtype == torch.float32 and torch.isfinite(out.audio).all()
    # bf16 drifts, but the first patch still follows the fp32 one
    assert (out.audio[12:16] - ref.audio[12:16]).abs().mean() < 0.1 and out.audio.shape == ref.audio.shape == (12 + 4 * 7, 32)
    trace = {}
    generate_av(core[2], settings=GenerationSettings(task_tag="leading", max_seconds=1),
                noise=recorded(get), trace=trace, **inputs(get))
    embeds = trace["prefill_inputs_embeds"][0]
    expected = get("prefill_inputs_embeds")[0]
    assert embeds.shape[0] == expected.shape[0] + 1
    assert_close(embeds[0], core[2].task_embedding.weight[1], "leading task tag")
    assert_close(embeds[-2:], expected[-2:], "later prefix patches are untouched")
    assert (embeds[-3] - expected[-3]).abs().max() > 0.1, "first prefix patch carries no tag in this layout"
