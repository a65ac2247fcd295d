"""Real photos and videos: find the face, crop it as the renderer expects, paste the result back.

    crops, crop = crop_faces(picture)                 # (1, 512, 512, 3) uint8 + where the square lies
    face = pipeline.encode_face(renderer, crops[0])
    frames = pipeline.render_frames(renderer, face, av)
    mux("out.mp4", paste_back(frames, picture, crop), wave, rate)   # at the picture's own resolution

Modules: ``boxes`` (box sources, smoothing, the LIA-X square), ``detect`` / ``skin_detect`` (the built-in
detector), ``locate`` (boxes for every frame and the crops), ``crop`` (cutting and the FaceCrop record),
``paste`` (feathered, streamed paste-back).
"""

from .boxes import FaceBox, host_boxes, parse_box, renderer_square
from .crop import CROP_SIZE, FaceCrop, crop_square, make_crop
from .detect import DETECTORS
from .locate import NO_FACE_HINT, crop_faces, find_boxes
from .paste import DEFAULT_FEATHER, feather_mask, paste_back

__all__ = ["CROP_SIZE", "DEFAULT_FEATHER", "DETECTORS", "NO_FACE_HINT", "FaceBox", "FaceCrop",
           "crop_faces", "crop_square", "feather_mask", "find_boxes", "host_boxes", "make_crop", "parse_box",
           "paste_back", "renderer_square"]
