"""The pack's private socket types and the small handles they carry between nodes.

Only model handles and latents are private; everything at the edges of the graph is a core type
(IMAGE, AUDIO, VIDEO, SIGMAS, SAMPLER, BOUNDING_BOX, FLOAT/INT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2av_core.pipeline import SamplerParts

from .host import io

TalkerModel = io.Custom("TALKER_T2AV_MODEL")
AudioVAE = io.Custom("TALKER_T2AV_AUDIO_VAE")
VideoModel = io.Custom("TALKER_T2AV_LIA_X")
SpeakerModel = io.Custom("TALKER_T2AV_SPEAKER_ENCODER")
Conditioning = io.Custom("TALKER_T2AV_CONDITIONING")
Voice = io.Custom("TALKER_T2AV_VOICE")
Face = io.Custom("TALKER_T2AV_FACE")
Motion = io.Custom("TALKER_T2AV_MOTION")            # raw LIA-X motion codes (T, 40) at 25 fps
AudioLatent = io.Custom("TALKER_T2AV_AUDIO_LATENT")  # audio latents (T, 32) at 25 fps
AVLatent = io.Custom("TALKER_T2AV_AV_LATENT")        # t2av_core.generate.AVLatents
Solver = io.Custom("TALKER_T2AV_SOLVER")
Guidance = io.Custom("TALKER_T2AV_GUIDANCE")
FaceCropInfo = io.Custom("TALKER_T2AV_FACE_CROP")  # t2av_core.face.FaceCrop: where the face crops lie

CATEGORY = "Talker-T2AV"
PRECISION_TOOLTIP = ("auto: bfloat16 (or float16) for the generator on a GPU and on a CPU with bf16 arithmetic "
                     "(AMX / AVX-512 BF16, about 2.3x faster there), float32 on other CPUs and always for the side "
                     "models; the console says what was picked. Lower precision halves the memory.")
DEVICE_TOOLTIP = "default: the device ComfyUI computes on (moved there only while in use); cpu: always the CPU."


@dataclass(frozen=True)
class ModelHandle:
    """A loaded model as the library uses it, the ModelPatcher through which ComfyUI loads, offloads and
    evicts its weights, and (for the generator) its tokenizer. ``patcher`` is None for a model without a
    torch module (the bundled demo's codecs, face renderer and voice embedder): it stays on the CPU and
    ComfyUI's memory manager has nothing to move (host.load_model returns it as it is)."""
    model: Any
    patcher: Any
    tokenizer: Any = None


@dataclass(frozen=True)
class GuidanceSettings:
    cfg: float
    zero_star: bool

    def sampler_parts(self, solver, sigmas, temperature: float):
        """The library's SamplerParts from the sampler nodes' inputs (solver, SIGMAS, this guidance)."""
        return SamplerParts(solver=solver, sigmas=sigmas, cfg=self.cfg, zero_star=self.zero_star,
                            temperature=temperature)
