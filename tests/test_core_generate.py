"""The joint AR loop against the four official rollouts (recorded noise injected), plus its other modes."""

from __future__ import annotations

import math
import time

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


@pytest.mark.parametrize("frames", [13, 17, 20])
def test_a_given_stream_sets_the_length_to_the_frame(core, frames):
    """Whole 4-frame patches are generated, but the result ends where the given stream ends (no tail of
    padding, which showed as the mean pose or a zero latent)."""
    _, get = rollout(core, "prefix0")
    settings = GenerationSettings(prefix_seconds=0, seed=1)
    driven = generate_av(core[2], settings=settings, given_audio=torch.randn(frames, 32), **inputs(get))
    dubbed = generate_av(core[2], settings=settings, given_motion=torch.randn(frames, 40) * 0.1, **inputs(get))
    for out in (driven, dubbed):
        assert out.audio.shape[0] == out.motion_norm.shape[0] == frames and out.n_steps == math.ceil(frames / 4)


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
    after = generate_av(core[2], settings=GenerationSettings(max_seconds=0.8, prefix_seconds=0), **inputs(get))
    assert torch.equal(after.audio, out.audio), "a cancelled run leaves no state behind in the model"


def test_progress_finishes_when_the_stop_head_ends_early(core):
    spec, get = rollout(core, "prefix0p5")  # the stop head fires at step 13 of a larger budget
    seen = []
    out = generate_av(core[2], settings=GenerationSettings(budget="reference", prefix_seconds=0.5),
                      noise=recorded(get), callback=lambda i, n: seen.append((i, n)), **inputs(get))
    assert out.stop_reason == "stop" and seen[-2][0] == out.n_steps < seen[-2][1]
    assert seen[-1] == (out.n_steps, out.n_steps), "the last progress call reports 100 %"


def test_two_threads_on_one_model_get_their_own_results(core):
    """The KV cache belongs to each call, so concurrent runs on one model do not mix their states."""
    import threading
    _, get = rollout(core, "prefix0")
    settings = [GenerationSettings(max_seconds=1.6, prefix_seconds=0, seed=seed, use_stop=False) for seed in (3, 4)]
    alone = [generate_av(core[2], settings=s, **inputs(get)) for s in settings]
    together, barrier = [None, None], threading.Barrier(2)

    def run(i):
        barrier.wait()
        together[i] = generate_av(core[2], settings=settings[i], callback=lambda *_: time.sleep(0.001),
                                  **inputs(get))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for a, b in zip(alone, together):
        assert torch.equal(a.audio, b.audio) and torch.equal(a.motion_norm, b.motion_norm)


def test_nan_weights_stop_the_run_naming_the_stage(parity_dir):
    fresh = load_tiny_core(parity_dir)  # a model of its own: its weights are damaged below
    _, get = rollout(fresh, "prefix0")
    model = fresh[2]
    with torch.no_grad():
        model.speech_cfm.estimator.out_proj.weight[0, 0] = float("nan")
    with pytest.raises(T2AVError, match="joint sampling produced NaN or infinite speech latents"):
        generate_av(model, settings=GenerationSettings(max_seconds=0.8, prefix_seconds=0), **inputs(get))


def test_seed_range_and_random_seed_is_reported(core):
    _, get = rollout(core, "prefix0")
    short = dict(max_seconds=0.32, prefix_seconds=0)
    outs = {seed: generate_av(core[2], settings=GenerationSettings(seed=seed, **short), **inputs(get)).audio
            for seed in (0, 2**32, 2**63, 2**64 - 1)}
    values = list(outs.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1:]), \
        "every bit of the seed changes the noise (torch's CPU generator would keep only the low 32)"
    for bad in (-1, 2**64, 2.5, "7", True):
        with pytest.raises(T2AVError, match="seed must be a whole number from 0 to"):
            GenerationSettings(seed=bad)
    randomly = generate_av(core[2], settings=GenerationSettings(seed=None, **short), **inputs(get))
    assert isinstance(randomly.seed, int)
    again = generate_av(core[2], settings=GenerationSettings(seed=randomly.seed, **short), **inputs(get))
    assert torch.equal(again.audio, randomly.audio), "the reported random seed repeats the run"


@pytest.mark.parametrize("field,value,message", [
    ("cfm_steps", 2.5, "whole number of steps"), ("cfm_steps", 10**6, "from 1 to 200"), ("cfm_steps", 0, "from 1"),
    ("sway", float("nan"), "sway must be a finite number"), ("sway", 5.0, "sway must lie between"),
    ("temperature", float("inf"), "temperature must be a finite"), ("cfg_scale", float("nan"), "cfg_scale must be"),
    ("max_seconds", float("inf"), "max_seconds must be a finite"), ("prefix_seconds", float("nan"), "prefix_seconds"),
])
def test_settings_refuse_values_that_cannot_work(field, value, message):
    with pytest.raises(T2AVError, match=message):
        GenerationSettings(**{field: value})


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


def test_different_prompts_in_one_batch_each_give_their_own_rollout(core):
    """The four official rollouts (different prompts and references, a prefix or none, so different prefill
    lengths: left padding) in one batch: each reproduces its own official result, steps and stop included."""
    from t2av_core.generate import Request, generate_requests
    requests, specs = [], []
    for name in ROLLOUTS:
        spec, get = rollout(core, name)
        specs.append((spec, get))
        requests.append(Request(**inputs(get), noise=recorded(get),
                                prefix_seconds=spec["settings"]["gt_prefix_seconds"]))
    outs = generate_requests(core[2], requests, GenerationSettings(budget="reference"))
    lengths = {req.prompt_ids.numel() + (out.prefix_frames // 4) for req, out in zip(requests, outs)}
    assert len(lengths) > 1, "the batch mixes prefill lengths"
    for (spec, get), out in zip(specs, outs):
        result = spec["result"]
        assert out.n_steps == result["n_steps_sampled"]
        assert out.stop_reason == {"stop_head": "stop", "budget_exhausted": "budget"}[result["termination"]]
        pf = out.prefix_frames
        assert_close(out.audio[pf:], get("gen_speech_latents"), "batched audio", ROLLOUT_TOL)
        assert_close(out.motion_norm[pf:], get("gen_motion_latents_norm"), "batched motion", ROLLOUT_TOL)


def test_a_batch_of_different_texts_matches_each_run_alone(core):
    from t2av_core.generate import Request, generate_requests
    _, get = rollout(core, "prefix0")
    base = inputs(get)
    prompts = [base["prompt_ids"][:, :n] for n in (base["prompt_ids"].shape[1], 17, 25)]
    settings = GenerationSettings(max_seconds=0.96, prefix_seconds=0)
    requests = [Request(p, base["voice"] * (1 + 0.1 * i), base["face_motion"], seed=i)
                for i, p in enumerate(prompts)]
    together = generate_requests(core[2], requests, settings)
    for request, out in zip(requests, together):
        alone = generate_requests(core[2], [request], settings)[0]
        assert out.n_steps == alone.n_steps and out.stop_reason == alone.stop_reason
        assert_close(out.audio, alone.audio, "batched vs alone", ROLLOUT_TOL)
        assert_close(out.motion_norm, alone.motion_norm, "batched vs alone", ROLLOUT_TOL)
