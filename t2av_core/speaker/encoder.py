"""The WavLM-ECAPA speaker encoder: loading ``wavlm_large_finetune.pth`` and turning a voice into (256,).

The released file is ``torch.save({"model": state_dict})`` and holds every weight (WavLM included), plus
one training-only key (``loss_calculator.projection.weight``) that is dropped. The rest must match the
model exactly: the reference loads with ``strict=False``, which would hide a renamed key.
Sizes are read from the tensor shapes, so the same code loads the released model and small test ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from t2av_core.checkpoint_io import load_state_dict_file
from t2av_core.cpu_convs import float32_cpu_convolutions
from t2av_core.audio.mel import speech_frames
from t2av_core.errors import CheckpointError, T2AVError
from t2av_core.interfaces import FRAME_RATE
from t2av_core.speaker.ecapa import EcapaConfig, EcapaTdnn
from t2av_core.speaker.wavlm import CONV_KERNELS, HOP, RECEPTIVE_FIELD, WavLM, WavLMConfig

SAMPLE_RATE = 16000
MIN_SAMPLES = RECEPTIVE_FIELD + HOP  # two WavLM frames: the instance norm needs more than one
MAX_SAMPLES = 30 * SAMPLE_RATE  # Talker never feeds more (and attention is quadratic in length)
SILENCE_PEAK = 1e-4  # about -80 dBFS
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # one 40 ms Talker frame at 16 kHz

# Keys that exist only for training and are ignored at inference.
_TRAINING_ONLY_PREFIX = "loss_calculator."


def select_speaker_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released file's tensors that inference uses: everything but the training loss head."""
    return {k: v for k, v in sd.items() if not k.startswith(_TRAINING_ONLY_PREFIX)}

# (checkpoint prefix, module prefix) pairs, "{i}" standing for a block index; the first match wins, in
# both directions. Only the reference's anonymous Sequential indices are renamed; the head keeps its names.
_KEY_PREFIXES = [
    ("feature_extract.model.feature_extractor.conv_layers.{i}.0.", "wavlm.feature_extractor.conv_layers.{i}.conv."),
    ("feature_extract.model.feature_extractor.conv_layers.{i}.2.1.", "wavlm.feature_extractor.conv_layers.{i}.norm."),
    ("feature_extract.model.encoder.pos_conv.0.", "wavlm.encoder.pos_conv."),
    ("feature_extract.model.", "wavlm."),
    ("", "head."),
]


def _rename(key: str, source: int) -> str:
    for pair in _KEY_PREFIXES:
        pattern = re.escape(pair[source]).replace(re.escape("{i}"), r"(\d+)")
        match = re.match(pattern, key)
        if match:
            index = match.group(1) if match.groups() else ""
            return pair[1 - source].replace("{i}", index) + key[match.end():]
    return key  # not reached: the last pair matches every key in one direction


def checkpoint_key_to_module(key: str) -> str:
    """Released checkpoint key -> this module's state-dict key."""
    return _rename(key, source=0)


def module_key_to_checkpoint(key: str) -> str:
    """This module's state-dict key -> released checkpoint key."""
    return _rename(key, source=1)


class WavLMEcapa(nn.Module):
    """wave (B, N) 16 kHz -> WavLM hidden states (L + 1, B, T', E) -> ECAPA -> (B, embed_dim)."""

    def __init__(self, wavlm_cfg: WavLMConfig, ecapa_cfg: EcapaConfig):
        super().__init__()
        self.wavlm = WavLM(wavlm_cfg)
        self.head = EcapaTdnn(ecapa_cfg)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        hidden = self.wavlm(wave)
        return self.head(hidden.to(self.head.feature_weight.dtype))


def released_configs() -> tuple[WavLMConfig, EcapaConfig]:
    """The sizes of the released ``wavlm_large_finetune.pth``."""
    return WavLMConfig(), EcapaConfig()


def _count(sd: dict, pattern: str) -> int:
    return sum(1 for k in sd if re.fullmatch(pattern, k))


def configs_from_state_dict(sd: dict[str, torch.Tensor]) -> tuple[WavLMConfig, EcapaConfig]:
    """Read every size from the shapes and key counts of a state dict in module names."""
    try:
        dim, conv_dim = sd["wavlm.post_extract_proj.weight"].shape
        n_conv = _count(sd, r"wavlm\.feature_extractor\.conv_layers\.\d+\.conv\.weight")
        kernels = tuple(sd[f"wavlm.feature_extractor.conv_layers.{i}.conv.weight"].shape[2] for i in range(n_conv))
        if kernels != CONV_KERNELS:
            raise CheckpointError(f"speaker checkpoint: WavLM conv kernels {kernels}, expected {CONV_KERNELS} "
                                  "(only the WavLM-Large conv layout is supported)")
        attn0 = "wavlm.encoder.layers.0.self_attn."
        num_buckets, n_heads = sd[attn0 + "relative_attention_bias.weight"].shape
        pos_v = sd["wavlm.encoder.pos_conv.weight_v"]
        wavlm_cfg = WavLMConfig(
            conv_dim=conv_dim, dim=dim, ffn_dim=sd["wavlm.encoder.layers.0.fc1.weight"].shape[0],
            n_heads=n_heads, n_layers=_count(sd, r"wavlm\.encoder\.layers\.\d+\.fc1\.weight"),
            pos_conv_kernel=pos_v.shape[2], pos_conv_groups=dim // pos_v.shape[1],
            num_buckets=num_buckets, gate_dim=sd[attn0 + "grep_linear.weight"].shape[0])
        channels, feat_dim = sd["head.layer1.conv.weight"].shape[:2]
        ecapa_cfg = EcapaConfig(
            n_hidden_states=sd["head.feature_weight"].shape[0], feat_dim=feat_dim, channels=channels,
            res2_scale=_count(sd, r"head\.layer2\.Res2Conv1dReluBn\.convs\.\d+\.weight") + 1,
            se_dim=sd["head.layer2.SE_Connect.linear1.weight"].shape[0],
            aggregation_dim=sd["head.conv.weight"].shape[0],
            attention_dim=sd["head.pooling.linear1.weight"].shape[0],
            embed_dim=sd["head.linear.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"speaker checkpoint is missing {module_key_to_checkpoint(e.args[0])!r}: "
                              "is this wavlm_large_finetune.pth (WavLM + ECAPA-TDNN)?") from None
    if ecapa_cfg.n_hidden_states != wavlm_cfg.n_layers + 1:
        raise CheckpointError(f"speaker checkpoint: feature_weight has {ecapa_cfg.n_hidden_states} entries but "
                              f"WavLM has {wavlm_cfg.n_layers} layers (expected layers + 1)")
    return wavlm_cfg, ecapa_cfg


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a .pth/.pt file read without running pickled code."""
    if not path.is_file():
        raise CheckpointError(f"speaker encoder checkpoint not found: {path} "
                              "(expected wavlm_large_finetune.pth or a .safetensors conversion of it)")
    return load_state_dict_file(path)  # also unwraps the released {"model": state_dict}


def _match_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError unless ``sd`` has exactly the model's keys with the model's shapes."""
    expected = model.state_dict()
    missing = sorted(module_key_to_checkpoint(k) for k in expected.keys() - sd.keys())
    unexpected = sorted(module_key_to_checkpoint(k) for k in sd.keys() - expected.keys())
    wrong = [f"{module_key_to_checkpoint(k)} {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} with wrong shapes (e.g. {wrong[:3]})" if wrong else ""]
        raise CheckpointError(f"speaker checkpoint {path} does not match WavLM-ECAPA: "
                              + "; ".join(p for p in parts if p))


def load_speaker_encoder(path: str | Path, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> "WavLMSpeakerEncoder":
    """Load ``wavlm_large_finetune.pth`` (or a .safetensors file with the same keys) strictly."""
    path = Path(path)
    raw = _read_checkpoint(path)
    sd = {checkpoint_key_to_module(k): v for k, v in select_speaker_keys(raw).items()}
    wavlm_cfg, ecapa_cfg = configs_from_state_dict(sd)
    with torch.device("meta"):  # no random init of 300M parameters that are overwritten anyway
        net = WavLMEcapa(wavlm_cfg, ecapa_cfg)
    _match_state_dict(net, sd, path)
    net.load_state_dict(sd, strict=True, assign=True)
    net = net.to(device=device).eval().requires_grad_(False)
    net.wavlm.to(dtype=dtype)
    # The head is small (8M parameters) and its pooled std is E[x^2] - E[x]^2, which cancels badly in
    # 16-bit floats, so it stays at least fp32 (the reference's autocast also runs these reductions in fp32).
    net.head.to(dtype=torch.promote_types(dtype, torch.float32))
    return WavLMSpeakerEncoder(net)


def check_voice(wave: torch.Tensor, what: str = "reference audio") -> torch.Tensor:
    """Validate a mono 16 kHz wave (N,) and return it as float32; raise T2AVError with a fix otherwise."""
    if not isinstance(wave, torch.Tensor):
        raise T2AVError(f"{what} must be a torch.Tensor of samples, got {type(wave).__name__}")
    if wave.ndim != 1:
        raise T2AVError(f"{what} must be mono with shape (samples,), got shape {tuple(wave.shape)}: "
                        "mix the channels down (average them) first")
    if not wave.is_floating_point():
        raise T2AVError(f"{what} must hold float samples in [-1, 1], got {wave.dtype}: divide int16 PCM by 32768")
    if wave.numel() == 0:
        raise T2AVError(f"{what} is empty: give a clip of the voice, ideally 3-10 s of clean speech")
    wave = wave.float()
    if not torch.isfinite(wave).all():
        raise T2AVError(f"{what} contains NaN or infinite samples")
    if (wave - wave.mean()).abs().max() < SILENCE_PEAK:  # a DC offset alone is silence too
        raise T2AVError(f"{what} is silent (its peak around the mean is below {SILENCE_PEAK}): "
                        "give a clip in which the voice is audible")
    return wave


# Talker's 25 Hz frame count of a 16 kHz clip (with the reference's float quirk); the audio VAE uses the same.
talker_speech_frames = speech_frames


def talker_speaker_input(wave16k: torch.Tensor) -> torch.Tensor:
    """The exact samples Talker-T2AV feeds the speaker encoder for a reference wave (N,) at 16 kHz.

    The reference is cut to 30 s and zero-padded to 30 s, then cut again to ``speech_len * 640`` samples:
    the audio rounded down to whole 40 ms frames (with the float frame-count quirk above).
    """
    wave = check_voice(wave16k)[:MAX_SAMPLES]
    n_used = talker_speech_frames(wave.numel()) * SAMPLES_PER_FRAME
    if n_used < MIN_SAMPLES:
        raise T2AVError(f"reference audio too short: {wave.numel()} samples ({wave.numel() / 16:.0f} ms) at "
                        f"16 kHz; Talker needs at least {2 * SAMPLES_PER_FRAME} samples (80 ms), "
                        "ideally 3-10 s of clean speech")
    padded = torch.zeros(n_used, dtype=wave.dtype, device=wave.device)
    n = min(n_used, wave.numel())  # only a clip under 40 ms is shorter than one frame; the rest is padding
    padded[:n] = wave[:n]
    return padded


class WavLMSpeakerEncoder:
    """The ``SpeakerEncoder`` of t2av_core.interfaces: mono 16 kHz wave (N,) -> embedding (256,) float32."""

    sample_rate = SAMPLE_RATE

    def __init__(self, net: WavLMEcapa):
        self.net = net

    @property
    def device(self) -> torch.device:  # read each call: ComfyUI may move the weights between devices
        return next(self.net.parameters()).device

    @torch.no_grad()
    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        wave = check_voice(wave)
        if wave.numel() < MIN_SAMPLES:
            raise T2AVError(f"reference audio too short: {wave.numel()} samples at 16 kHz; the speaker encoder "
                            f"needs at least {MIN_SAMPLES} ({MIN_SAMPLES / 16:.0f} ms), ideally 3-10 s of speech")
        if wave.numel() > MAX_SAMPLES:
            raise T2AVError(f"reference audio too long: {wave.numel() / SAMPLE_RATE:.1f} s; the speaker encoder "
                            "takes at most 30 s (talker_speaker_input() cuts it as Talker does)")
        with float32_cpu_convolutions(self.net):  # 16-bit weights on the CPU: see t2av_core.cpu_convs
            return self.net(wave[None].to(self.device))[0].float()
