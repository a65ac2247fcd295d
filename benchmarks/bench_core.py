"""Speed of the Talker-T2AV generator with random weights: prefill, then per patch backbone / speech head /
motion head, and the real-time factor (one patch = 4 frames = 0.16 s of output); with ``--batch``, the
throughput of whole generations (generate_requests) at several batch sizes, the same prompt with different seeds
and different prompts, and the peak memory (CUDA: max_memory_allocated; CPU: the process's peak RSS).

    PYTHONPATH=. python benchmarks/bench_core.py --size released --device cpu --dtype float32 --patches 4
    PYTHONPATH=. python benchmarks/bench_core.py --size released --threads 1 --patches 2 --batch 1 4 16
"""

from __future__ import annotations

import argparse
import time

import torch

from t2av_core.generate import GenerationSettings
from t2av_core.model.blocks import rope_table
from t2av_core.model.config import TalkerConfig, tiny_config
from t2av_core.model.talker import TalkerT2AV

PATCH_SECONDS = 4 / 25


def random_model(cfg: TalkerConfig, device: str, dtype: torch.dtype, seed: int = 0) -> TalkerT2AV:
    """Allocate without the (slow) default init, then fill: N(0, 0.02) weights, unit norm gains, real RoPE tables."""
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = TalkerT2AV(cfg)
    model = model.to_empty(device=device)
    for name, p in model.named_parameters():
        if name.endswith(("norm.weight", "layernorm.weight", ".scale")):
            p.data.fill_(1.0)
        else:
            p.data.normal_(0.0, 0.02)
    for name, b in model.named_buffers():
        if name.endswith("rope.w"):
            b.copy_(rope_table(b.shape[0], 2 * b.shape[1]))
    model.backbone.rotary.reset_buffers(device)
    return model.to(dtype).eval().requires_grad_(False)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["released", "tiny"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ap.add_argument("--patches", type=int, default=4, help="timed AR steps (after one warm-up step)")
    ap.add_argument("--prompt", type=int, default=40, help="prompt ids before the first speech patch")
    ap.add_argument("--prefix", type=int, default=3, help="reference prefix patches")
    ap.add_argument("--cfm-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--batch", type=int, nargs="*", help="measure whole generations at these batch sizes instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch:
        return throughput(args)

    cfg = TalkerConfig.released() if args.size == "released" else tiny_config()
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    model = random_model(cfg, args.device, dtype)
    print(f"model: {args.size}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params, {args.device} "
          f"{args.dtype}, threads {torch.get_num_threads()}, built in {time.perf_counter() - t0:.1f} s")

    sampler = GenerationSettings(cfm_steps=args.cfm_steps).sampler()
    P = cfg.patch_size
    dev = args.device
    bb = model.backbone
    ids = torch.randint(0, cfg.backbone.vocab, (1, args.prompt), device=dev)
    total = args.patches + 1
    cache = bb.new_cache(1, args.prompt + args.prefix + total)
    speaker = torch.randn(1, cfg.speaker_dim, device=dev, dtype=dtype)
    first = torch.randn(1, cfg.motion_dim, device=dev, dtype=dtype)
    s_cond = torch.zeros(1, cfg.speech_dim, P * cfg.context_patches, device=dev, dtype=dtype)
    m_cond = torch.zeros(1, cfg.motion_dim, P * cfg.context_patches, device=dev, dtype=dtype)

    with torch.no_grad():
        sync(dev)
        t0 = time.perf_counter()
        prefix = model.embed_patches(torch.randn(1, args.prefix, P, cfg.speech_dim, device=dev, dtype=dtype),
                                     torch.randn(1, args.prefix, P, cfg.motion_dim, device=dev, dtype=dtype))
        h = bb(torch.cat([model.embed_tokens(ids), prefix], dim=1), 0, cache)[:, -1]
        sync(dev)
        prefill = time.perf_counter() - t0

        times = {"backbone": [], "speech head": [], "motion head": []}
        pos = args.prompt + args.prefix
        for step in range(total):
            t0 = time.perf_counter()
            speech = sampler.sample(model.speech_cfm.estimator, h, s_cond, speaker,
                                    torch.randn(1, cfg.speech_dim, P, device=dev, dtype=dtype))
            sync(dev)
            t1 = time.perf_counter()
            motion = sampler.sample(model.motion_cfm.estimator, h, m_cond, first,
                                    torch.randn(1, cfg.motion_dim, P, device=dev, dtype=dtype))
            sync(dev)
            t2 = time.perf_counter()
            model.stop_logit(h)
            nxt = model.embed_patches(speech.transpose(1, 2)[:, None], motion.transpose(1, 2)[:, None])
            h = bb(nxt, pos + step, cache)[:, -1]
            s_cond, m_cond = speech, motion
            sync(dev)
            t3 = time.perf_counter()
            if step:  # step 0 is warm-up
                times["speech head"].append(t1 - t0)
                times["motion head"].append(t2 - t1)
                times["backbone"].append(t3 - t2)

    per_patch = {k: sum(v) / len(v) for k, v in times.items()}
    step = sum(per_patch.values())
    print(f"prefill ({args.prompt} ids + {args.prefix} prefix patches): {prefill * 1e3:.1f} ms")
    print("per patch: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in per_patch.items())
          + f" (backbone includes re-embedding and stop head; {args.cfm_steps} flow steps per head)")
    print(f"total {step * 1e3:.1f} ms per patch of {PATCH_SECONDS:.2f} s -> real-time factor {step / PATCH_SECONDS:.2f} "
          f"({'faster' if step < PATCH_SECONDS else 'slower'} than real time)")


def throughput(args) -> None:
    """Whole generations (no stop: every sample runs ``--patches`` patches) at each batch size, for one prompt
    with a seed per sample and for different prompts (lengths 20 .. 60, left-padded), per stream-patch."""
    import resource

    from t2av_core.generate import Request, generate_requests
    cfg = TalkerConfig.released() if args.size == "released" else tiny_config()
    model = random_model(cfg, args.device, getattr(torch, args.dtype))
    settings = GenerationSettings(cfm_steps=args.cfm_steps, use_stop=False, prefix_seconds=0,
                                  max_seconds=args.patches * PATCH_SECONDS)
    voice, face = torch.randn(cfg.speaker_dim), torch.randn(1, cfg.motion_dim)
    generator = torch.Generator().manual_seed(0)
    print(f"model: {args.size}, {args.device} {args.dtype}, threads {torch.get_num_threads()}, "
          f"{args.patches} patches per sample")
    print(f"{'batch':>5} {'prompts':>9} {'s per stream-patch':>19} {'x batch 1':>10} {'peak memory MiB':>16}")
    single = {}
    for batch in args.batch:
        for kind in ("same", "different"):
            lengths = [40] * batch if kind == "same" else [20 + (40 * i) // max(1, batch - 1) for i in range(batch)]
            requests = [Request(torch.randint(0, cfg.backbone.vocab, (n,), generator=generator), voice, face, seed=i)
                        for i, n in enumerate(lengths)]
            generate_requests(model, requests[:1], settings)  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            sync(args.device)
            start = time.perf_counter()
            generate_requests(model, requests, settings)
            sync(args.device)
            per = (time.perf_counter() - start) / (batch * args.patches)
            single.setdefault(kind, per)
            peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda")
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(f"{batch:>5} {kind:>9} {per:>19.3f} {single[kind] / per:>10.2f} {peak:>16.0f}", flush=True)


if __name__ == "__main__":
    main()
