"""All performance figures in one run (docs/performance.md): engine, corruptions, suite.

Usage::

    python benchmarks/bench_all.py                  # this CPU, under 5 minutes
    python benchmarks/bench_all.py --device cuda --skip-suite
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_corruptions  # noqa: E402
import bench_engine  # noqa: E402
import bench_suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--suite-limit", type=int, default=500, help="--prunecheck-limit of the suite runs")
    args = parser.parse_args()
    start = time.perf_counter()
    bench_engine.main(["--device", args.device])
    print()
    bench_corruptions.main(["--device", args.device])
    if not args.skip_suite:
        print()
        bench_suite.main(["--limit", str(args.suite_limit)] if args.suite_limit else [])
    print(f"\n# total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
