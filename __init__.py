"""ComfyUI entry point of the Talker-T2AV node pack.

ComfyUI imports this package from ``custom_nodes/``; outside ComfyUI (tests, the command line) importing it
must not fail, so the node module is only loaded when the host is present.
"""

WEB_DIRECTORY = "./web"

try:
    from .nodes import comfy_entrypoint  # noqa: F401  (ComfyUI looks this name up)
except ImportError as error:  # ComfyUI absent: the pack is being used as a plain library
    if "comfy" not in str(error):
        raise

__all__ = ["WEB_DIRECTORY"]
