"""Cold and warm wall time of the built-in demo, ``pytest suites/``, as a newcomer runs it.

Cold: a fresh, empty cache directory: the shipped zoo is unpacked, every
prediction and generated corruption is computed. Warm: the same command again on
that cache. Both runs are subprocesses of this script, one after the other, so
their ratio is measured under the same machine load. Goals (SPEC 6, a quiet
2-core CPU): cold <= 90 s, warm <= 10 s.

Usage::

    python benchmarks/bench_demo.py [--suites suites] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"cold": 90.0, "warm": 10.0}


def run_suites(suites: str, cache: Path, reports: Path, extra: list[str]) -> tuple[float, int, str]:
    cmd = [sys.executable, "-m", "pytest", suites, "-q", "-p", "no:cacheprovider",
           "--prunecheck-cache-dir", str(cache), "--prunecheck-report-dir", str(reports), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    elapsed = time.perf_counter() - start
    outcome = re.findall(r"^=*\s*(\d+ (?:passed|failed|xfailed|error).*?) in [\d.]+s", proc.stdout, re.M)
    return elapsed, proc.returncode, outcome[-1] if outcome else (proc.stdout + proc.stderr)[-2000:]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="suites", help="suites folder. Default: %(default)r")
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        cache = Path(tmp) / "cache"  # does not exist yet: a truly cold start
        for label in ("cold", "warm"):
            results[label] = run_suites(args.suites, cache, Path(tmp) / "reports", args.extra)
    print(f"# pytest {args.suites} on the built-in demo, {os.cpu_count()} CPUs visible, "
          f"torch threads default")
    for label, (seconds, code, outcome) in results.items():
        goal = GOALS[label]
        print(f"{label:5s} {seconds:7.1f} s  (goal {goal:g} s: {seconds / goal:.2f}x)  exit {code}  | {outcome}")
    cold, warm = results["cold"][0], results["warm"][0]
    print(f"cold / warm = {cold / warm:.1f}x")
    return {label: {"seconds": r[0], "exit": r[1], "outcome": r[2]} for label, r in results.items()}


if __name__ == "__main__":
    main()
