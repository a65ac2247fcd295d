"""Everything the node pack takes from ComfyUI, in one place.

The nodes import ComfyUI only through this module, so a ComfyUI API change is fixed here once, and the tests
can run the nodes against a small stand-in of these few functions (tests/comfy_stub/).
"""

from __future__ import annotations

import copy
import inspect
import os
from fractions import Fraction

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.model_sampling
import comfy.utils
import folder_paths
from comfy_api.latest import ComfyExtension, InputImpl, Types, io, ui  # noqa: F401  (io, ComfyExtension re-exported)

MODEL_FOLDER = "talker_t2av"
# Weights, plus the tokenizer's .json files, live in models/talker_t2av/.
MODEL_EXTENSIONS = set(folder_paths.supported_pt_extensions) | {".json"}


def register_model_folder() -> None:
    """Add models/talker_t2av without dropping paths an extra_model_paths.yaml already registered."""
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    if MODEL_FOLDER in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(MODEL_FOLDER, default)
        paths, _ = folder_paths.folder_names_and_paths[MODEL_FOLDER]
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, MODEL_EXTENSIONS)
    else:
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = ([default], MODEL_EXTENSIONS)


def model_files() -> list[str]:
    return folder_paths.get_filename_list(MODEL_FOLDER)


def model_path(name: str) -> str:
    path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise FileNotFoundError(f"{name!r} is not in the {MODEL_FOLDER} model folder ({folders}); put the file "
                                "there (or add the folder to extra_model_paths.yaml) and refresh")
    return path


def compute_device(choice: str) -> torch.device:
    """"default" is the device ComfyUI computes on; "cpu" keeps a model on the CPU."""
    return torch.device("cpu") if choice == "cpu" else mm.get_torch_device()


def wrap_model(module: torch.nn.Module, device: torch.device) -> comfy.model_patcher.ModelPatcher:
    """Hand a module to ComfyUI's memory manager: it moves it to ``device`` when used and evicts it when
    another model needs the room. The plain ModelPatcher fits modules that are not built from comfy.ops."""
    offload = torch.device("cpu") if device.type == "cpu" else mm.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(module, load_device=device, offload_device=offload)


def load_model(handle, memory_required: int = 0):
    """Make sure a handle's weights are on their compute device (evicting others if needed); returns the
    library object to call. A handle without a patcher (a model without weights) is returned as it is."""
    if handle.patcher is not None:
        mm.load_models_gpu([handle.patcher], memory_required=memory_required)
    return handle.model


def intermediate_device() -> torch.device:
    return mm.intermediate_device()


def progress(total: int):
    """A ProgressFn for the core library: updates this node's progress bar and stops the run when the user
    presses Cancel (ComfyUI's interrupt exception is raised from inside the callback)."""
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, total_now: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total_now)

    return update


def output_directory() -> str:
    return folder_paths.get_output_directory()


def save_path(filename_prefix: str) -> tuple[str, str, str]:
    """(folder, file name, subfolder) of the next numbered output file for ``filename_prefix``."""
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_directory())
    return folder, f"{name}_{counter:05}_.mp4", subfolder


def saved_video_ui(filename: str, subfolder: str) -> dict:
    """The UI message core Save Video sends for a file in the output folder (Assets panel, API workers)."""
    return ui.PreviewVideo([ui.SavedResult(filename, subfolder, io.FolderType.output)]).as_dict()


def make_video(images: torch.Tensor, audio: dict | None, fps: float):
    """IMAGE + AUDIO + fps -> ComfyUI's VIDEO (kept in memory; core SaveVideo can write it)."""
    return InputImpl.VideoFromComponents(
        Types.VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps).limit_denominator(1000)))


def video_from_file(path: str):
    """ComfyUI's VIDEO for an mp4 on disk (read only when a later node uses it)."""
    return InputImpl.VideoFromFile(path)


def video_components(video) -> tuple[torch.Tensor, dict | None, float]:
    """ComfyUI VIDEO -> (IMAGE (T, H, W, 3), AUDIO or None, fps)."""
    parts = video.get_components()
    return parts.images, parts.audio, float(parts.frame_rate)



# ----------------------------------------------------------------------------------------------------------
# Core samplers as flow solvers


class _FlowModelSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
    """Rectified-flow bookkeeping (x_t = (1 - t) x0 + t noise), which is what the Talker flow heads learned."""


class _FlowModel:
    """The few attributes a core SAMPLER reads from the model it drives, around a denoise(x, t) function."""

    def __init__(self, denoise):
        self.denoise = denoise
        self.inner_model = self
        self.model_sampling = _FlowModelSampling()
        self.model_patcher = self
        self.model_options = {}

    def get_model_object(self, name: str):
        if name != "model_sampling":
            raise ValueError(f"a core sampler asked for {name!r}, which a Talker-T2AV flow head does not have")
        return self.model_sampling

    def __call__(self, x, sigma, model_options=None, seed=None, **kwargs):
        return self.denoise(x, sigma)


def run_core_sampler(sampler, denoise, x: torch.Tensor, sigmas: torch.Tensor, draw) -> torch.Tensor:
    """Integrate from ``x`` at time ``sigmas[0]`` to ``sigmas[-1]`` with a core SAMPLER, where
    ``denoise(x, sigma)`` returns the predicted clean sample.

    Ancestral and SDE samplers take their noise from ``draw(shape)``, the run's seeded host generator, through
    k-diffusion's ``noise_sampler`` option; samplers without that option get a seed drawn from it. Either way a
    seed gives the same noise on every device, and every patch gets new noise."""
    model = _FlowModel(denoise)
    # KSAMPLER starts from sigma0 * noise (+ (1 - sigma0) * 0): pass x / sigma0 so it starts from x itself.
    start = x / sigmas[0]
    seeded = copy.copy(sampler)
    if "noise_sampler" in inspect.signature(sampler.sampler_function).parameters:
        seeded.extra_options = {**sampler.extra_options,
                                "noise_sampler": lambda sigma, sigma_next: draw(tuple(x.shape)).to(x.device, x.dtype)}
    seed = int(draw((1,))[0].abs().item() * 2**31) % 2**32  # for samplers that seed a generator themselves
    return seeded.sample(model, sigmas, {"model_options": {}, "seed": seed}, None, start,
                         latent_image=torch.zeros_like(x), denoise_mask=None, disable_pbar=True)
