"""Warm gate-computation time of one pair for N samples x C classes: does it grow as N*C?

For each (N, C) the script writes the cache entries one pair needs (nominal float32
rows of parent and pruned, and per-sample summaries on the corruption views, as the
engine stores them), then times the warm path the suites take: read the entries,
build predictions, and compute every gate of the pair:

- accuracy margin (point mode);
- uncertainty drift, MSP: ΔAUSE, ΔECE, ΔNLL plus the report payload (prunecheck.uncertainty);
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
from types import SimpleNamespace

import numpy as np
import torch

from prunecheck import metrics, uncertainty
from prunecheck.cache import ArrayCache, cache_key
from prunecheck.checks import GateChecker
from prunecheck.gates import GATE_DEFAULTS
from prunecheck.predictions import PredictionSummary, Predictions
from prunecheck.settings import RunSettings, Settings
from prunecheck.views import NOMINAL, corruption

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
        for v in range(views):
            shifted = synthetic_log_probs(n, c, labels, seed=1000 + v + 100 * (model == "pruned"), sharpness=2.5)
            summary = PredictionSummary.from_probs(torch.from_numpy(shifted[0]).exp(), labels)
            keys[(model, v)] = cache_key("bench", model, v, n, c)
            cache.put(keys[(model, v)], summary.arrays())
    return keys, labels


def predictions(entry: dict, model: str, view, labels: torch.Tensor) -> Predictions:
    if "log_probs" in entry:
        return Predictions(model, "bench", view, torch.from_numpy(entry["log_probs"]), labels)
    return Predictions(model, "bench", view, None, labels, compact=PredictionSummary.from_arrays(entry))


def all_gates(cache: ArrayCache, keys: dict, labels: torch.Tensor, views: int, gate: GateChecker) -> int:
    parent = predictions(cache.get(keys[("parent", "nominal")]), "parent", NOMINAL, labels)
    pruned = predictions(cache.get(keys[("pruned", "nominal")]), "pruned", NOMINAL, labels)
    results = [gate.degradation("accuracy_margin", "accuracy", parent, pruned, threshold_key="max_drop")]
    drift, _payload = uncertainty.drift_gates(gate, "pair", "msp", parent, pruned)
    results += drift
    for v in range(views):
        view = corruption("gaussian_noise", 1 + v % 5)
        p = predictions(cache.get(keys[("parent", v)]), "parent", view, labels)
        q = predictions(cache.get(keys[("pruned", v)]), "pruned", view, labels)
        results.append(gate.degradation("corruptions", "accuracy", p, q, threshold_key="max_drop"))
    subset = slice(0, min(1000, len(labels)))
    metrics.agreement(parent.probs[subset], pruned.probs[subset])
    metrics.softmax_distance(parent.probs[subset], pruned.probs[subset])
    return len(results)


def payload_seconds(cache: ArrayCache, keys: dict, labels: torch.Tensor) -> float:
    """Time of the uncertainty report payload alone (uncertainty.summary on both models' rows)."""
    parent = predictions(cache.get(keys[("parent", "nominal")]), "parent", NOMINAL, labels)
    pruned = predictions(cache.get(keys[("pruned", "nominal")]), "pruned", NOMINAL, labels)
    started = time.perf_counter()
    for p in (parent, pruned):
        uncertainty.summary(p, kind="msp", n_bins=15, steps=50)
    return time.perf_counter() - started


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
    settings = Settings(source="bench", run=RunSettings(), datasets={}, models={}, pairs=(), gates=GATE_DEFAULTS)
    gate = GateChecker(settings, SimpleNamespace(user_properties=[]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch threads: {torch.get_num_threads()}; {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"{args.views} corruption views; best of {args.repeat}")
    print(f"{'N':>8} {'C':>6} {'N*C':>12} {'gates':>6} {'warm s':>8} {'s per 1e8 N*C':>14} "
          f"{'of which uncertainty payload s':>31}")
    for c in args.classes:
        for n in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                cache = ArrayCache(Path(tmp))
                keys, labels = write_pair(cache, n, c, args.views)
                all_gates(cache, keys, labels, args.views, gate)  # page cache warm, as on a second run
                best = float("inf")
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    count = all_gates(cache, keys, labels, args.views, gate)
                    best = min(best, time.perf_counter() - started)
                payload = payload_seconds(cache, keys, labels)
            print(f"{n:>8} {c:>6} {n * c:>12.2e} {count:>6} {best:>8.2f} {best / (n * c) * 1e8:>14.2f} "
                  f"{payload:>31.2f}")


if __name__ == "__main__":
    main()
