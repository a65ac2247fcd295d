"""Measure long form on the demo model: per-chunk lip sync and stop reliability over a 2-minute script, and how
continuous the joins are.

    python scripts/eval_longform.py                 # 2 minutes of held-out demo sentences, seed 0
    python scripts/eval_longform.py --seconds 60 --chunk-seconds 12

* lip sync per chunk: Pearson correlation of mouth opening and loudness (best lag within 2 frames), as in
  scripts/eval_demo.py, over that chunk's frames of the joined, decoded clip;
* stop reliability: how many chunks the stop head ended (not the step budget);
* join continuity: the motion change (L2 over the 40 normalised dims) and the loudness change (dB, floored
  50 dB below the loudest frame) from the last frame of a chunk to the first of the next, divided by the median
  frame-to-frame change of the clip (1 = an ordinary frame step), and compared with the clip's 95th and 99th
  percentile steps (a speech onset after a pause is a large step anywhere in a clip; a jump would stand out
  beyond them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2av_core import pipeline  # noqa: E402
from t2av_core.demo.bundle import load_demo  # noqa: E402
from t2av_core.demo.corpus import corpus_texts  # noqa: E402
from t2av_core.demo.evaluation import held_out_texts  # noqa: E402
from t2av_core.demo.metrics import lip_sync_correlation  # noqa: E402

CHARS_PER_SECOND = 28  # how fast the demo speaks its grammar (measured: 3030 characters took 106 s)


def loudness_db(wave: torch.Tensor, hop: int, floor_db: float = 50.0) -> torch.Tensor:
    """Level per frame in dB, floored ``floor_db`` below the loudest frame: the demo codec decodes silence to
    exact zeros, whose -120 dB would make every onset after a pause look like a jump."""
    frames = wave[: wave.numel() // hop * hop].reshape(-1, hop)
    level = 20 * torch.log10(frames.pow(2).mean(dim=1).sqrt() + 1e-6)
    return level.clamp_min(float(level.max()) - floor_db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--chunk-seconds", type=float, default=18.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_demo()
    training = bundle.meta["training"]
    sentences = held_out_texts(400, seed=77, exclude=set(corpus_texts(training["clips"], training["seed"])))
    script, i = "", 0
    while len(script) < args.seconds * CHARS_PER_SECOND:
        script += sentences[i % len(sentences)] + " "
        i += 1
    voice = pipeline.default_voice(bundle.speaker_encoder)
    face = pipeline.encode_face(bundle.renderer)
    start = time.perf_counter()
    av, chunks = pipeline.sample_long(bundle.talker, bundle.tokenizer, script, voice, face, pipeline.SamplerParts(),
                                      args.seed, pipeline.LongFormSettings(chunk_seconds=args.chunk_seconds))
    wave, rate = pipeline.decode_audio(bundle.audio_codec, av)
    hop = rate // 25
    print(f"script: {len(script)} characters, {len(chunks)} chunks; clip {av.seconds:.1f} s, generated and decoded "
          f"in {time.perf_counter() - start:.1f} s")

    print(f"\n{'chunk':>5} {'start s':>8} {'length s':>9} {'end':>6} {'lip sync':>9}")
    syncs = []
    for k, chunk in enumerate(chunks):
        a, b = chunk.start_frame, chunk.start_frame + chunk.frames
        r, _ = lip_sync_correlation(av.motion_norm[a:b], wave[a * hop: b * hop], rate)
        syncs.append(r)
        print(f"{k + 1:>5} {a / 25:>8.2f} {chunk.frames / 25:>9.2f} {chunk.stop_reason:>6} {r:>9.2f}")

    motion_steps = (av.motion_norm[1:] - av.motion_norm[:-1]).norm(dim=1)
    level = loudness_db(wave, hop)
    level_steps = (level[1:] - level[:-1]).abs()
    joins = [c.start_frame for c in chunks[1:]]
    motion_ratio = [float(motion_steps[j - 1] / motion_steps.median()) for j in joins]
    level_ratio = [float(level_steps[j - 1] / level_steps.median()) for j in joins]
    print("\njoin continuity (change at the join / median frame-to-frame change):")
    print("  motion:   " + " ".join(f"{x:.2f}" for x in motion_ratio))
    print("  loudness: " + " ".join(f"{x:.2f}" for x in level_ratio))
    for name, steps in (("motion", motion_steps), ("loudness", level_steps)):
        p95, p99 = (float(steps.quantile(q) / steps.median()) for q in (0.95, 0.99))
        print(f"  {name}: the clip's own steps reach {p95:.2f} (95th percentile) and {p99:.2f} (99th)")
    print(f"\nsummary: lip sync mean {statistics.mean(syncs):.2f}, min {min(syncs):.2f}; stop head ended "
          f"{sum(c.stop_reason == 'stop' for c in chunks)}/{len(chunks)} chunks; join steps vs median: motion "
          f"mean {statistics.mean(motion_ratio):.2f} max {max(motion_ratio):.2f}, loudness mean "
          f"{statistics.mean(level_ratio):.2f} max {max(level_ratio):.2f}")


if __name__ == "__main__":
    main()
