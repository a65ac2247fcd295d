"""Long form, end to end: peak memory and wall time of the command line for scripts of 30 s, 2 min and 5 min.

    PYTHONPATH=. python benchmarks/bench_longform.py                # the bundled demo model, one thread
    PYTHONPATH=. python benchmarks/bench_longform.py --seconds 30 120

Each run is `python -m t2av_core generate --text-file script.txt` in its own process (script made of the demo
grammar's held-out sentences, capped at the target length), so the peak RSS is that run's alone: generation
holds only the current chunk's KV cache, and decoding, rendering and muxing stream to the file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from t2av_core.demo.evaluation import held_out_texts  # noqa: E402

CHARS_PER_SECOND = 25  # how fast the demo speaks its grammar, measured


def script_of(seconds: float) -> str:
    sentences = held_out_texts(500, seed=2024)
    text, i = "", 0
    while len(text) < seconds * CHARS_PER_SECOND * 1.15:  # a little more than needed: the cap ends it
        text += sentences[i % len(sentences)] + " "
        i += 1
    return text.strip()


def run(seconds: float, folder: Path) -> tuple[float, float, float]:
    """(peak RSS in MiB, wall seconds, clip seconds) of one command-line run."""
    script = folder / f"script_{int(seconds)}.txt"
    script.write_text(script_of(seconds), encoding="utf-8")
    out = folder / f"clip_{int(seconds)}.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "t2av_core", "generate", "--text-file", str(script), "--out",
                              str(out), "--max-seconds", str(seconds)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"run of {seconds} s failed:\n{child.stderr.read().decode()[-2000:]}")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        clip = sum(1 for _ in container.decode(stream)) / float(stream.average_rate)
    return usage.ru_maxrss / 1024, wall, clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[30, 120, 300])
    args = parser.parse_args()
    print(f"{'script':>8} {'clip s':>8} {'peak RSS MiB':>13} {'wall s':>8} {'x real time':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for seconds in args.seconds:
            peak, wall, clip = run(seconds, Path(folder))
            print(f"{seconds:>7.0f}s {clip:>8.1f} {peak:>13.0f} {wall:>8.1f} {wall / clip:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
