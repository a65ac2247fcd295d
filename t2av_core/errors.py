"""Errors the library raises for bad input; every message says what was wrong and how to fix it."""

import math
import numbers


class T2AVError(ValueError):
    """Bad input or a bad file: the message is meant for the end user."""


class CheckpointError(T2AVError):
    """A weights file is missing, unreadable, unsafe, or does not match the expected model."""


class GenerationCancelled(RuntimeError):
    """A per-step callback asked the generation loop to stop."""


def check_number(name: str, value, minimum: float | None = None) -> float:
    """``value`` when it is a real, finite number (a bool is not one) of at least ``minimum``; else a T2AVError
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise T2AVError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise T2AVError(f"{name} must be >= {minimum:g}, got {value!r}")
    return value
