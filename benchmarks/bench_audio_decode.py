"""Time and peak memory of WhisperX-VAE chunked decoding for 10 s, 60 s and 300 s of latents.

    python benchmarks/bench_audio_decode.py                       # tiny fixture weights, CPU
    python benchmarks/bench_audio_decode.py --weights model.ckpt --device cuda --dtype float32

CPU memory is the peak resident-set growth during the decode, sampled every 2 ms from /proc (torch's
allocations are invisible to tracemalloc); on CUDA it is torch's peak allocated memory. With
``--one-shot`` the same latents are also decoded in one piece, for comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package
from t2av_core.audio.whisperx_vae import load_audio_vae  # noqa: E402

TINY = REPO.parent / "shared" / "parity" / "codecs" / "audio_vae" / "audio_vae_tiny.safetensors"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Samples the resident set size in a background thread while the block runs."""

    def __enter__(self):
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(fn, device: torch.device) -> tuple[float, float]:
    """(seconds, peak MiB) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start, (torch.cuda.max_memory_allocated() - before) / 2**20
    with PeakRSS() as peak:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return seconds, peak.growth_mib


def run_one(args, seconds: int, one_shot: bool) -> None:
    """One measurement in this (fresh) process; prints a single result line."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    codec = load_audio_vae(args.weights, device=device, dtype=getattr(torch, args.dtype),
                           whisper_heads=args.whisper_heads, chunk_frames=args.chunk_frames)
    codec.decode(torch.zeros(30, 32))  # warm-up
    latents = torch.randn(seconds * 25, 32, generator=torch.Generator().manual_seed(seconds))
    if one_shot:
        x = latents.to(device, codec.dtype)[None]

        def work():
            with torch.no_grad():
                return codec.model.decode(x)
    else:
        def work():
            return codec.decode(latents)
    t, mib = measure(work, device)
    name = "one-shot" if one_shot else "chunked "
    print(f"{name} {seconds:4d} s audio: {t:7.2f} s ({seconds / t:6.1f}x real time), peak +{mib:8.1f} MiB",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(TINY))
    parser.add_argument("--whisper-heads", type=int, default=2, help="2 for the tiny fixture; ignored if the file says")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--seconds", default="10,60,300")
    parser.add_argument("--chunk-frames", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one-shot", action="store_true", help="also decode each length in one piece")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # "<seconds>,<0|1>": child mode
    args = parser.parse_args()
    if args.single:
        seconds, one_shot = args.single.split(",")
        return run_one(args, int(seconds), one_shot == "1")
    print(f"weights {args.weights}\ndevice {args.device}, {args.dtype}, {args.threads} CPU thread(s), "
          f"chunk {args.chunk_frames} frames; each line is a fresh process")
    # A fresh process per measurement: freed CPU memory is not always returned to the OS, so RSS peaks
    # measured one after another in the same process would hide each other.
    for seconds in (int(s) for s in args.seconds.split(",")):
        for one_shot in ((False, True) if args.one_shot else (False,)):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--single", f"{seconds},{int(one_shot)}"],
                           check=True)


if __name__ == "__main__":
    main()
