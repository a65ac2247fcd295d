"""Character-level prompt ids for the demo model (it has no Qwen3 tokenizer: the vocabulary is 64 ids).

Layout, mirroring the released chat prompt in miniature: ``[BEGIN] characters... [SPEAK]``; the hidden state
at ``[SPEAK]`` predicts the first audio/video patch, exactly where the released prompt's last prefix id does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import T2AVError
from ..interfaces import DEMO

PAD, BEGIN, SPEAK, UNKNOWN = 0, 1, 2, 3
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,?!'-:;\""
VOCAB_SIZE = 64
MAX_TEXT_CHARS = 200  # the demo was trained on single sentences; longer texts drift
_IDS = {ch: i + 4 for i, ch in enumerate(ALPHABET)}
assert len(_IDS) + 4 <= VOCAB_SIZE


@dataclass(frozen=True)
class DemoPrompt:
    text: str
    prefix_ids: torch.Tensor  # (1, L) int64: everything the backbone reads before the first patch


class DemoTokenizer:
    """Same ``build_prompt(text)`` entry point as the released tokenizer, for the pipeline's ``encode_text``."""

    family = DEMO  # fits only the demo generator (t2av_core.interfaces.family_of)

    vocab_size = VOCAB_SIZE
    template_ids = 2  # BEGIN and SPEAK: the prompt ids that are not text
    max_text_chars = MAX_TEXT_CHARS  # a long script is planned in chunks of at most this (t2av_core.longform)

    def text_ids(self, text: str) -> list[int]:
        return [_IDS.get(ch, UNKNOWN) for ch in " ".join(text.lower().split())]

    def build_prompt(self, text: str) -> DemoPrompt:
        if not isinstance(text, str):
            raise T2AVError(f"the prompt text must be a string, got {type(text).__name__}")
        text = text.strip()
        if not text:
            raise T2AVError("the text is empty: type the sentence the face should speak")
        if len(text) > MAX_TEXT_CHARS:
            raise T2AVError(f"the demo model speaks at most {MAX_TEXT_CHARS} characters at once, got {len(text)}: "
                            "shorten the text or use the released weights")
        ids = [BEGIN] + self.text_ids(text) + [SPEAK]
        return DemoPrompt(text, torch.tensor([ids], dtype=torch.long))
