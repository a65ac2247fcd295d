"""Split a text that is too long for one prompt into chunks that each fit, cutting at sentence ends."""

from __future__ import annotations

import re
from typing import Callable

from ..errors import T2AVError

# Where a text may be cut, from the most to the least natural. Each pattern matches empty positions, so
# splitting keeps every character; western marks only count when a space follows ("v2.0" stays whole).
_BREAKS = (
    re.compile(r"(?<=[.!?…;])(?=\s)|(?<=[。！？；\n])"),  # sentence ends, line breaks
    re.compile(r"(?<=[,:])(?=\s)|(?<=[，、：])"),  # clauses
    re.compile(r"(?=\s)"),  # words
)


def split_text_into_chunks(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Cut ``text`` into stripped chunks of at most ``max_tokens`` tokens each, as counted by ``count_tokens``.

    Whole sentences are packed greedily; a sentence that alone is too long is cut at clauses, then at
    words, and as a last resort between characters. Joining the chunks with spaces gives the text back up
    to whitespace at the cuts.
    """
    if max_tokens < 1:
        raise T2AVError(f"max_tokens must be at least 1, got {max_tokens}")
    if not text.strip():
        raise T2AVError("the text is empty: type the sentence the face should speak")
    pieces = _fitting_pieces(text, max_tokens, count_tokens, level=0)
    chunks, current = [], ""
    for piece in pieces:
        if current.strip() and count_tokens((current + piece).strip()) > max_tokens:
            chunks.append(current.strip())
            current = piece
        else:
            current += piece
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _fitting_pieces(text: str, max_tokens: int, count_tokens: Callable[[str], int], level: int) -> list[str]:
    """Consecutive pieces of ``text`` (concatenating to it) that each fit ``max_tokens`` on their own."""
    if count_tokens(text.strip()) <= max_tokens:
        return [text]
    if level == len(_BREAKS):  # no natural break left: fall back to single characters
        for char in text:
            if count_tokens(char) > max_tokens:
                raise T2AVError(f"max_tokens={max_tokens} is smaller than the {count_tokens(char)} tokens of {char!r}")
        return list(text)
    pieces = []
    for part in _BREAKS[level].split(text):
        if part:
            pieces.extend(_fitting_pieces(part, max_tokens, count_tokens, level + 1))
    return pieces
