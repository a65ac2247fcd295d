"""Where the released files sit in a models folder: ComfyUI's ``models/talker_t2av/`` or the CLI's ``--models``.

One layout for the README, the templates, the loader nodes and the command line: the released names, in the
released folder structure (the audio codec stays in its ``whisperx-vae/`` sub-folder). Each part also accepts
a few alternatives (a flat ``whisperx_vae.ckpt``, converted ``.safetensors`` files), so a folder laid out
another way still loads.
"""

from __future__ import annotations

from pathlib import Path

# part -> file names, the released layout first
RELEASED_FILES: dict[str, tuple[str, ...]] = {
    "talker": ("model.safetensors", "talker.safetensors"),
    "tokenizer": ("tokenizer.json",),
    "audio_codec": ("whisperx-vae/model.ckpt", "whisperx_vae.ckpt", "audio_vae.safetensors"),
    "renderer": ("lia-x.pt", "lia_x.safetensors"),
    "speaker_encoder": ("wavlm_large_finetune.pth", "speaker.safetensors"),
}


def _same(a: str, b: str) -> bool:
    return a.replace("\\", "/") == b.replace("\\", "/")  # ComfyUI lists sub-folders with the OS separator


def find_file(folder: Path, part: str) -> Path | None:
    """The first of ``part``'s names present in ``folder``, or None."""
    return next((folder / name for name in RELEASED_FILES[part] if (folder / name).is_file()), None)


def released_names_with_stand_ins(present: list[str]) -> list[str]:
    """The released names that are missing from ``present`` (file names relative to the models folder) but
    whose part is there under another accepted name. A loader offers them too, so a template asking for the
    released name runs whichever way the folder is laid out."""
    extra = []
    for names in RELEASED_FILES.values():
        released, others = names[0], names[1:]
        if not any(_same(released, p) for p in present) and any(_same(o, p) for o in others for p in present):
            extra.append(released)
    return extra


def stand_in_for(name: str, present: list[str]) -> str | None:
    """The file in ``present`` that serves the released ``name`` when ``name`` itself is absent, else None."""
    for names in RELEASED_FILES.values():
        if _same(name, names[0]):
            return next((p for other in names[1:] for p in present if _same(other, p)), None)
    return None
