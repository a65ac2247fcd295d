"""Face Crop and Paste Back: real photos and videos in, the result back in their own frame."""

from __future__ import annotations

import torch

from t2av_core import face
from t2av_core.errors import T2AVError

from . import host
from .host import io
from .types import CATEGORY, FaceCropInfo


class TalkerT2AVFaceCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVFaceCrop", display_name="Talker-T2AV Face Crop", category=f"{CATEGORY}/face",
            search_aliases=["face detect", "crop face", "align face", "find face", "portrait crop"],
            description="Finds the face in a photo (or in every frame of a video) and cuts the square the face "
                        "renderer was trained on: the face with room around it, 512x512. The box comes from "
                        "face_box when connected, else from the box widgets when set, else from the built-in "
                        "detector. Connect face_crop to Paste Back to put the result into the original picture.",
            inputs=[io.Image.Input("image", tooltip="A photo, or the frames of a video (e.g. from Get Video Components)."),
                    io.BoundingBox.Input("face_box", optional=True, force_input=True,
                                         tooltip="Boxes from another node: core 'Detect Face Landmarks (MediaPipe)' "
                                                 "(one per frame) or 'Bounding Box'. When connected it is used "
                                                 "instead of the widgets and the built-in detector."),
                    io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.01, optional=True,
                                   tooltip="Frame rate of a video's frames (connect Get Video Components' fps); "
                                           "ignored for a single photo."),
                    io.Int.Input("box_x", default=0, min=0, max=16384, optional=True, advanced=True,
                                 tooltip="Your own face box, left edge in the picture's pixels (used when "
                                         "box_width and box_height are set and face_box is not connected)."),
                    io.Int.Input("box_y", default=0, min=0, max=16384, optional=True, advanced=True,
                                 tooltip="Your own face box, top edge (the brows)."),
                    io.Int.Input("box_width", default=0, min=0, max=16384, optional=True, advanced=True,
                                 tooltip="Your own face box, width (cheek to cheek); 0 lets the detector find it."),
                    io.Int.Input("box_height", default=0, min=0, max=16384, optional=True, advanced=True,
                                 tooltip="Your own face box, height (brows to chin); 0 lets the detector find it."),
                    io.Float.Input("smoothing", default=0.2, min=0.0, max=5.0, step=0.05, optional=True, advanced=True,
                                   tooltip="Video only: seconds over which the face's box is steadied, so the "
                                           "pasted face does not shake. 0 keeps every frame's own box."),
                    io.Combo.Input("detector", options=list(face.DETECTORS), default="auto", optional=True,
                                   advanced=True,
                                   tooltip="Built-in detector: auto tries OpenCV's and scikit-image's cascades when "
                                           "installed, then the pack's own colour finder (always available).")],
            outputs=[io.Image.Output(display_name="face_image", tooltip="The 512x512 face crop(s): connect to Face "
                                                                        "Reference or Reference Motion."),
                     FaceCropInfo.Output(display_name="face_crop", tooltip="Where the crops lie in the picture, "
                                                                          "for Paste Back."),
                     io.BoundingBox.Output(display_name="crop_box", tooltip="The crop square(s), e.g. for core "
                                                                           "Draw BBoxes.")])

    @classmethod
    def execute(cls, image, face_box=None, fps=25.0, box_x=0, box_y=0, box_width=0, box_height=0, smoothing=0.2,
                detector="auto") -> io.NodeOutput:
        typed = face.FaceBox(box_x, box_y, box_width, box_height) if box_width and box_height else None
        frames = image.shape[0] if image.dim() == 4 else 1
        crops, crop = face.crop_faces(image, fps, typed, face_box, detector, smoothing,
                                      progress=host.progress(frames))
        images = crops.to(host.intermediate_device()).float().div_(255.0)
        return io.NodeOutput(images, crop, crop.boxes())


class TalkerT2AVPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TalkerT2AVPasteBack", display_name="Talker-T2AV Paste Back", category=f"{CATEGORY}/face",
            search_aliases=["uncrop", "composite face", "face paste", "put back", "blend face"],
            description="Puts the rendered face frames back into the original photo or video at its own size, "
                        "through a feathered mask so no seam shows. Outside the face square the picture is "
                        "unchanged; a photo stays still behind the face, a video plays on under it.",
            inputs=[io.Image.Input("images", tooltip="Rendered frames, e.g. from Talker-T2AV Video Decode."),
                    io.Image.Input("source", tooltip="The photo or video frames that went into Face Crop."),
                    FaceCropInfo.Input("face_crop", tooltip="From the Face Crop node that cut the face."),
                    io.Float.Input("feather", default=face.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                                   tooltip="Width of the soft edge, as a fraction of the face square."),
                    io.Boolean.Input("colour_match", default=False,
                                     tooltip="Give the rendered face the colours and contrast of the original "
                                             "(measured once, so they cannot flicker).")],
            outputs=[io.Image.Output(display_name="images", tooltip="Frames at the source's size, 25 fps.")])

    @classmethod
    def execute(cls, images, source, face_crop, feather, colour_match) -> io.NodeOutput:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
            raise T2AVError("images must be a non-empty IMAGE batch of rendered frames")
        height, width = face_crop.source_size
        out = torch.empty(images.shape[0], height, width, 3)  # filled frame by frame: no second copy
        update = host.progress(images.shape[0])
        batches = (images[i:i + 8].float().cpu() for i in range(0, images.shape[0], 8))
        for index, frame in enumerate(face.paste_back(batches, source, face_crop, feather, colour_match)):
            out[index] = frame[0].float().div_(255.0)
            update(index + 1, images.shape[0])
        return io.NodeOutput(out.to(host.intermediate_device()))


NODES = [TalkerT2AVFaceCrop, TalkerT2AVPasteBack]
