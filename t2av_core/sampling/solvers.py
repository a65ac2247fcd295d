"""ODE steppers from t = 1 (noise) down to t = 0 along a time grid: x <- x - dt * v(x, t).

``velocity(x, t, step)`` is given the 1-based step index so guidance can zero the first steps.
Euler replays the reference exactly, including how it accumulates t by subtraction.

A solver that injects noise on the way (an ancestral or SDE sampler) sets ``stochastic = True``; it is then
called as ``solve(velocity, x, grid, draw=draw)``, where ``draw(shape)`` returns standard-normal noise from the
run's own seeded generator (one per sample of a batch), so a seed still repeats the run on every device.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

Velocity = Callable[[Tensor, Tensor, int], Tensor]
Draw = Callable[[tuple[int, ...]], Tensor]  # standard-normal noise of a shape, from the run's seeded generator


class EulerSolver:
    """First order; one velocity evaluation per step (the released recipe)."""

    def solve(self, velocity: Velocity, x: Tensor, grid: Tensor) -> Tensor:
        t, dt = grid[0], grid[0] - grid[1]
        n = grid.shape[0] - 1
        for step in range(1, n + 1):
            x = x - dt * velocity(x, t, step)
            t = t - dt
            if step < n:
                dt = t - grid[step + 1]
        return x


class HeunSolver:
    """Second order (trapezoid): predictor Euler step, then the average of both slopes."""

    def solve(self, velocity: Velocity, x: Tensor, grid: Tensor) -> Tensor:
        for step in range(1, grid.shape[0]):
            t, t_next = grid[step - 1], grid[step]
            dt = t - t_next
            v = velocity(x, t, step)
            v_next = velocity(x - dt * v, t_next, step)
            x = x - dt * 0.5 * (v + v_next)
        return x


class MidpointSolver:
    """Second order: slope taken half a step ahead."""

    def solve(self, velocity: Velocity, x: Tensor, grid: Tensor) -> Tensor:
        for step in range(1, grid.shape[0]):
            t, t_next = grid[step - 1], grid[step]
            dt = t - t_next
            v = velocity(x, t, step)
            x = x - dt * velocity(x - 0.5 * dt * v, t - 0.5 * dt, step)
        return x


SOLVERS = {"euler": EulerSolver, "heun": HeunSolver, "midpoint": MidpointSolver}
