"""Train the bundled demo model from scratch on the CPU (about 30 minutes on one core), reproducibly from a seed.

Needs the espeak-ng program for the synthetic speech (Debian/Ubuntu: ``apt-get install -y espeak-ng``).

    python scripts/train_demo.py                     # writes t2av_core/demo/assets/{talker.safetensors,demo.json}
    python scripts/train_demo.py --steps 50 --clips 64 --out output/demo_try   # a quick smoke run

What it does: makes ``--clips`` sentences with a seeded grammar, speaks them with six espeak-ng voices,
turns each into demo codec latents, a voice vector and speech-driven face motion (``t2av_core.demo``), then
trains the small TalkerT2AV with the released objective (``t2av_core.demo.training``) plus a training-only
CTC loss that reads the prompt's characters back out of the backbone (``--align-weight``): without it a few
thousand CPU steps learn the rhythm of speech but not its words.
The corpus is cached in ``output/demo_corpus_<seed>_<clips>.pt`` (plain tensors, loaded with weights_only).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t2av_core.demo.bundle import ASSETS, save_demo  # noqa: E402
from t2av_core.demo.corpus import Clip, make_corpus  # noqa: E402
from t2av_core.demo.mel_codec import MelCodec  # noqa: E402
from t2av_core.demo.speech import VOICES, synthesize  # noqa: E402
from t2av_core.demo.training import AlignmentHead, collate, demo_config, training_loss  # noqa: E402
from t2av_core.demo.voice import SpectralVoiceEmbedder  # noqa: E402
from t2av_core.model.talker import TalkerT2AV  # noqa: E402

DEFAULT_VOICE_TEXT = "Hello, this is the demo voice of the talking face."


def load_or_make_corpus(clips: int, seed: int, codec: MelCodec) -> list[Clip]:
    cache = ROOT / "output" / f"demo_corpus_{seed}_{clips}.pt"
    fields = ("text", "voice", "prompt_ids", "audio", "motion", "speaker", "speech_frames")
    if cache.is_file():
        rows = torch.load(cache, weights_only=True)
        return [Clip(**dict(zip(fields, row))) for row in rows]
    start = time.time()

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"corpus {done}/{total} clips, {time.time() - start:.0f} s", flush=True)
    corpus = make_corpus(clips, seed, codec, report)
    cache.parent.mkdir(exist_ok=True)
    torch.save([[getattr(c, f) for f in fields] for c in corpus], cache)
    return corpus


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--flow-patches", type=int, default=64, help="patches per step that train the flow heads")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--align-weight", type=float, default=2.0,
                        help="weight of the training-only CTC text-alignment loss (0 = off)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--save-every", type=int, default=300, help="also save the bundle every N steps")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec = MelCodec()
    corpus = load_or_make_corpus(args.clips, args.seed, codec)
    model = TalkerT2AV(demo_config())
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, corpus: {len(corpus)} clips",
          flush=True)
    align_head = AlignmentHead(model.cfg.hidden) if args.align_weight > 0 else None  # training-only, not saved
    params = list(model.parameters()) + (list(align_head.parameters()) if align_head is not None else [])
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    order = torch.Generator().manual_seed(args.seed)
    start, running = time.time(), None
    perm, cursor = torch.randperm(len(corpus), generator=order), 0
    for step in range(args.steps):
        if cursor + args.batch > len(corpus):
            perm, cursor = torch.randperm(len(corpus), generator=order), 0
        batch = collate([corpus[i] for i in perm[cursor:cursor + args.batch].tolist()])
        cursor += args.batch
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, warmup=min(args.warmup, args.steps // 10 + 1))
        loss, parts = training_loss(model, batch, flow_patches=args.flow_patches, align_head=align_head,
                                     align_weight=args.align_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        running = parts if running is None else {k: 0.95 * running[k] + 0.05 * v for k, v in parts.items()}
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  {time.time() - start:6.0f} s  " +
                  "  ".join(f"{k} {v:.3f}" for k, v in running.items()), flush=True)
        if (step + 1) % args.save_every == 0 or step == args.steps - 1:
            save_demo(args.out, model, bundle_meta(args, codec, step + 1, (time.time() - start) / 60, running))
    print(f"saved {args.out} after {(time.time() - start) / 60:.1f} min", flush=True)


def bundle_meta(args: argparse.Namespace, codec: MelCodec, steps_done: int, minutes: float, losses: dict) -> dict:
    embedder = SpectralVoiceEmbedder()
    default_speaker = embedder.embed(synthesize(DEFAULT_VOICE_TEXT, VOICES[0]))
    return {
        "about": "Demo-only Talker-T2AV trained by scripts/train_demo.py on synthetic espeak-ng speech and a "
                 "drawn face; not the released model.",
        "codec": {"mean": codec.mean, "std": codec.std, "griffin_lim_iters": codec.iters},
        "renderer": {"image_size": 256},
        "default_speaker": [round(float(x), 6) for x in default_speaker],
        "default_voice": VOICES[0].name,
        "training": {"seed": args.seed, "clips": args.clips, "steps": args.steps, "steps_done": steps_done,
                     "batch": args.batch,
                     "flow_patches": args.flow_patches, "lr": args.lr, "warmup": args.warmup,
                     "align_weight": args.align_weight, "threads": args.threads,
                     "minutes": round(minutes, 1), "final_losses": {k: round(v, 4) for k, v in losses.items()}},
    }


if __name__ == "__main__":
    main()
