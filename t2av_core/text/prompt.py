"""Qwen3 tokenizer and the chat-template prompt Talker-T2AV is conditioned on.

The official inference renders ``[user: text, assistant: "<SPEECH_FRAME>" * N]`` with the checkpoint's Qwen3
chat template and tokenises the result, truncated to 1000 ids. For a final assistant turn that template
always writes an empty think block, so the ids are

    <|im_start|> "user\\n" TEXT <|im_end|> "\\n" <|im_start|> "assistant\\n" <think> "\\n\\n" </think> "\\n\\n"
    <SPEECH_FRAME> * N <|im_end|> "\\n"

and the model only consumes the ids before the first placeholder (the *prefix*, length ``s0``).
We assemble those ids piece by piece instead of rendering a Jinja template, which lets the default mode
keep the user's text plain: a literal "<SPEECH_FRAME>" or "<|im_end|>" typed by the user is spelled out
with ordinary BPE ids rather than turning into a control token. ``reference_mode=True`` tokenises the
rendered string in one go, exactly as the reference does, bugs included (used for parity tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer

from ..errors import CheckpointError, T2AVError
from .chunking import split_text_into_chunks

MAX_PROMPT_TOKENS = 1000  # the official inference truncates the whole prompt to this many ids
SPEECH_FRAME = "<SPEECH_FRAME>"
MOTION_FRAME = "<MOTION_FRAME>"
SPEECH_FRAME_ID = 151669  # ids these get when added to the stock Qwen3 tokenizer
MOTION_FRAME_ID = 151670
PATCH_SIZE = 4
DELAY_PATCHES = 5  # the official module constant that enters the placeholder count

# Control tokens of the Qwen3 template; they must already be in the tokenizer.
_TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
# Ids of a prefix that are not the text, with the released Qwen3 tokenizer: <|im_start|> "user" "\n" | TEXT |
# <|im_end|> "\n" <|im_start|> "assistant" "\n" <think> "\n\n" </think> "\n\n". Other tokenizers may split
# the template differently: TalkerTokenizer counts its own (``template_ids``).
TEMPLATE_IDS = 12


def check_utf8(text: str) -> None:
    """T2AVError for text holding lone surrogates: what Python makes of bytes that are not UTF-8 (a text file
    or terminal in another encoding); the tokenizer cannot encode them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start].encode("utf-8", "surrogateescape")
        raise T2AVError(f"the text is not valid UTF-8 (byte 0x{bad.hex()} at character {error.start}): save the "
                        "text as UTF-8, or set the terminal to UTF-8, and try again") from None


def placeholder_count(speech_len_frames: int, motion_len_frames: int) -> int:
    """Number of <SPEECH_FRAME> placeholders the official code writes for the given target lengths."""
    return max(math.ceil(speech_len_frames / PATCH_SIZE), motion_len_frames // PATCH_SIZE + DELAY_PATCHES)


@dataclass(frozen=True)
class Prompt:
    """Token ids of one prompt. Only ``prefix_ids`` (= ``input_ids[:, :s0]``) is fed to the model."""

    input_ids: torch.Tensor  # (1, L) int64: prefix, placeholders, closing <|im_end|> "\n"
    prefix_ids: torch.Tensor  # (1, s0) int64
    speech_span: tuple[int, int]  # [s0, s1): where the placeholders sit in input_ids
    text_ids: list[int]  # the user text tokenised on its own
    text: str  # the user text as it was encoded (stripped in the default mode)

    @property
    def prefix_len(self) -> int:
        return self.speech_span[0]


class TalkerTokenizer:
    """The checkpoint's Qwen3 tokenizer plus the two Talker-T2AV placeholder tokens."""

    def __init__(self, tokenizer: Tokenizer):
        missing = [t for t in _TEMPLATE_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise CheckpointError(
                f"the tokenizer lacks the Qwen3 chat tokens {missing}; use the tokenizer.json that ships with "
                "the Talker-T2AV checkpoint (a Qwen3 tokenizer)"
            )
        # The official code adds the placeholders as special tokens only when the checkpoint lacks them.
        new = [t for t in (SPEECH_FRAME, MOTION_FRAME) if tokenizer.token_to_id(t) is None]
        if new:
            tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in new])
        self.tokenizer = tokenizer
        ids = {t: tokenizer.token_to_id(t) for t in (*_TEMPLATE_TOKENS, SPEECH_FRAME, MOTION_FRAME)}
        self.im_start_id, self.im_end_id = ids["<|im_start|>"], ids["<|im_end|>"]
        self.think_id, self.end_think_id = ids["<think>"], ids["</think>"]
        self.speech_frame_id, self.motion_frame_id = ids[SPEECH_FRAME], ids[MOTION_FRAME]
        # Ids of a prefix that are not the text, as this tokenizer splits the template (12 for Qwen3's): the
        # prefix of an empty text is the whole prompt without its closing <|im_end|> "\n".
        self.template_ids = len(self._assemble_ids("", 0)) - 1 - len(self.encode_text("\n"))

    @classmethod
    def from_dir(cls, path: str | Path) -> TalkerTokenizer:
        """Load ``tokenizer.json`` from a checkpoint folder (or the path of that file itself)."""
        path = Path(path)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise CheckpointError(
                f"no tokenizer.json at {path}: point to the Talker-T2AV checkpoint folder, which holds the "
                "Qwen3 tokenizer.json next to model.safetensors"
            )
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as error:  # the library raises a bare Exception for malformed files
            raise CheckpointError(f"{file} is not a valid tokenizer.json ({error})") from error
        return cls(tokenizer)

    @property
    def max_text_tokens(self) -> int:
        """Longest text (in ids) that still leaves room for one placeholder within MAX_PROMPT_TOKENS."""
        return MAX_PROMPT_TOKENS - self.template_ids - 1

    def encode_text(self, text: str, *, reference_mode: bool = False) -> list[int]:
        """Ids of ``text`` alone. By default every character is plain text, special-token strings included."""
        check_utf8(text)
        if reference_mode:  # the reference lets added tokens ("<SPEECH_FRAME>", "<|im_end|>", ...) match
            return self.tokenizer.encode(text, add_special_tokens=False).ids
        # Normalise, pre-tokenise and BPE by hand: the same pipeline minus the added-token matching. A
        # tokenizer.json may have no normalizer or no pre-tokenizer; the step is then skipped, as the library does.
        normalizer, pre_tokenizer = self.tokenizer.normalizer, self.tokenizer.pre_tokenizer
        normalized = normalizer.normalize_str(text) if normalizer is not None else text
        pieces = pre_tokenizer.pre_tokenize_str(normalized) if pre_tokenizer is not None else [(normalized, None)]
        return [token.id for piece, _ in pieces for token in self.tokenizer.model.tokenize(piece)]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.flatten().tolist()
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def split_text(self, text: str, max_tokens: int | None = None) -> list[str]:
        """Split a long text at sentence ends into chunks of at most ``max_tokens`` ids (default: the limit)."""
        limit = self.max_text_tokens if max_tokens is None else max_tokens
        return split_text_into_chunks(text, limit, lambda chunk: len(self.encode_text(chunk)))

    def build_prompt(self, text: str, n_placeholders: int | None = None, *, reference_mode: bool = False) -> Prompt:
        """Prompt ids for ``text``.

        ``n_placeholders``: how many <SPEECH_FRAME> ids follow the prefix (the official code uses
        ``placeholder_count``); None builds the prefix alone, which is all the model reads.
        Default mode: the text is stripped, must not be empty and must fit MAX_PROMPT_TOKENS with at least one
        placeholder (else T2AVError; use ``split_text`` for long texts); the whole prompt is then cut at
        MAX_PROMPT_TOKENS like the reference does, which can only shorten the placeholder run.
        ``reference_mode=True`` reproduces the official ids exactly: no stripping, empty text allowed,
        special-token strings in the text become control ids, and truncation may eat the prefix (T2AVError
        instead of the reference's IndexError when no placeholder survives).
        """
        if not isinstance(text, str):
            raise T2AVError(f"the prompt text must be a string, got {type(text).__name__}")
        if n_placeholders is not None and n_placeholders < 0:
            raise T2AVError(f"n_placeholders must be >= 0, got {n_placeholders}")
        # Without a count we build one placeholder just to locate s0, then keep the prefix alone.
        count = 1 if n_placeholders is None else n_placeholders
        if reference_mode:
            ids = self.reference_ids(text, count)
            text_ids = self.encode_text(text, reference_mode=True)
        else:
            text = text.strip()
            if not text:
                raise T2AVError("the text is empty: type the sentence the face should speak")
            text_ids = self.encode_text(text)
            if len(text_ids) > self.max_text_tokens:
                raise T2AVError(
                    f"the text is {len(text_ids)} tokens long; at most {self.max_text_tokens} fit in one prompt. "
                    "Shorten it, or split it into sentences (TalkerTokenizer.split_text) and generate each part"
                )
            ids = self._assemble_ids(text, count)[:MAX_PROMPT_TOKENS]

        positions = [i for i, token in enumerate(ids) if token == self.speech_frame_id]
        if not positions:
            raise T2AVError(
                "n_placeholders=0 leaves no placeholder to locate; pass None to build the prefix only"
                if count == 0
                else f"no <SPEECH_FRAME> placeholder survives the {MAX_PROMPT_TOKENS}-token limit: the text is "
                "too long (split it into sentences with TalkerTokenizer.split_text)"
            )
        s0, s1 = positions[0], positions[-1] + 1
        if n_placeholders is None:
            ids, s1 = ids[:s0], s0
        input_ids = torch.tensor([ids], dtype=torch.long)
        return Prompt(input_ids, input_ids[:, :s0].clone(), (s0, s1), text_ids, text)

    def _assemble_ids(self, text: str, n_placeholders: int) -> list[int]:
        """The template ids built piece by piece, the user text encoded as plain text."""
        plain = self.encode_text
        return [
            self.im_start_id, *plain("user\n" + text),  # one piece: the reference also tokenises them together
            self.im_end_id, *plain("\n"),
            self.im_start_id, *plain("assistant\n"),
            self.think_id, *plain("\n\n"), self.end_think_id, *plain("\n\n"),
            *[self.speech_frame_id] * n_placeholders,
            self.im_end_id, *plain("\n"),
        ]  # fmt: skip

    def reference_ids(self, text: str, n_placeholders: int) -> list[int]:
        """The official path: render the chat string, tokenise it whole, keep the first 1000 ids."""
        rendered = (
            f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            f"{SPEECH_FRAME * n_placeholders}<|im_end|>\n"
        )
        return self.tokenizer.encode(rendered, add_special_tokens=False).ids[:MAX_PROMPT_TOKENS]
