"""V3 io stand-in: socket types with Input/Output declarations, Schema, ComfyNode, NodeOutput."""

from enum import Enum


class ControlAfterGenerate(str, Enum):
    fixed = "fixed"
    increment = "increment"
    decrement = "decrement"
    randomize = "randomize"


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class _Port:
    def __init__(self, id=None, display_name=None, optional=False, tooltip=None, options=None, **extra):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.options, self.extra = options, extra
        self.default = extra.get("default")


def _socket(io_type):
    class Input(_Port):
        pass

    class Output(_Port):
        pass

    Input.io_type = Output.io_type = io_type
    return type(io_type, (), {"io_type": io_type, "Input": Input, "Output": Output})


Custom = _socket
Int, Float, String, Boolean, Combo = (_socket(t) for t in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"))
Image, Audio, Video, Sigmas, Sampler = (_socket(t) for t in ("IMAGE", "AUDIO", "VIDEO", "SIGMAS", "SAMPLER"))
BoundingBox = _socket("BOUNDING_BOX")


class Schema:
    def __init__(self, node_id, display_name=None, category="sd", inputs=(), outputs=(), hidden=(),
                 description="", is_output_node=False, search_aliases=None, **extra):
        self.node_id, self.display_name, self.category = node_id, display_name, category
        self.search_aliases = search_aliases or []
        self.inputs, self.outputs, self.description = list(inputs), list(outputs), description
        self.is_output_node = is_output_node


class ComfyNode:
    @classmethod
    def define_schema(cls):
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs):
        return True


class NodeOutput:
    def __init__(self, *args, ui=None, expand=None, block_execution=None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if self.args else None
