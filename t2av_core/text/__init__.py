"""Text front end: the checkpoint's Qwen3 tokenizer and the chat-template prompt ids."""

from .chunking import split_text_into_chunks
from .prompt import (
    MAX_PROMPT_TOKENS,
    MOTION_FRAME_ID,
    SPEECH_FRAME_ID,
    Prompt,
    TalkerTokenizer,
    placeholder_count,
)

__all__ = [
    "MAX_PROMPT_TOKENS",
    "MOTION_FRAME_ID",
    "SPEECH_FRAME_ID",
    "Prompt",
    "TalkerTokenizer",
    "placeholder_count",
    "split_text_into_chunks",
]
