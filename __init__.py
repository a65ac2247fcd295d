"""ComfyUI entry point of the Talker-T2AV node pack.

ComfyUI imports this package from ``custom_nodes/``. Outside ComfyUI (tests, the command line, pytest
collecting the repository) the package must import cleanly, so the nodes are only loaded when the host is there.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy_api") is not None:
    from .nodes import comfy_entrypoint  # noqa: F401  (ComfyUI looks this name up)

__all__ = ["WEB_DIRECTORY"]
