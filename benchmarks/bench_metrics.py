"""Time ece and ause on 1,000,000 samples x 10 classes against naive references.

Naive ECE: one boolean mask per bin. Naive AUSE: for each of the 50 steps a
full quantile and a full mask, per curve (Alg. 1 as written, with the text's
direction). Both naive versions are numpy; the library runs on torch (CPU
here, or the device given with --device). The script also checks that the
numbers agree.

Usage:
    python benchmarks/bench_metrics.py [--n 1000000] [--classes 10] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from prunecheck import metrics


def naive_ece(p: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    conf = p.max(axis=1).astype(np.float64)
    correct = p.argmax(axis=1) == y
    total = 0.0
    for b in range(n_bins):
        upper = conf < (b + 1) / n_bins if b < n_bins - 1 else np.ones_like(correct)
        mask = (conf >= b / n_bins) & upper
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def naive_ause(p: np.ndarray, y: np.ndarray, steps: int = 50) -> float:
    correct = p.argmax(axis=1) == y
    u_pred = 1.0 - p.max(axis=1).astype(np.float64)
    u_true = 1.0 - p[np.arange(len(y)), y].astype(np.float64)
    gaps = []
    for k in range(steps):
        errs = []
        for u in (u_pred, u_true):
            keep = u <= np.quantile(u, 1 - k / steps)
            errs.append(1.0 - correct[keep].mean())
        gaps.append(errs[0] - errs[1])
    return float(np.trapezoid(gaps, np.arange(steps) / steps))


def best_time(fn, repeat: int) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(args.n, args.classes, generator=gen) * 3.0
    probs = torch.softmax(logits, dim=1)  # float32: some rows saturate to exactly 1.0
    labels = torch.where(
        torch.rand(args.n, generator=gen) < 0.8, probs.argmax(1), torch.randint(0, args.classes, (args.n,), generator=gen)
    )
    p_np, y_np = probs.numpy(), labels.numpy()
    p_dev, y_dev = probs.to(args.device), labels.to(args.device)

    print(f"N = {args.n:,} samples x C = {args.classes} classes, float32, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeat}")
    print(f"{'metric':8} {'prunecheck [s]':>15} {'naive [s]':>10} {'speed-up':>9}  values (prunecheck / naive)")
    for name, fast, slow in (
        ("ece", lambda: metrics.ece(p_dev, y_dev), lambda: naive_ece(p_np, y_np)),
        ("ause", lambda: metrics.ause(p_dev, y_dev), lambda: naive_ause(p_np, y_np)),
    ):
        t_fast, v_fast = best_time(fast, args.repeat)
        t_slow, v_slow = best_time(slow, max(1, args.repeat // 3))
        print(f"{name:8} {t_fast:15.3f} {t_slow:10.3f} {t_slow / t_fast:8.1f}x  {v_fast:.6f} / {v_slow:.6f}")
        if not abs(v_fast - v_slow) <= 1e-9:
            raise SystemExit(f"{name}: prunecheck and naive disagree ({v_fast!r} vs {v_slow!r})")

    t_val, _ = best_time(lambda: metrics.validate_probs(p_dev, y_dev), args.repeat)
    print(f"  of which input validation (finite, range, row sums, labels): {t_val:.3f} s per call")
    t_boot, r = best_time(
        lambda: metrics.paired_bootstrap("ece", p_dev[:10_000], p_dev[:10_000].roll(1, 1), y_dev[:10_000]), 1
    )
    print(f"paired_bootstrap(ece), N = 10,000, 1000 resamples: {t_boot:.3f} s  (CI [{r.low:.4f}, {r.high:.4f}])")


if __name__ == "__main__":
    main()
