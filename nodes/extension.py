"""The extension object ComfyUI asks for (``comfy_entrypoint``)."""

from __future__ import annotations

from . import conditioning, face, host, latents, loaders, longform, render_save, sampling, video
from .host import ComfyExtension, io


class TalkerT2AVExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*loaders.NODES, *conditioning.NODES, *face.NODES, *sampling.NODES, *longform.NODES, *latents.NODES,
                *video.NODES, *render_save.NODES]


async def comfy_entrypoint() -> TalkerT2AVExtension:
    host.register_model_folder()
    return TalkerT2AVExtension()
