"""Warm gate-computation time of one pair for N samples x C classes: does it grow as N*C?

For each (N, C) the script writes the cache entries one pair needs (nominal float32
rows of parent and pruned, and per-sample summaries on the corruption views, as the
engine stores them), then times the warm path the suites take: read the entries,
build predictions, and compute every gate of the pair:

- accuracy margin (point mode);
- uncertainty drift, MSP: ΔAUSE, ΔECE, ΔNLL plus the report payload (prunecheck.gates.uncertainty);
- corruption margin on each corruption view (from summaries);
- functional similarity statistics (agreement, softmax distance) on 1,000 images.

Usage:
    python benchmarks/bench_gate_scaling.py [--sizes 10000 50000 200000] [--classes 10 1000] [--views 15]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from prunecheck import metrics
from prunecheck.config.options import default_gate_options
from prunecheck.core.views import NOMINAL, corruption
from prunecheck.core.io import cache_key
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictions import PredictionSummary, Predictions
from prunecheck.gates import uncertainty
from prunecheck.gates import accuracy

BLOCK = 1 << 22  # elements generated at once


def synthetic_log_probs(n: int, c: int, labels: torch.Tensor, seed: int, sharpness: float) -> np.ndarray:
    """float32 [1, n, c] log-softmax of logits that favour the label (accuracy ~0.7)."""
    g = torch.Generator().manual_seed(seed)
    out = np.empty((1, n, c), dtype=np.float32)
    rows = max(1, BLOCK // c)
    for start in range(0, n, rows):
        y = labels[start : start + rows]
        logits = torch.randn(len(y), c, generator=g) * 2.0
        logits[torch.arange(len(y)), y] += sharpness
        out[0, start : start + len(y)] = torch.log_softmax(logits, dim=1).numpy()
    return out


def write_pair(cache: ArrayCache, n: int, c: int, views: int) -> tuple[dict, torch.Tensor]:
    labels = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(1))
    keys = {}
    for model, sharpness in (("parent", 4.0), ("pruned", 3.8)):
        log_probs = synthetic_log_probs(n, c, labels, seed=hash(model) % 1000, sharpness=sharpness)
        keys[(model, "nominal")] = cache_key("bench", model, "nominal", n, c)
        cache.put(keys[(model, "nominal")], {"log_probs": log_probs})
        # Corruption views: summaries of one shifted prediction, samples permuted per view
        # (gate cost on summaries depends on N only; this keeps the setup short).
        shifted = synthetic_log_probs(n, c, labels, seed=1000 + (model == "pruned"), sharpness=2.5)
        arrays = PredictionSummary.from_probs(torch.from_numpy(shifted[0]).exp(), labels).arrays()
        del shifted
        for v in range(views):
            order = np.random.default_rng(v).permutation(n)
            keys[(model, v)] = cache_key("bench", model, v, n, c)
            cache.put(keys[(model, v)], {name: values[order] for name, values in arrays.items()})
    return keys, labels


def predictions(entry: dict, model: str, view, labels: torch.Tensor) -> Predictions:
    if "log_probs" in entry:
        return Predictions(model, "bench", view, torch.from_numpy(entry["log_probs"]), labels)
    return Predictions(model, "bench", view, None, labels, compact=PredictionSummary.from_arrays(entry))


def all_gates(cache: ArrayCache, keys: dict, labels: torch.Tensor, views: int, gates: dict) -> int:
    parent = predictions(cache.get(keys[("parent", "nominal")]), "parent", NOMINAL, labels)
    pruned = predictions(cache.get(keys[("pruned", "nominal")]), "pruned", NOMINAL, labels)
    results = [accuracy.margin(parent, pruned, gates["accuracy_margin"])]
    drift, _payload = uncertainty.drift_gates(parent, pruned, gates["uncertainty"], method="msp", subject="pair")
    results += drift
    for v in range(views):
        view = corruption("gaussian_noise", 1 + v % 5)
        p = predictions(cache.get(keys[("parent", v)]), "parent", view, labels)
        q = predictions(cache.get(keys[("pruned", v)]), "pruned", view, labels)
        results.append(accuracy.margin(p, q, gates["corruptions"]))
    subset = slice(0, min(1000, len(labels)))
    metrics.agreement(parent.probs[subset], pruned.probs[subset])
    metrics.softmax_distance(parent.probs[subset], pruned.probs[subset])
    return len(results)


def payload_seconds(cache: ArrayCache, keys: dict, labels: torch.Tensor) -> tuple[float, float]:
    """Time of the uncertainty report payload alone (uncertainty.summary on both models' rows)."""
    parent = predictions(cache.get(keys[("parent", "nominal")]), "parent", NOMINAL, labels)
    pruned = predictions(cache.get(keys[("pruned", "nominal")]), "pruned", NOMINAL, labels)
    started, started_cpu = time.perf_counter(), time.process_time()
    for p in (parent, pruned):
        uncertainty.summary(p, kind="msp", n_bins=15, steps=50)
    return time.perf_counter() - started, time.process_time() - started_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1_000])
    parser.add_argument("--views", type=int, default=15, help="corruption views (15 corruptions at severity 3)")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many warm runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier on a loaded machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gates = default_gate_options()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch threads: {torch.get_num_threads()}; {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"{args.views} corruption views; best of {args.repeat}")
    print("warm: wall and CPU seconds of all gates of one pair; payload: of which the uncertainty report payload")
    print(f"{'N':>8} {'C':>6} {'N*C':>10} {'gates':>6} {'wall s':>8} {'CPU s':>7} {'CPU s/1e8':>11} "
          f"{'payload s':>11} {'payload CPU':>11}")
    for c in args.classes:
        for n in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                cache = ArrayCache(Path(tmp))
                keys, labels = write_pair(cache, n, c, args.views)
                all_gates(cache, keys, labels, args.views, gates)  # page cache warm, as on a second run
                best, best_cpu = float("inf"), float("inf")
                for _ in range(args.repeat):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    count = all_gates(cache, keys, labels, args.views, gates)
                    best = min(best, time.perf_counter() - started)
                    best_cpu = min(best_cpu, time.process_time() - started_cpu)
                payload, payload_cpu = payload_seconds(cache, keys, labels)
            print(f"{n:>8} {c:>6} {n * c:>10.1e} {count:>6} {best:>8.2f} {best_cpu:>7.2f} "
                  f"{best_cpu / (n * c) * 1e8:>11.2f} {payload:>11.2f} {payload_cpu:>11.2f}")


if __name__ == "__main__":
    main()
