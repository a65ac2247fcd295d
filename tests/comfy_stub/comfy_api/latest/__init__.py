"""Stand-in for comfy_api.latest: just enough of the V3 schema objects to define and call the pack's nodes."""

from . import _io as io
from . import _ui as ui
from ._video import InputImpl, Types

__all__ = ["io", "ui", "InputImpl", "Types", "ComfyExtension"]


class ComfyExtension:
    async def on_load(self):
        pass

    async def get_node_list(self):
        raise NotImplementedError
