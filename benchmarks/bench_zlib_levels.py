"""Which zlib level for the compressed-size fact? Time and size per level on ResNet-18.

The efficiency facts report each model's state dict size after deflate (seed 001 reports
model size this way). This script serialises a ResNet-18 state dict (torchvision,
random init) dense and magnitude-pruned (global unstructured, 50 % and 80 % of the
conv/linear weights set to zero), deflates it at each level and prints the seconds,
the compressed size, and the parent/pruned compression ratio per level relative to
level 9's, all measured in this one run.

Usage:
    python benchmarks/bench_zlib_levels.py [--levels 1 3 6 9] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import time
import zlib

import torch
from torch import nn


def pruned_state(model: nn.Module, ratio: float) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    magnitudes = torch.cat([state[n].abs().flatten() for n in names])
    cut = magnitudes.kthvalue(max(1, int(ratio * magnitudes.numel()))).values
    for n in names:
        state[n][state[n].abs() <= cut] = 0
    return state


def serialised(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6, 9])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=1000)
    blobs = {"dense": serialised(model.state_dict())}
    for ratio in (0.5, 0.8):
        blobs[f"pruned {ratio:.0%}"] = serialised(pruned_state(model, ratio))
    print(f"torch {torch.__version__}, zlib {zlib.ZLIB_RUNTIME_VERSION}, raw size {len(blobs['dense']) / 1e6:.1f} MB")
    sizes: dict[tuple[str, int], int] = {}
    print(f"{'model':>12} {'level':>5} {'seconds':>8} {'MB':>7} {'of raw':>7}")
    for name, raw in blobs.items():
        for level in args.levels:
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                size = len(zlib.compress(raw, level))
                best = min(best, time.perf_counter() - start)
            sizes[(name, level)] = size
            print(f"{name:>12} {level:>5} {best:>8.2f} {size / 1e6:>7.2f} {size / len(raw):>7.3f}")
    reference = max(args.levels)
    print(f"\ncompression ratio dense / pruned, and relative to level {reference}'s:")
    for name in blobs:
        if name == "dense":
            continue
        for level in args.levels:
            ratio = sizes[("dense", level)] / sizes[(name, level)]
            ref = sizes[("dense", reference)] / sizes[(name, reference)]
            print(f"{name:>12} level {level}: {ratio:.3f} ({ratio / ref - 1:+.2%})")


if __name__ == "__main__":
    main()
