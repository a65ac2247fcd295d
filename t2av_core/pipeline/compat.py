"""Parts that do not fit together are refused where they meet, saying which part to change.

The bundled demo and the released model share every interface (same latent widths), so nothing would fail by
itself: the released generator with the demo audio codec writes noise without a word. Each part says its family
(``t2av_core.interfaces.family_of``), every condition and result carries the family of the part that made it, and
the stages compare them. A tokenizer is checked against the generator's vocabulary.
"""

from __future__ import annotations

from ..errors import T2AVError
from ..interfaces import DEMO, family_of

# What to load instead, per part and family, in the words of the loader nodes and load_models().
_FILES = {
    "generator": {DEMO: "the bundled demo model", "released": "model.safetensors"},
    "tokenizer": {DEMO: "the bundled demo tokenizer", "released": "the tokenizer.json of the model"},
    "speaker encoder": {DEMO: "the bundled demo voice embedder", "released": "wavlm_large_finetune.pth"},
    "audio VAE": {DEMO: "the bundled demo audio codec", "released": "whisperx-vae/model.ckpt"},
    "video model": {DEMO: "the bundled demo face renderer", "released": "lia-x.pt"},
}


def _name(family: str) -> str:
    return "the bundled demo" if family == DEMO else "the released"


def check_fit(made_by: str, made_family: str | None, used_by: str, used_family: str | None,
              what: str) -> None:
    """T2AVError when ``what``, made by ``made_by`` of ``made_family``, meets ``used_by`` of another family.
    A family of None (e.g. latents joined by hand) fits anything."""
    if made_family is None or used_family is None or made_family == used_family:
        return
    # Suggest changing the other part when one is the generator (what the user chose to run); between two side
    # parts, the demo one (a freshly added loader's default, so most likely the slip).
    fix = [(made_by, used_family), (used_by, made_family)]
    if made_by == "generator" or (used_by != "generator" and used_family == DEMO):
        fix.reverse()
    (first, first_family), (second, second_family) = fix
    raise T2AVError(
        f"{what} came from {_name(made_family)} {made_by}, but {_name(used_family)} {used_by} is used with it: "
        f"the two do not fit together and would give noise. Load {_FILES[first][first_family]} as the {first} "
        f"(or {_FILES[second][second_family]} as the {second}).")


def check_tokenizer(tokenizer, model) -> None:
    """The tokenizer's ids must exist in the generator's embedding table (and be of its family)."""
    check_fit("tokenizer", family_of(tokenizer), "generator", family_of(model), "the prompt")
    size = _vocab_size(tokenizer)
    vocab = model.cfg.backbone.vocab
    if size is not None and size > vocab:
        raise T2AVError(f"the tokenizer makes ids up to {size - 1}, but the generator knows only {vocab} tokens: it "
                        "is not this model's tokenizer. Choose the tokenizer.json that came with the model")


def check_prompt_ids(prompt_ids, model) -> None:
    vocab = model.cfg.backbone.vocab
    if prompt_ids.numel() and int(prompt_ids.max()) >= vocab:
        raise T2AVError(f"the text was encoded with a tokenizer whose ids go up to {int(prompt_ids.max())}, but the "
                        f"generator knows only {vocab} tokens: encode the text with this model's tokenizer")


def _vocab_size(tokenizer) -> int | None:
    inner = getattr(tokenizer, "tokenizer", None)  # TalkerTokenizer wraps a tokenizers.Tokenizer
    if inner is not None and hasattr(inner, "get_vocab_size"):
        return inner.get_vocab_size(with_added_tokens=True)
    return getattr(tokenizer, "vocab_size", None)
