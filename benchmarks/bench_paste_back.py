"""Paste-back at 1920x1080: speed, and peak memory for clips of different lengths (it must not grow with them).

    PYTHONPATH=. python benchmarks/bench_paste_back.py [--seconds 10 60] [--threads 1]

Each length runs in a fresh process (peak RSS is per process): a 1920x1080 photo with a face is cropped,
512x512 frames are rendered by the demo renderer batch by batch (as LIA-X hands them over), pasted back and
either only consumed ("paste") or also encoded to an H.264 mp4 with the speech ("paste + mp4", the command
line's path). Frames per second leave the demo renderer's own time out. A minute of float32 1080p frames held
at once would be 37 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(seconds: float, write: bool, colour_match: bool) -> dict:
    import torch

    from t2av_core import face, pipeline
    from t2av_core.demo.face import DemoFaceRenderer
    from t2av_core.demo.portrait import portrait

    frames = int(seconds * 25)
    picture = portrait(1080, 1920, 1150, 240, 520, seed=1)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    crops, crop = face.crop_faces(picture)
    renderer = DemoFaceRenderer(512)
    state = renderer.prepare_face(crops[0].float() / 255)
    generator = torch.Generator().manual_seed(0)

    render_seconds = [0.0]

    def rendered():  # 8 frames at a time, like pipeline.render_frames; its own time is not the paste's
        for first in range(0, frames, 8):
            began = time.perf_counter()
            motion = torch.randn(min(8, frames - first), 40, generator=generator) * 0.5
            batch = renderer.render_normalized(state, motion)
            render_seconds[0] += time.perf_counter() - began
            yield batch

    pasted = face.paste_back(rendered(), picture, crop, colour_match=colour_match)
    started = time.perf_counter()
    if write:
        wave = torch.sin(torch.arange(int(seconds * 24000)) / 24000 * 2 * torch.pi * 220) * 0.3
        with tempfile.TemporaryDirectory() as folder:
            pipeline.mux(Path(folder) / "clip.mp4", pasted, wave, 24000)
            size = (Path(folder) / "clip.mp4").stat().st_size
    else:
        size = sum(int(frame.shape[0]) for frame in pasted)
    elapsed = time.perf_counter() - started - render_seconds[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"frames": frames, "seconds": elapsed, "fps": frames / elapsed, "peak_mib": peak // 1024,
            "growth_mib": (peak - start_rss) // 1024, "square": list(crop.square(0)), "out": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the paste (default 1)")
    parser.add_argument("--colour-match", action="store_true")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: SECONDS write|paste
    args = parser.parse_args()
    if args.one:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(one_run(float(args.one[0]), args.one[1] == "write", args.colour_match)))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    print(f"1920x1080 photo, 512x512 rendered frames, {args.threads} torch thread(s), colour match "
          f"{'on' if args.colour_match else 'off'}")
    for mode in ("paste", "write"):
        for seconds in args.seconds:
            command = [sys.executable, __file__, "--one", str(seconds), mode, "--threads", str(args.threads)]
            command += ["--colour-match"] if args.colour_match else []
            run = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            label = "paste only" if mode == "paste" else "paste + H.264 mp4"  # rendering time left out
            print(f"  {label:18s} {seconds:5.0f} s ({r['frames']:5d} frames): {r['fps']:6.1f} frames/s, "
                  f"peak RSS {r['peak_mib']:5d} MiB (+{r['growth_mib']} MiB over the loaded process), "
                  f"face square {r['square'][2]} px")


if __name__ == "__main__":
    main()
