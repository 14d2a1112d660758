"""Corruption throughput per corruption and image size: torch backend vs the imagecorruptions reference.

Per-image time of each corruption the torch backend covers, at each ``--sizes`` side
and severity ``--severity``, with constant profile ``--profile``: the reference
(:func:`prunecheck.data.corruptions.generate.corrupt_images`, one image at a time as the
generator runs it; with the imagenet profile that is imagecorruptions' own function or
prunecheck's byte-identical re-implementation) on a few images, the torch backend
(:func:`prunecheck.data.corruptions.torch_backend.corrupt_batch`) on a batch in one call;
best of ``--repeats``. Images are smooth colour blocks plus noise. ``--clock cpu`` times
CPU time of this process instead of wall time (CPU only): on a machine shared with other
jobs it leaves out the time the process waits for a core, so ratios move less between
runs (with ``--threads 1`` both sides then count one core's work). Usage::

    python benchmarks/bench_corruptions.py [--device cuda] [--sizes 32 224] [--profile imagenet]
    python benchmarks/bench_corruptions.py --threads 1 --clock cpu   # a shared CPU machine
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prunecheck.data.corruptions.generate import corrupt_images  # noqa: E402
from prunecheck.data.corruptions.torch_backend import TORCH_CORRUPTIONS, corrupt_batch  # noqa: E402

#: (torch images, reference images) per call, by image side: about the same work per size.
_COUNTS = {32: (1024, 32), 224: (32, 4)}


def _timed(fn, device: torch.device, clock=time.perf_counter) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def _best_pair(run_ref, run_torch, repeats: int, device: torch.device, clock=time.perf_counter) -> tuple[float, float]:
    """Best of ``repeats`` for each, alternating the two so that a change of machine load
    hits both (the CI machine is shared)."""
    ref = ours = float("inf")
    for _ in range(repeats):
        ref = min(ref, _timed(run_ref, torch.device("cpu"), clock))
        ours = min(ours, _timed(run_torch, device, clock))
    return ref, ours


def _images(n: int, side: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, 3, side, side]: 8 x 8 colour blocks upsampled, plus Gaussian noise."""
    rs = np.random.RandomState(seed)
    coarse = rs.randint(0, 256, (n, 3, 8, 8)).astype(np.float64)
    blocks = np.kron(coarse, np.ones((1, 1, side // 8 + 1, side // 8 + 1)))[:, :, :side, :side]
    return np.clip(blocks + rs.normal(0, 20, blocks.shape), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> list[tuple[int, str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--profile", default="imagenet", choices=("imagenet", "cifar"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--only", nargs="*", default=None, help="corruption names (default: all torch-covered)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or CPU time of this process (CPU device only)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock == "cpu" and device.type != "cpu":
        parser.error("--clock cpu times this process's CPU work; use the wall clock for a GPU")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    names = args.only or TORCH_CORRUPTIONS
    print(f"# corruption throughput, severity {args.severity}, {args.profile} profile; torch on {device}, "
          f"{torch.get_num_threads()} threads; reference on the CPU, one image at a time; {args.clock} clock")
    print(f"{'size':>5s} {'corruption':18s} {'reference us/img':>17s} {'torch us/img':>13s} {'speed-up':>9s}")
    rows = []
    for side in args.sizes:
        n_torch, n_ref = _COUNTS.get(side, (max(8, 32768 // side), max(2, 1024 // side)))
        images = _images(n_torch, side)
        on_device = torch.from_numpy(images).to(device)
        indices = torch.arange(n_torch, device=device)
        ref_batch = np.ascontiguousarray(images[:n_ref].transpose(0, 2, 3, 1))
        ref_indices = np.arange(n_ref)
        for name in names:
            run_ref = lambda: corrupt_images(ref_batch, ref_indices, name, args.severity, 0, args.profile)  # noqa: E731
            run_torch = lambda: corrupt_batch(on_device, indices, name, args.severity, 0, args.profile)  # noqa: E731
            corrupt_images(ref_batch[:1], ref_indices[:1], name, args.severity, 0, args.profile)  # warm-up
            corrupt_batch(on_device[:2], indices[:2], name, args.severity, 0, args.profile)
            ref, ours = _best_pair(run_ref, run_torch, args.repeats, device, clock)
            ref, ours = ref / n_ref, ours / n_torch
            rows.append((side, name, ref, ours))
            print(f"{side:5d} {name:18s} {ref * 1e6:17.1f} {ours * 1e6:13.2f} {ref / ours:8.1f}x", flush=True)
    return rows


if __name__ == "__main__":
    main()
