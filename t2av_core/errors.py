"""Errors the library raises for bad input; every message says what was wrong and how to fix it."""


class T2AVError(ValueError):
    """Bad input or a bad file: the message is meant for the end user."""


class CheckpointError(T2AVError):
    """A weights file is missing, unreadable, unsafe, or does not match the expected model."""


class GenerationCancelled(RuntimeError):
    """A per-step callback asked the generation loop to stop."""
