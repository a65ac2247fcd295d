"""Where a flow head's time goes on the CPU, and whether another matrix-multiply path is faster.

    PYTHONPATH=. python benchmarks/bench_head_gemm.py [--threads 1]

One DiT evaluation at the released size (8 blocks, width 1024, batch 2 x 10 tokens, random weights) is timed
and profiled: the share of matrix multiplies in it, and their throughput. Then one of its products (20 rows
times the 2730 x 1024 MLP weight) is timed through the default path and the alternatives that keep fp32:
MKL's pre-packed weights, oneDNN's linear, and the transposed product. Each prints its largest difference to
the default result. Figures only; nothing here is used by the pack.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from t2av_core.model.config import EncoderConfig
from t2av_core.model.dit import DiTEstimator


def per_call_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def head_profile(repeats: int) -> None:
    torch.manual_seed(0)
    head = DiTEstimator(32, 256, EncoderConfig(layers=8, n_heads=8)).eval()
    for parameter in head.parameters():
        parameter.data.normal_(0, 0.02)
    x, mu, t = torch.randn(2, 32, 4), torch.randn(2, 1024), torch.rand(2)
    cond, glob = torch.randn(2, 32, 4), torch.randn(2, 256)
    with torch.inference_mode():
        ms = per_call_ms(lambda: head(x, mu, t, cond, glob), repeats)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                head(x, mu, t, cond, glob)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    gemm = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm"))
    macs = sum(p.numel() for n, p in head.named_parameters() if n.endswith("weight") and p.dim() == 2) * 20
    print(f"one DiT evaluation (batch 2 x 10 tokens): {ms:.1f} ms; matrix multiplies {100 * gemm / total:.0f} % "
          f"of it, at about {2 * macs / (ms * gemm / total / 1000) / 1e9:.0f} GFLOP/s")


def gemm_paths(repeats: int) -> None:
    torch.manual_seed(0)
    weight, x = torch.randn(2730, 1024) * 0.02, torch.randn(20, 1024)
    packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, 20)
    onednn = weight.to_mkldnn()
    paths = {
        "default (F.linear)": lambda: F.linear(x, weight),
        "MKL pre-packed weight": lambda: torch.ops.mkl._mkl_linear(x, packed, weight, None, 20),
        "oneDNN linear": lambda: torch._C._nn.mkldnn_linear(x.to_mkldnn(), onednn, None).to_dense(),
        "transposed (W @ x.T).T": lambda: (weight @ x.t()).t(),
    }
    reference = F.linear(x, weight)
    print("one product, 20 x 1024 times 1024 x 2730:")
    for name, fn in paths.items():
        ms = per_call_ms(fn, repeats * 4)
        error = (fn() - reference).abs().max().item()
        print(f"  {name:24s} {ms:6.2f} ms  {2 * 20 * weight.numel() / ms / 1e6:5.1f} GFLOP/s  max diff {error:.1e}")
    longer = torch.randn(80, 1024)  # what the same kernel reaches when the product is longer
    ms = per_call_ms(lambda: F.linear(longer, weight), repeats * 4)
    print(f"  {'default, 80 rows':24s} {ms:6.2f} ms  {2 * 80 * weight.numel() / ms / 1e6:5.1f} GFLOP/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), torch {torch.__version__}")
    head_profile(args.repeats)
    gemm_paths(args.repeats)


if __name__ == "__main__":
    main()
