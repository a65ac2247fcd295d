"""Measure the committed demo model: lip sync, duration error and stop reliability on held-out sentences.

    python scripts/eval_demo.py              # 12 held-out sentences (needs espeak-ng for the reference lengths)
    python scripts/eval_demo.py --count 4

* lip sync: Pearson correlation between the mouth opening of the generated motion and the loudness envelope
  (dB per 40 ms frame) of the generated, decoded audio, best over lags of at most 2 frames;
* duration error: generated length minus the length espeak-ng speaks the same sentence with the training
  voice the demo uses by default;
* stop reliability: share of runs the stop head ended within 0.5 s of that length;
* text match: DTW distance of the generated audio latents to espeak-ng's rendering of the same sentence,
  against other sentences' renderings, and how often the own sentence is the nearest one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t2av_core.demo.bundle import ASSETS, load_demo  # noqa: E402
from t2av_core.demo.corpus import corpus_texts, pad_to_patches  # noqa: E402
from t2av_core.demo.evaluation import evaluate_text, held_out_texts  # noqa: E402
from t2av_core.demo.mel_codec import MelCodec  # noqa: E402
from t2av_core.demo.metrics import dtw_distance, lip_sync_correlation  # noqa: E402
from t2av_core.demo.motion_track import speech_driven_motion  # noqa: E402
from t2av_core.demo.speech import SAMPLE_RATE, VOICES, synthesize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--assets", type=Path, default=ASSETS, help="a bundle folder written by train_demo.py")
    args = parser.parse_args()
    torch.set_num_threads(1)

    bundle = load_demo(args.assets)
    training = bundle.meta["training"]
    texts = held_out_texts(args.count, exclude=set(corpus_texts(training["clips"], training["seed"])))
    voice = next(v for v in VOICES if v.name == bundle.meta["default_voice"])
    codec = MelCodec(**bundle.meta["codec"])
    generated, references, errors, syncs, ref_syncs, stops = [], [], [], [], [], 0
    start = time.time()
    print(f"{'gen s':>6} {'ref s':>6} {'error':>6} {'stop':>6} {'sync':>5} {'lag':>3}  text")
    for i, text in enumerate(texts):
        result = evaluate_text(bundle, text, seed=args.seed + i)
        speech = synthesize(text, voice)
        reference_s = speech.numel() / SAMPLE_RATE
        # The same metric on the training data itself: the ceiling the model can reach.
        wave = pad_to_patches(speech)
        generated.append(result.audio)
        references.append(codec.encode(wave))
        ref_motion = speech_driven_motion(wave, SAMPLE_RATE, torch.Generator().manual_seed(i))
        ref_syncs.append(lip_sync_correlation(ref_motion, wave, SAMPLE_RATE)[0])
        error = result.seconds - reference_s
        ok = result.stop_reason == "stop" and abs(error) <= 0.5
        stops += ok
        errors.append(error)
        syncs.append(result.lip_sync)
        print(f"{result.seconds:6.2f} {reference_s:6.2f} {error:+6.2f} {result.stop_reason:>6} "
              f"{result.lip_sync:5.2f} {result.lag:+3d}  {text}", flush=True)
    print()
    print(f"model: {bundle.meta['about']}")
    print(f"trained: {training['steps_done']} steps, {training['minutes']} min, seed {training['seed']}")
    print(f"held-out sentences: {len(texts)}, {time.time() - start:.0f} s")
    print(f"lip sync (mouth vs loudness, best |lag|<=2): mean {statistics.mean(syncs):.2f}, "
          f"min {min(syncs):.2f} (training data itself: {statistics.mean(ref_syncs):.2f})")
    print(f"duration error vs espeak-ng: mean {statistics.mean(errors):+.2f} s, "
          f"mean |error| {statistics.mean(abs(e) for e in errors):.2f} s")
    distance = [[dtw_distance(g, r) for r in references] for g in generated]
    own = [distance[i][i] for i in range(len(texts))]
    other = [distance[i][j] for i in range(len(texts)) for j in range(len(texts)) if i != j]
    nearest = sum(min(range(len(texts)), key=lambda j: distance[i][j]) == i for i in range(len(texts)))
    print(f"text match (DTW distance of audio latents to espeak-ng): own sentence {statistics.mean(own):.2f}, "
          f"other sentences {statistics.mean(other):.2f}; own sentence nearest in {nearest}/{len(texts)}")
    print(f"stop reliability (stop head ended within 0.5 s): {stops}/{len(texts)} = {stops / len(texts):.0%}")


if __name__ == "__main__":
    main()
