"""VIDEO stand-in: an in-memory video made of components, as core CreateVideo makes."""

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional


@dataclass
class VideoComponents:
    images: object
    frame_rate: Fraction
    audio: Optional[dict] = None
    metadata: Optional[dict] = None


class VideoFromComponents:
    def __init__(self, components, bit_depth=8):
        self.components = components

    def get_components(self):
        return self.components


class VideoFromFile:
    """A video file, decoded only when its components are asked for."""

    def __init__(self, file):
        self.file = file

    def get_stream_source(self):
        return self.file

    def get_components(self):
        import av
        import numpy as np
        import torch
        with av.open(self.file) as container:
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        images = torch.from_numpy(np.stack(frames)).float() / 255
        return VideoComponents(images=images, frame_rate=rate)


class InputImpl:
    VideoFromComponents = VideoFromComponents
    VideoFromFile = VideoFromFile


class Types:
    VideoComponents = VideoComponents
