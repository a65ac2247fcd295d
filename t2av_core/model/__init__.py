"""The Talker-T2AV generator: Qwen3 backbone, patch encoders, flow-head DiTs, stop head."""

from .config import BackboneConfig, EncoderConfig, TalkerConfig, tiny_config
from .talker import TalkerT2AV, build_from_state_dict, check_state_dict, load_talker

__all__ = ["BackboneConfig", "EncoderConfig", "TalkerConfig", "tiny_config", "TalkerT2AV", "load_talker",
           "build_from_state_dict", "check_state_dict"]
