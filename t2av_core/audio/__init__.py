"""Audio side of Talker-T2AV: Whisper log-mel, resampling, and the WhisperX-VAE audio codec."""
