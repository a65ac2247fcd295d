"""ComfyUI nodes for Talker-T2AV: thin adapters over ``t2av_core.pipeline``.

ComfyUI imports the pack as ``custom_nodes.<folder>``, so the bundled ``t2av_core`` library is not importable
by its own name unless it was pip-installed; the pack folder is then appended (not prepended: the pack's
``nodes`` package must never shadow ComfyUI's ``nodes`` module) to ``sys.path``.
"""

import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("t2av_core") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from .extension import TalkerT2AVExtension, comfy_entrypoint  # noqa: E402

__all__ = ["TalkerT2AVExtension", "comfy_entrypoint"]
