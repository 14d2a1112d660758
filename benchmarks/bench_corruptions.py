"""Corruption throughput per corruption: torch backend vs the imagecorruptions reference.

Per-image time of each corruption the torch backend covers, at 32 x 32 and severity
``--severity``: the reference (:func:`prunecheck.corruptions.generate.corrupt_images`,
one image at a time as the generator runs it) on ``--ref-images`` images, the torch
backend (:func:`prunecheck.corruptions.torch_backend.corrupt_batch`) on
``--images`` images in one call; best of ``--repeats``. Usage::

    python benchmarks/bench_corruptions.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prunecheck.corruptions.generate import corrupt_images  # noqa: E402
from prunecheck.corruptions.torch_backend import TORCH_CORRUPTIONS, corrupt_batch  # noqa: E402


def _best(fn, repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--ref-images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rs = np.random.RandomState(0)
    images = rs.randint(0, 256, (args.images, 3, 32, 32)).astype(np.uint8)
    on_device = torch.from_numpy(images).to(device)
    indices = torch.arange(args.images, device=device)
    ref_batch = np.ascontiguousarray(images[: args.ref_images].transpose(0, 2, 3, 1))
    ref_indices = np.arange(args.ref_images)
    print(f"# corruption throughput at 32x32, severity {args.severity}; torch on {device}, "
          f"{torch.get_num_threads()} threads; reference on the CPU, one image at a time")
    print(f"{'corruption':16s} {'reference us/img':>17s} {'torch us/img':>13s} {'speed-up':>9s}")
    rows = []
    for name in TORCH_CORRUPTIONS:
        corrupt_images(ref_batch[:2], ref_indices[:2], name, args.severity, 0)  # warm-up (imports, tables)
        corrupt_batch(on_device[:16], indices[:16], name, args.severity, 0)
        ref = _best(lambda: corrupt_images(ref_batch, ref_indices, name, args.severity, 0), args.repeats,
                    torch.device("cpu")) / args.ref_images
        ours = _best(lambda: corrupt_batch(on_device, indices, name, args.severity, 0), args.repeats,
                     device) / args.images
        rows.append((name, ref, ours))
        print(f"{name:16s} {ref * 1e6:17.1f} {ours * 1e6:13.2f} {ref / ours:8.1f}x", flush=True)
    return rows


if __name__ == "__main__":
    main()
