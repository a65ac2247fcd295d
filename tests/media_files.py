"""Media files written byte by byte for tests (any size, rate or channel count, even impossible ones), and mp4s read back."""

import struct
import zlib

import numpy as np


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def solid_png(path, width, height, colour):
    """A one-colour 8-bit RGB or RGBA PNG, compressed row by row so the raw pixels are never held."""
    row = b"\x00" + bytes(colour) * width  # filter byte "none", then the pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    colour_type = {3: 2, 4: 6}[len(colour)]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
                     + png_chunk(b"IEND", b""))


def wav_file(path, samples, rate):
    """16-bit PCM WAV of (channels, N) floats in [-1, 1], header written by hand (any rate, even 1 Hz)."""
    samples = np.atleast_2d(samples)
    channels = samples.shape[0]
    data = (np.clip(samples.T, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)


def tone(rate, seconds, freq=220.0, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def read_mp4(path) -> tuple[np.ndarray, float, np.ndarray, int]:
    """An mp4 read back with av: (frames (T, H, W, 3) uint8, fps, mono wave, sample rate)."""
    import av
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video)])
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        rate = audio.rate
        wave = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio)])
    return frames, fps, wave, rate
