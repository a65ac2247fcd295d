"""Peak memory and speed of streaming LIA-X rendering (``render_iter``) as the video gets longer.

Renders N seconds of random motion at 25 fps with the small parity model (128x128) and drops every chunk
as soon as it arrives, the way a video writer consumes them. Each length runs in a fresh process so the
CPU peak resident memory (ru_maxrss) belongs to that run alone; on CUDA the peak allocated GPU memory is
reported as well. Bounded memory shows as a flat peak across lengths.

    python benchmarks/bench_render.py                      # GPU: 10, 60, 300 s; CPU: 1, 2, 4 s
    python benchmarks/bench_render.py --seconds 10 60 300 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from t2av_core.interfaces import FRAME_RATE  # noqa: E402
from t2av_core.motion_stats import motion_stats  # noqa: E402
from t2av_core.video.lia_x import load_lia_x  # noqa: E402

DEFAULT_WEIGHTS = REPO.parent / "shared" / "parity" / "codecs" / "lia_x" / "lia_x_tiny.safetensors"


def run_one(weights: str, seconds: float, batch_size: int, device: str) -> dict:
    renderer = load_lia_x(weights, device=device)
    gen = torch.Generator().manual_seed(0)
    face = renderer.prepare_face(torch.rand(renderer.image_size, renderer.image_size, 3, generator=gen))
    frames = round(seconds * FRAME_RATE)
    mean, std = motion_stats()
    motion = mean + 0.5 * std * torch.randn(frames, 40, generator=gen)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    count = 0
    for chunk in renderer.render_iter(face, motion, batch_size=batch_size, uint8=True):
        count += chunk.shape[0]  # consumed and dropped, as a video writer would
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result = {"seconds": seconds, "frames": count, "wall_s": elapsed, "fps": count / elapsed,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "rss_before_render_mib": rss_before / 1024}
    if device.startswith("cuda"):
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--seconds", type=float, nargs="+")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(run_one(args.weights, args.seconds[0], args.batch_size, args.device)))
        return

    seconds = args.seconds or ([10, 60, 300] if args.device.startswith("cuda") else [1, 2, 4])
    if args.seconds is None and not args.device.startswith("cuda"):
        print("CPU: default lengths shortened to 1, 2, 4 s; pass --seconds 10 60 300 for the full set")
    print(f"device {args.device}, batch size {args.batch_size}, weights {Path(args.weights).name}")
    print(f"{'length':>8} {'frames':>7} {'wall s':>8} {'fps':>8} {'peak RSS MiB':>13} {'peak GPU MiB':>13}")
    for s in seconds:
        cmd = [sys.executable, __file__, "--child", "--seconds", str(s), "--weights", args.weights,
               "--batch-size", str(args.batch_size), "--device", args.device, "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        gpu = f"{r['peak_gpu_mib']:13.1f}" if "peak_gpu_mib" in r else f"{'-':>13}"
        print(f"{s:>7g}s {r['frames']:>7} {r['wall_s']:>8.2f} {r['fps']:>8.1f} {r['peak_rss_mib']:>13.1f} {gpu}")


if __name__ == "__main__":
    main()
