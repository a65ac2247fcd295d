"""ComfyUI entry point of the Talker-T2AV node pack.

ComfyUI imports this package from ``custom_nodes/``. Outside ComfyUI (tests, the command line, pytest
collecting the repository, possibly as a bare ``__init__`` module when the checkout's folder name is not a valid
package name) it must import cleanly, so the nodes are only loaded as a package with the host present.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if __package__ and importlib.util.find_spec("comfy_api") is not None:
    from .nodes import comfy_entrypoint  # noqa: F401  (ComfyUI looks this name up)

__all__ = ["WEB_DIRECTORY"]
