"""The flow sampler against every official grid case, plus the swappable parts on their own."""

from __future__ import annotations

import pytest
import torch

from core_helpers import assert_close, load_tiny_core
from t2av_core.errors import T2AVError
from t2av_core.model.talker import load_talker
from t2av_core.sampling import (CFGGuidance, CustomSchedule, EulerSolver, FlowSampler, HeunSolver, MidpointSolver,
                                NoiseSource, RecordedNoise, SwaySchedule, UniformSchedule)


@pytest.fixture(scope="module")
def core(parity_dir):
    return load_tiny_core(parity_dir)


GRID = [f"cfm.{h}.g{i:02d}" for h in ("speech", "motion") for i in range(16)]


@pytest.mark.parametrize("case", GRID)
def test_sampler_grid_case(core, case):
    manifest, t, model = core
    spec = manifest["cases"][case]
    s, exp = spec["settings"], spec["expected"]
    head = case.split(".")[1]
    sampler = FlowSampler(SwaySchedule(s["n_timesteps"], s["sway_sampling_coef"]),
                          CFGGuidance(s["cfg_value"], s["use_cfg_zero_star"]), EulerSolver(), s["temperature"])
    trace = []
    with torch.no_grad():
        out = sampler.sample(getattr(model, f"{head}_cfm").estimator, t[f"cfm.{head}.mu"], t[f"cfm.{head}.cond"],
                             t[f"cfm.{head}.global_cond"], t[f"{case}.noise"], trace)
    assert len(trace) == spec["n_estimator_calls"]
    assert_close(sampler.schedule.grid(), t[exp["t_span"]], "t_span")
    assert_close(torch.stack([tt for tt, _ in trace]), t[exp["estimator_t"]], "estimator t")
    assert_close(torch.stack([o for _, o in trace]), t[exp["estimator_out"]], "estimator outputs")
    assert_close(out, t[exp["output"]], "sampled patch")


def test_sway_grid_values():
    expected = [1.0, 0.95643443, 0.90901697, 0.85399055, 0.78778523, 0.70710677, 0.60901701, 0.49100655,
                0.35105655, 0.18768837, 0.0]
    torch.testing.assert_close(SwaySchedule(10, 1.0).grid(), torch.tensor(expected), atol=1e-7, rtol=0)
    torch.testing.assert_close(UniformSchedule(4).grid(), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_custom_schedule_validation():
    assert CustomSchedule(torch.tensor([1.0, 0.5, 0.0])).steps == 2
    for bad in ([1.0], [0.5, 0.7, 0.0], [2.0, 1.0, 0.0], [1.0, float("nan"), 0.0]):
        with pytest.raises(T2AVError):
            CustomSchedule(bad)
    with pytest.raises(T2AVError):
        SwaySchedule(0)


def test_zero_star_skips_first_step_only_when_on():
    assert CFGGuidance(2.0, True).zero_init_steps(10) == 1
    assert CFGGuidance(2.0, True).zero_init_steps(49) == 2
    assert CFGGuidance(2.0, False).zero_init_steps(10) == 0
    v_c, v_u = torch.randn(3, 4, 4), torch.randn(3, 4, 4)
    torch.testing.assert_close(CFGGuidance(1.0, False).combine(v_c, v_u), v_c)
    torch.testing.assert_close(CFGGuidance(2.0, False).combine(v_c, v_u), 2 * v_c - v_u)


def test_second_order_solvers_beat_euler_on_a_known_flow():
    # dx/dt = x  integrated from t=1 to t=0 (x <- x - dt * v): exact x(0) = x(1) * exp(-1)
    velocity = lambda x, t, step: x  # noqa: E731
    x1, grid = torch.ones(1), UniformSchedule(8).grid()
    exact = torch.exp(torch.tensor(-1.0))
    errors = {type(s).__name__: (s.solve(velocity, x1, grid) - exact).abs().item()
              for s in (EulerSolver(), HeunSolver(), MidpointSolver())}
    assert errors["HeunSolver"] < errors["EulerSolver"] / 5
    assert errors["MidpointSolver"] < errors["EulerSolver"] / 5


def test_noise_source_is_seeded_and_recorded_noise_checks_shapes():
    a, b = NoiseSource(7).draw((2, 3)), NoiseSource(7).draw((2, 3))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, NoiseSource(8).draw((2, 3)))
    rec = RecordedNoise([torch.zeros(1, 2)])
    with pytest.raises(T2AVError, match="shape"):
        rec.draw((1, 3))
    rec.draw((1, 2))
    with pytest.raises(T2AVError, match="exhausted"):
        rec.draw((1, 2))


def test_time_and_ode_state_stay_float32_with_16_bit_weights(parity_dir):
    g = torch.Generator().manual_seed(0)
    mu, glob, z = torch.randn(1, 128, generator=g), torch.randn(1, 256, generator=g), torch.randn(1, 32, 4, generator=g)
    cond = torch.randn(1, 32, 16, generator=g)
    times, outputs = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        model = load_talker(parity_dir / "core" / "core_tiny.safetensors", dtype=dtype)
        trace = []
        outputs[dtype] = FlowSampler().sample(model.speech_cfm.estimator, mu.to(dtype), cond.to(dtype),
                                              glob.to(dtype), z, trace=trace)
        times[dtype] = torch.stack([t for t, _ in trace])
    # the estimator sees the same float32 times (bf16 would turn 0.9564 into 0.957), and the patch comes back
    # in the weights' dtype
    assert times[torch.bfloat16].dtype == torch.float32 and torch.equal(times[torch.bfloat16], times[torch.float32])
    assert outputs[torch.bfloat16].dtype == torch.bfloat16
    assert (outputs[torch.bfloat16].float() - outputs[torch.float32]).abs().mean() < 0.05


def test_sigmas_above_one_are_mapped_to_flow_time_by_noise_level():
    from t2av_core.sampling import flow_times_from_sigmas
    # a Karras grid as the core KarrasScheduler makes it with its defaults (sigma 14.61 .. 0.0292, then 0)
    rho, smax, smin, n = 7.0, 14.614642, 0.0291675, 10
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    karras = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    sigmas = torch.cat([karras, karras.new_zeros(1)])
    times, notes = flow_times_from_sigmas(sigmas)
    expected = (sigmas / (1 + sigmas)).tolist()
    assert times == pytest.approx(expected, abs=1e-12) and len(notes) == 1 and "sigma / (1 + sigma)" in notes[0]
    # equal noise-to-signal ratio: t / (1 - t) is the original sigma
    assert [t / (1 - t) for t in times[:-1]] == pytest.approx(sigmas[:-1].tolist(), rel=1e-9)
    assert flow_times_from_sigmas([1.0, 0.6, 0.0]) == ((1.0, 0.6, 0.0), [])  # flow times stay as they are


def test_a_grid_that_stops_short_of_zero_is_completed():
    from t2av_core.sampling import flow_times_from_sigmas
    times, notes = flow_times_from_sigmas([1.0, 0.5])
    assert times == (1.0, 0.5, 0.0) and "last step to 0" in notes[0]


@pytest.mark.parametrize("bad,message", [([0.0, 0.5, 1.0], "strictly descending"), ([1.0, float("nan"), 0.0], "finite"),
                                         ([1.0], "at least 2"), ([0.5, -0.5], "below 0")])
def test_grids_that_cannot_be_times_are_refused(bad, message):
    from t2av_core.sampling import flow_times_from_sigmas
    with pytest.raises(T2AVError, match=message):
        flow_times_from_sigmas(bad)
