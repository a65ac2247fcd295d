"""Swappable pieces of the flow-head sampler: schedule, guidance, solver, noise."""

from .flow_sampler import FlowSampler
from .guidance import CFGGuidance
from .noise import NoiseSource, RecordedNoise
from .schedules import CustomSchedule, SwaySchedule, UniformSchedule, flow_times_from_sigmas
from .solvers import SOLVERS, EulerSolver, HeunSolver, MidpointSolver

__all__ = ["FlowSampler", "CFGGuidance", "NoiseSource", "RecordedNoise", "SwaySchedule", "UniformSchedule",
           "CustomSchedule", "flow_times_from_sigmas", "EulerSolver", "HeunSolver", "MidpointSolver", "SOLVERS"]
