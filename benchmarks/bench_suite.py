"""Cold vs warm time of the built-in demo suite (``pytest suites/``), as subprocesses.

Cold: a fresh cache directory holding only the demo zoo (copied from
``--zoo-from``, so zoo training, a one-off, is not timed): every prediction and
generated corruption is computed. Warm: the same command again: everything is read
from the cache. With ``--workers N`` the cold run uses ``-n N`` (pytest-xdist) and
the script checks that no (model, view) was predicted twice across workers.
Usage::

    python benchmarks/bench_suite.py [--limit 500] [--workers 2]
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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(cache: Path, reports: Path, record: Path, extra: list[str]) -> tuple[float, int, str]:
    cmd = [
        sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "-p", "prediction_recorder",
        "--prunecheck-cache-dir", str(cache), "--prunecheck-report-dir", str(reports), *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PRUNECHECK_RECORD_DIR": str(record)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    summary = [line for line in proc.stdout.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    return elapsed, proc.returncode, (summary[-1] if summary else proc.stdout[-2000:] + proc.stderr[-2000:])


def computed(record: Path) -> Counter:
    counts: Counter = Counter()
    for path in record.glob("computed-*.json"):
        counts.update(json.loads(path.read_text()))
    return counts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo-from", default=str(ROOT / ".prunecheck-cache" / "demo-zoo"))
    parser.add_argument("--limit", type=int, default=None, help="--prunecheck-limit for both runs")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (0: no xdist)")
    parser.add_argument("--backend", default=None, help="unused; the demo config decides")
    args = parser.parse_args(argv)
    zoo = Path(args.zoo_from)
    if not (zoo / "manifest.json").is_file():
        raise SystemExit(f"expected a built demo zoo at {zoo} (run `pytest suites/` once), found none")
    extra = ["--prunecheck-limit", str(args.limit)] if args.limit else []
    if args.workers:
        extra += ["-n", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        shutil.copytree(zoo, cache / "demo-zoo")
        results = {}
        for label in ("cold", "warm"):
            record = tmp / f"record-{label}"
            record.mkdir()
            elapsed, rc, summary = run_suite(cache, tmp / "reports", record, extra)
            counts = computed(record)
            results[label] = {"seconds": elapsed, "rc": rc, "summary": summary,
                              "computed": sum(counts.values()), "distinct": len(counts),
                              "workers": len(list(record.glob("computed-*.json")))}
    print(f"# demo suite, pytest suites/{' ' + ' '.join(extra) if extra else ''} (zoo copied in, not timed)")
    for label, r in results.items():
        print(f"{label:5s} {r['seconds']:7.1f} s  exit {r['rc']}  predictions computed {r['computed']} "
              f"(distinct {r['distinct']}, processes {r['workers']})  | {r['summary'].strip()}")
    cold, warm = results["cold"], results["warm"]
    print(f"cold/warm: {cold['seconds'] / warm['seconds']:.1f}x; repeated predictions across processes: "
          f"{cold['computed'] - cold['distinct']}")
    return results


if __name__ == "__main__":
    main()
