"""``prunecheck demo build | check | margins``: the shipped demo zoo from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="demo_action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="retrain the demo zoo with the project's code and rewrite the shipped weights + manifest "
                      "(minutes on a CPU; progress on stderr)")
    build.add_argument("--out", metavar="DIR", default=None,
                       help="output folder. Default: the package's prunecheck/demo/data")
    actions.add_parser("check", help="exit 1 when the shipped zoo no longer matches the training config or the "
                                     "dataset generator (config fingerprint, data probe)")
    margins = actions.add_parser(
        "margins", help="run the demo suites with a paired bootstrap over the test images and print, for every "
                        "gate, estimate, threshold, standard error and distance in standard errors; "
                        "exit 1 when a gate is closer than 3 standard errors or a verdict differs from its declaration")
    margins.add_argument("--cache-dir", metavar="DIR", default=".prunecheck-cache", help="Default: %(default)r")
    margins.add_argument("--replicates", metavar="N", type=int, default=None,
                         help="bootstrap replicates per gate. Default: 100")
    margins.add_argument("-k", metavar="EXPR", default=None, help="only the suite tests pytest -k selects")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "check": _check, "margins": _margins}[args.demo_action](args)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    from prunecheck.demo.shipped import SHIPPED_DIR, build_shipped_zoo

    out = Path(args.out) if args.out else SHIPPED_DIR
    manifest = build_shipped_zoo(out, progress=_progress)
    for name, info in sorted(manifest["models"].items()):
        print(f"{name:16s} accuracy {info['accuracy']:.4f}  sparsity {info['sparsity']:.4f}")
    print(f"config fingerprint {manifest['config_fingerprint']}; built in {manifest['build_seconds']:.0f} s")
    return 0


def _check(args: argparse.Namespace) -> int:
    from prunecheck.demo.shipped import SHIPPED_DIR, shipped_manifest, stale_reasons

    reasons = stale_reasons(shipped_manifest())
    if reasons:
        for reason in reasons:
            print(f"demo zoo {SHIPPED_DIR}: stale: {reason}", file=sys.stderr)
        print("rebuild it with `prunecheck demo build`", file=sys.stderr)
        return 1
    print(f"demo zoo {SHIPPED_DIR}: up to date")
    return 0


def _margins(args: argparse.Namespace) -> int:
    from prunecheck.demo.margins import (
        DEFAULT_REPLICATES, MIN_STANDARD_ERRORS, format_line, format_table, measure_margins,
    )

    extra = ["-k", args.k] if args.k else []
    margins, outcomes, code = measure_margins(
        Path(args.cache_dir).resolve(), replicates=args.replicates or DEFAULT_REPLICATES, extra_args=extra,
        progress=lambda margin: print("margin: " + format_line(margin), file=sys.stderr, flush=True))
    print(format_table(margins))
    bad = [m for m in margins if not m.clear]
    for m in bad:
        print(f"TOO CLOSE: {m.label}: |{m.result.value:.4f} - {m.result.threshold:g}| = {abs(m.distance):.4f} "
              f"is {m.standard_errors:.1f} standard errors (SE {m.se:.4f}); need >= {MIN_STANDARD_ERRORS:g}")
    print(f"{len(margins)} gates, {len(margins) - len(bad)} clear, {len(bad)} too close; "
          f"demo suites exit code {code}")
    return 0 if not bad and code == 0 else 1
