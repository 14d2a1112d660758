"""Sharded prediction on the demo: N shards fill one cache, then the gate run predicts nothing.

Steps (each a subprocess, timed; shards run one after the other here, on a CI matrix
they run at the same time on separate machines, so the wall time there is the slowest
shard's):

1. ``prunecheck predict --shard 1/1`` into cache A: the whole prediction work on one machine;
2. ``prunecheck predict --shard i/N`` for i = 1..N into cache B;
3. ``pytest suites/`` on cache B with ``benchmarks/prediction_recorder.py``: predictions
   computed (must be 0) and time; then the same on cache A; the gate results of both
   reports must be identical.

The demo zoo and generated corruption views are copied from ``--from-cache`` (a cache
folder that already holds them, e.g. after one demo run), so only predictions are timed.

Usage:
    python benchmarks/bench_shards.py --from-cache .prunecheck-cache [--shards 2] [--limit 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: some gate failed, a normal outcome
        sys.exit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def gates_of(report: Path) -> list:
    data = json.loads(report.read_text())
    return sorted((g["name"], g["subject"], g["view"], g["value"], g["passed"]) for g in data["gates"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-cache", type=Path, required=True, help="cache folder holding demo-zoo/ (and corruptions/)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--limit", type=int, default=500, help="--prunecheck-limit of every run")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="--prunecheck-batch-size of every run (each view needs >= N batches to split evenly)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prunecheck-bench-shards-"))
    try:
        shutil.copytree(ROOT / "suites", work / "suites")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"),
                                                             os.environ.get("PYTHONPATH", "")])}
        caches = {}
        for name in ("one", "sharded"):
            caches[name] = work / f"cache-{name}"
            for part in ("demo-zoo", "corruptions"):
                if (args.from_cache / part).exists():
                    shutil.copytree(args.from_cache / part, caches[name] / part)
        sizing = ["--prunecheck-limit", str(args.limit)]
        if args.batch_size:
            sizing += ["--prunecheck-batch-size", str(args.batch_size)]
        common = ["--", *sizing]
        predict = [sys.executable, "-m", "prunecheck.cli", "predict"]
        whole = run([*predict, "--shard", "1/1", "--cache-dir", str(caches["one"]), *common], work, env)
        shards = [
            run([*predict, "--shard", f"{i}/{args.shards}", "--cache-dir", str(caches["sharded"]), *common], work, env)
            for i in range(1, args.shards + 1)
        ]
        results = {}
        for name in ("sharded", "one"):
            record = work / f"record-{name}"
            record.mkdir()
            seconds = run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                           "-p", "prediction_recorder", "--prunecheck-cache-dir", str(caches[name]),
                           "--prunecheck-report-dir", str(work / f"reports-{name}"),
                           *sizing],
                          work, {**env, "PRUNECHECK_RECORD_DIR": str(record)})
            computed = sum(len(json.loads(p.read_text())) for p in record.glob("computed-*.json"))
            results[name] = (seconds, computed, gates_of(work / f"reports-{name}" / "prunecheck.json"))
        print(f"demo, --prunecheck-limit {args.limit}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"predict --shard 1/1 (one machine):          {whole:7.1f} s")
        for i, seconds in enumerate(shards, 1):
            print(f"predict --shard {i}/{args.shards}:                      {seconds:7.1f} s")
        print(f"matrix wall time (slowest shard):           {max(shards):7.1f} s  "
              f"({whole / max(shards):.2f}x faster than one machine)")
        for name in ("sharded", "one"):
            seconds, computed, gates = results[name]
            print(f"pytest suites/ on the {name:>7} cache:          {seconds:7.1f} s, "
                  f"{computed} predictions computed, {len(gates)} gates")
        same = results["sharded"][2] == results["one"][2]
        print(f"gate results identical: {same}")
        if not same or results["sharded"][1] != 0:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
