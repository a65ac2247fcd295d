"""The voice encoder of Talker-T2AV: WavLM-Large + ECAPA-TDNN, 16 kHz mono wave -> 256-d embedding."""

from t2av_core.speaker.encoder import (
    WavLMSpeakerEncoder, load_speaker_encoder, talker_speaker_input, talker_speech_frames)

__all__ = ["WavLMSpeakerEncoder", "load_speaker_encoder", "talker_speaker_input", "talker_speech_frames"]
