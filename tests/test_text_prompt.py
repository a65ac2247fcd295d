"""Prompt ids against the reference's (parity/core/prompt_cases.json) and the fixes to its failure modes."""

import json

import pytest
import torch

from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.text import (
    MAX_PROMPT_TOKENS,
    MOTION_FRAME_ID,
    SPEECH_FRAME_ID,
    TalkerTokenizer,
    placeholder_count,
    split_text_into_chunks,
)

PREFIX_HEAD = [151644, 872, 198]  # <|im_start|> user \n
PREFIX_TAIL = [151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271]


@pytest.fixture(scope="module")
def prompt_cases(parity_dir):
    return json.loads((parity_dir / "core" / "prompt_cases.json").read_text())


@pytest.fixture(scope="module")
def tok(parity_dir):
    return TalkerTokenizer.from_dir(parity_dir / "qwen3_tokenizer")


def _case(prompt_cases, name):
    return next(c for c in prompt_cases["cases"] + prompt_cases["edge_cases"] if c["name"] == name)


def _assert_matches(prompt, case):
    assert prompt.input_ids.dtype == torch.long and prompt.input_ids.shape == (1, case["n_ids"])
    assert prompt.input_ids[0].tolist() == case["input_ids"]
    assert list(prompt.speech_span) == case["speech_span"]
    assert prompt.prefix_ids[0].tolist() == case["prefix_ids"]
    assert prompt.text_ids == case["text_ids"]


def test_special_ids(tok, prompt_cases):
    assert tok.tokenizer.get_vocab_size(with_added_tokens=True) == prompt_cases["len_tokenizer"]
    assert (tok.speech_frame_id, tok.motion_frame_id) == (SPEECH_FRAME_ID, MOTION_FRAME_ID)
    for token, token_id in prompt_cases["special_ids"].items():
        assert tok.tokenizer.token_to_id(token) == token_id


def test_loading_a_tokenizer_that_already_has_the_placeholders(tok, tmp_path):
    (tmp_path / "tokenizer.json").write_text(tok.tokenizer.to_str())
    again = TalkerTokenizer.from_dir(tmp_path / "tokenizer.json")
    assert (again.speech_frame_id, again.motion_frame_id) == (SPEECH_FRAME_ID, MOTION_FRAME_ID)
    assert again.tokenizer.get_vocab_size(with_added_tokens=True) == 151671


@pytest.mark.parametrize("reference_mode", [True, False])
def test_regular_cases_match_reference(tok, prompt_cases, reference_mode):
    for case in prompt_cases["cases"]:
        n = placeholder_count(case["speech_len_frames"], case["motion_len_frames"])
        assert n == case["n_placeholders_requested"]
        if not case["text"] and not reference_mode:
            continue  # the default mode refuses empty text (tested below)
        prompt = tok.build_prompt(case["text"], n, reference_mode=reference_mode)
        _assert_matches(prompt, case)
        s0 = prompt.speech_span[0]
        assert s0 == 12 + len(case["text_ids"])
        assert prompt.input_ids[0, 3 : s0 - 9].tolist() == case["text_ids"]
        assert tok.decode(prompt.prefix_ids) == case["decoded_prefix"]
        assert tok.decode(prompt.input_ids) == case["decoded"]


def test_reference_mode_reproduces_the_literal_placeholder_bug(tok, prompt_cases):
    case = _case(prompt_cases, "placeholder_literal_in_text")
    _assert_matches(tok.build_prompt(case["text"], case["n_placeholders_requested"], reference_mode=True), case)


def test_default_mode_keeps_special_strings_as_text(tok):
    text = "please say <SPEECH_FRAME> twice <|im_end|> <think>"
    prompt = tok.build_prompt(text, 10)
    ids = prompt.input_ids[0].tolist()
    s0, s1 = prompt.speech_span
    assert ids[:3] == PREFIX_HEAD and ids[s0 - 9 : s0] == PREFIX_TAIL
    assert ids[3 : s0 - 9] == prompt.text_ids
    assert all(i < 151643 for i in prompt.text_ids)  # only ordinary BPE ids in the text
    assert (s0, s1) == (12 + len(prompt.text_ids), 12 + len(prompt.text_ids) + 10)
    assert tok.decode(prompt.text_ids) == text


def test_truncation_of_placeholders_matches_reference(tok, prompt_cases):
    case = _case(prompt_cases, "truncates_placeholders")
    for reference_mode in (True, False):
        prompt = tok.build_prompt(case["text"], case["n_placeholders_requested"], reference_mode=reference_mode)
        _assert_matches(prompt, case)
        assert prompt.input_ids.shape[1] == MAX_PROMPT_TOKENS


def test_text_too_long_raises_clear_error_not_index_error(tok, prompt_cases):
    case = _case(prompt_cases, "truncates_everything")
    ids = tok.reference_ids(case["text"], case["n_placeholders_requested"])
    assert len(ids) == case["truncated_ids_len"]
    assert ids[-len(case["truncated_ids_tail"]) :] == case["truncated_ids_tail"]
    for reference_mode in (True, False):
        with pytest.raises(T2AVError, match="too long|tokens long"):
            tok.build_prompt(case["text"], case["n_placeholders_requested"], reference_mode=reference_mode)


def test_length_limit_boundary(tok):
    words = " ".join(["hello"] * tok.max_text_tokens)  # "hello" and " hello" are one id each
    assert len(tok.encode_text(words)) == tok.max_text_tokens
    prompt = tok.build_prompt(words, 5)
    assert prompt.speech_span == (MAX_PROMPT_TOKENS - 1, MAX_PROMPT_TOKENS)
    with pytest.raises(T2AVError, match="988 tokens long"):
        tok.build_prompt(words + " hello", 5)


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
def test_empty_text_raises(tok, text):
    with pytest.raises(T2AVError, match="empty"):
        tok.build_prompt(text)


def test_prefix_only_and_stripping(tok, prompt_cases):
    case = _case(prompt_cases, "english")
    prompt = tok.build_prompt("  \n" + case["text"] + "\n ")
    assert prompt.input_ids[0].tolist() == case["prefix_ids"] == prompt.prefix_ids[0].tolist()
    assert prompt.speech_span == (len(case["prefix_ids"]),) * 2 == (prompt.prefix_len,) * 2
    assert prompt.text == case["text"]


def test_bad_arguments(tok):
    with pytest.raises(T2AVError, match="string"):
        tok.build_prompt(None)
    with pytest.raises(T2AVError, match=">= 0"):
        tok.build_prompt("hi", -1)
    with pytest.raises(T2AVError, match="None"):
        tok.build_prompt("hi", 0)


def test_missing_or_broken_tokenizer(tmp_path):
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        TalkerTokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid"):
        TalkerTokenizer.from_dir(tmp_path)


def test_split_long_text_into_prompts(tok, prompt_cases):
    text = _case(prompt_cases, "truncates_everything")["text"]  # 1232 tokens
    chunks = tok.split_text(text, max_tokens=300)
    assert len(chunks) >= 5
    assert " ".join(chunks).split() == text.split()  # nothing lost or reordered
    for chunk in chunks:
        assert len(tok.encode_text(chunk)) <= 300
        assert chunk[-1] in ".,!?" or chunk is chunks[-1]  # cut at sentence or clause ends
        tok.build_prompt(chunk, 10)
    assert tok.split_text("Short one.") == ["Short one."]


def test_split_falls_back_to_words_and_characters():
    count = len  # one "token" per character keeps the expectations readable
    assert split_text_into_chunks("One two. Three four five six.", 12, count) == ["One two.", "Three four", "five six."]
    assert split_text_into_chunks("你好。我很好！谢谢", 3, count) == ["你好。", "我很好", "！谢谢"]
    assert split_text_into_chunks("abcdefg", 3, count) == ["abc", "def", "g"]
    with pytest.raises(T2AVError, match="empty"):
        split_text_into_chunks("  ", 10, count)
    with pytest.raises(T2AVError, match="at least 1"):
        split_text_into_chunks("abc", 0, count)


def test_text_that_is_not_utf8_gets_a_clear_error(tok):
    # what Python makes of the bytes b"caf\xe9" (Latin-1) in a UTF-8 command line or file
    text = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")
    with pytest.raises(T2AVError, match=r"not valid UTF-8 \(byte 0xe9 at character 3\)"):
        tok.build_prompt(text)


@pytest.mark.parametrize("text", ["tab\tand\x00null\x07bell", "\x1b[31mred\x1b[0m", "zero\u200bwidth", "emoji 😀"])
def test_control_and_unusual_characters_are_plain_text(tok, text):
    prompt = tok.build_prompt(text)
    assert prompt.prefix_ids.shape[1] == tok.template_ids + len(prompt.text_ids)


def test_tokenizer_without_normalizer_or_pre_tokenizer_works(parity_dir, tmp_path):
    spec = json.loads((parity_dir / "qwen3_tokenizer" / "tokenizer.json").read_text())
    spec["normalizer"], spec["pre_tokenizer"] = None, None
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    bare = TalkerTokenizer.from_dir(tmp_path)
    prompt = bare.build_prompt("Hello there, how are you?")
    # the same ids as the tokenizers library's own pipeline (which also skips the missing steps)
    assert prompt.text_ids == bare.tokenizer.encode("Hello there, how are you?", add_special_tokens=False).ids
    # the template splits differently without a pre-tokenizer: the limit and the budget follow this tokenizer
    assert prompt.prefix_ids.shape[1] == bare.template_ids + len(prompt.text_ids)
    assert bare.max_text_tokens == MAX_PROMPT_TOKENS - bare.template_ids - 1


def test_template_count_and_limit_of_the_released_tokenizer(tok):
    assert tok.template_ids == 12 and tok.max_text_tokens == 987
