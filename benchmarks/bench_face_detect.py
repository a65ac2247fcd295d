"""Hit rates of the built-in face finders (t2av_core.face.detect) on faces that need no download.

    PYTHONPATH=. python benchmarks/bench_face_detect.py [--labelled DIR]

Sets, each used when its source is installed:

* drawn: the demo renderer's face, placed off-centre at many sizes on textured 1280x720 / 720x1280 pictures
  (always available);
* photos: the two portraits shipped in packages (scikit-image's astronaut, matplotlib's grace_hopper.jpg);
* lfw: the 100 greyscale LFW faces of scikit-image's lfw_subset, enlarged 8x and placed on a texture, and its
  100 non-face patches (for false alarms);
* voc: with ``--labelled DIR``, pictures with dlib-style XML labels (training.xml / testing.xml, e.g. dlib's
  examples/faces: PASCAL VOC group photos): every labelled face cut out as a portrait (face 200 pixels wide,
  with shoulders and background around it), and the recall over the whole group photos.

A hit: the face the finder picks (largest) has its centre inside the true box and a size within 0.5-2x of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from t2av_core.demo.face import DemoFaceRenderer
from t2av_core.face import detect
from t2av_core.face.boxes import FaceBox
from t2av_core.media.image_io import read_image
from t2av_core.video.face_prep import resize_area_u8


def texture(h: int, w: int, seed: int, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / 80.0
    base = np.stack([0.35 + 0.15 * np.sin(x * 1.7 + y), 0.45 + 0.15 * np.sin(y * 2.3),
                     0.6 + 0.15 * np.cos(x + y * 1.3)], -1)
    img = np.clip(base + rng.normal(0, 0.04, base.shape), 0, 1)
    if grey:
        img = np.repeat(img.mean(-1, keepdims=True), 3, -1)
    return (img * 255).astype(np.uint8)


def drawn_set(count: int = 24) -> list[tuple[np.ndarray, FaceBox]]:
    renderer = DemoFaceRenderer(256)
    face = renderer.render_normalized(renderer.prepare_face(None), torch.zeros(1, 40))[0]
    face = (face.numpy() * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        h, w = (720, 1280) if i % 2 == 0 else (1280, 720)
        side = int(rng.integers(90, min(h, w)))
        patch = resize_area_u8(face, side, side)
        top, left = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        img = texture(h, w, i)
        img[top:top + side, left:left + side] = patch
        # brows (v = -0.33) to chin (v = 0.77), cheek to cheek (u = +-0.58), in face units of [-1, 1]
        out.append((img, FaceBox(left + 0.21 * side, top + 0.335 * side, 0.58 * side, 0.55 * side)))
    return out


def photo_set() -> list[tuple[np.ndarray, FaceBox]]:
    out = []
    try:
        from skimage.data import astronaut
        out.append((astronaut(), FaceBox(177, 71, 85, 85)))
    except ImportError:
        pass
    try:
        import matplotlib
        path = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        out.append(((read_image(path).numpy() * 255 + 0.5).astype(np.uint8), FaceBox(157, 114, 203, 203)))
    except ImportError:
        pass
    return out


def lfw_sets() -> tuple[list, list]:
    try:
        from skimage.data import lfw_subset
    except ImportError:
        return [], []
    patches = lfw_subset()  # (200, 25, 25) floats: 100 faces, then 100 non-faces
    rng = np.random.default_rng(1)
    faces, others = [], []
    for i, patch in enumerate(patches):
        big = np.repeat(np.repeat(patch, 8, 0), 8, 1)
        img = texture(480, 640, 100 + i, grey=True)
        top, left = int(rng.integers(0, 480 - 200)), int(rng.integers(0, 640 - 200))
        img[top:top + 200, left:left + 200] = (big[..., None] * 255).astype(np.uint8)
        (faces if i < 100 else others).append((img, FaceBox(left, top, 200, 200)))
    return faces, others


def voc_sets(folder: Path) -> tuple[dict, list]:
    portraits, groups = {}, []
    for xml in ("training.xml", "testing.xml"):
        if not (folder / xml).is_file():
            continue
        for image in ET.parse(folder / xml).getroot().iter("image"):
            picture = (read_image(folder / image.get("file")).numpy() * 255 + 0.5).astype(np.uint8)
            boxes = [FaceBox(*(float(b.get(k)) for k in ("left", "top", "width", "height"))) for b in image.iter("box")]
            groups.append((picture, boxes))
            for box in boxes:  # a portrait: face 200 px wide in a 3.5x wider square, shoulders below
                side = int(3.5 * box.width)
                left, top = int(box.x + box.width / 2 - side / 2), int(box.y + box.height / 2 - side * 0.4)
                rows = np.clip(np.arange(top, top + side), 0, picture.shape[0] - 1)
                cols = np.clip(np.arange(left, left + side), 0, picture.shape[1] - 1)
                crop = resize_area_u8(picture[rows[:, None], cols[None, :]], 700, 700)
                k = 700 / side
                portraits.setdefault(xml.split(".")[0], []).append((crop, FaceBox((box.x - left) * k, (box.y - top) * k, box.width * k, box.height * k)))
    return portraits, groups


def hit(found: FaceBox, truth: FaceBox) -> bool:
    cx, cy = found.centre
    ratio = found.width / truth.width
    return truth.x <= cx <= truth.x + truth.width and truth.y <= cy <= truth.y + truth.height and 0.5 <= ratio <= 2


def score(name: str, items: list, finder: str) -> None:
    hits, started = 0, time.perf_counter()
    for image, truth in items:
        faces, _ = detect.find_faces(image, finder)
        hits += bool(faces) and hit(faces[0], truth)
    ms = (time.perf_counter() - started) / max(len(items), 1) * 1000
    print(f"  {finder:13s} {name:28s} hits {hits:3d}/{len(items):3d} ({100 * hits / max(len(items), 1):5.1f} %)"
          f"  {ms:6.1f} ms per picture")


def false_alarms(name: str, items: list, finder: str) -> None:
    alarms = sum(bool(detect.find_faces(image, finder)[0]) for image, _ in items)
    print(f"  {finder:13s} {name:28s} false alarms {alarms:3d}/{len(items):3d}")


def recall(items: list, finder: str) -> None:
    found_total = matched = extra = 0
    for image, truths in items:
        faces, _ = detect.find_faces(image, finder)
        found_total += len(truths)
        used = [any(hit(f, t) for f in faces) for t in truths]
        matched += sum(used)
        extra += sum(not any(hit(f, t) for t in truths) for f in faces)
    print(f"  {finder:13s} {'voc group photos (recall)':28s} found {matched:3d}/{found_total:3d} faces, "
          f"{extra} boxes on no labelled face")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled", type=Path, help="folder with dlib-style training.xml / testing.xml")
    args = parser.parse_args()
    torch.set_num_threads(1)
    finders = [f for f in detect.DETECTORS if f != "auto" and f in detect.available()]
    print(f"finders available here: {', '.join(finders)} (auto tries them in this order)")
    drawn, photos = drawn_set(), photo_set()
    lfw, lfw_other = lfw_sets()
    portraits, groups = voc_sets(args.labelled) if args.labelled else ({}, [])
    for finder in finders + ["auto"]:
        print(f"{finder}:")
        score("drawn demo faces", drawn, finder)
        if photos:
            score("packaged portrait photos", photos, finder)
        if lfw:
            score("lfw faces (greyscale)", lfw, finder)
            false_alarms("lfw non-faces", lfw_other, finder)
        for part, items in portraits.items():
            score(f"voc {part} faces as portraits", items, finder)
        if groups:
            recall(groups, finder)
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
