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


class InputImpl:
    VideoFromComponents = VideoFromComponents


class Types:
    VideoComponents = VideoComponents
