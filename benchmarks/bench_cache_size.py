"""Prediction cache size for the ImageNet-C workload, from the format and measured.

Workload (seed 002 on ImageNet): 50,000 validation images x 1,000 classes, 76 views
(nominal + 15 corruptions x 5 severities) and a family of 6 models = 456 entries.
Nominal predictions keep float32 rows (uncertainty gates, OOD, similarity read them);
the 75 corruption views feed accuracy-type gates only and are stored as per-sample
summaries (prunecheck.engine.predictions).

The script writes one real 50,000 x 1,000 entry of each kind through the engine
(a linear 1,000-class head on 8x8 images, so the forward pass is cheap), measures the
files, and prints the workload both from the format and from the measured files.

Usage:
    python benchmarks/bench_cache_size.py [--n 50000] [--classes 1000] [--views 76] [--models 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from prunecheck.core.views import NOMINAL
from prunecheck.data.base import TensorDataset
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictions import SUMMARY_BYTES_PER_SAMPLE
from prunecheck.engine.predictor import PredictionEngine
from prunecheck.nn.models import model_from_module

GB = 1e9


def entry_size(cache: ArrayCache) -> int:
    return sum(p.stat().st_size for p in cache.root.rglob("*.npz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--views", type=int, default=76, help="nominal + corruption views")
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--mc-passes", type=int, default=5, help="extra line: MC dropout on nominal")
    args = parser.parse_args()
    n, c = args.n, args.classes
    torch.manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, c, (n,))
    data = TensorDataset("synthetic", images, labels, c, (0.5,) * 3, (0.25,) * 3)
    model = model_from_module("head", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, c)))

    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, rows in (("rows", True), ("summaries", False)):
            engine = PredictionEngine(ArrayCache(Path(tmp) / kind), device="cpu", batch_size=1000)
            started = time.perf_counter()
            engine.predict(model, data, NOMINAL, rows=rows)
            written = time.perf_counter() - started
            reader = PredictionEngine(ArrayCache(Path(tmp) / kind), device="cpu", batch_size=1000)
            started = time.perf_counter()
            got = reader.predict(model, data, NOMINAL, rows=rows)
            read = time.perf_counter() - started
            assert reader.forward_passes == 0 and got.has_rows == rows
            measured[kind] = entry_size(engine.cache)
            print(f"{kind:>9} entry {n} x {c}: {measured[kind] / 1e6:9.2f} MB on disk "
                  f"(predict+write {written:.2f} s, warm read {read:.2f} s)")

    entries = args.views * args.models
    rows_entries = args.models  # nominal
    summary_entries = entries - rows_entries
    format_rows = n * c * 4
    format_summary = n * SUMMARY_BYTES_PER_SAMPLE
    print(f"\nworkload: {args.views} views x {args.models} models = {entries} entries of {n} x {c}")
    print(f"  before (float32 rows everywhere), format: {entries * format_rows / GB:7.2f} GB")
    print(f"  now, format ({rows_entries} nominal rows entries x {format_rows / 1e6:.0f} MB + "
          f"{summary_entries} summary entries x {format_summary / 1e6:.2f} MB): "
          f"{(rows_entries * format_rows + summary_entries * format_summary) / GB:7.2f} GB")
    total = rows_entries * measured["rows"] + summary_entries * measured["summaries"]
    print(f"  now, measured entry sizes:                {total / GB:7.2f} GB  (goal <= 10 GB)")
    mc = args.models * args.mc_passes * measured["rows"]
    print(f"  + MC dropout x{args.mc_passes} on nominal (models with dropout), measured: "
          f"{(total + mc) / GB:7.2f} GB")
    print(f"  reduction vs before: {entries * format_rows / total:.1f}x")


if __name__ == "__main__":
    main()
