"""``prunecheck predict --shard I/N``: fill the (shared) prediction cache with one part of the work.

The suites already know which (model, view) predictions they need, so the command
runs them in-process under pytest with the workspace's engine in shard mode
(:class:`~prunecheck.engine.predictor.PredictionEngine`, ``shard=(I-1, N)``): every
prediction the suites ask for is computed for the I-th of N runs of whole batches
only and stored as a part; the shard that completes an entry's parts assembles it.
Gate outcomes of this run are meaningless (unfinished entries are placeholders)
and are not reported; setup and collection errors are. Parts are runs of whole
batches: a view of fewer than N batches leaves some shards without work.

Once all N shards are done, ``pytest suites/`` on any machine with the same
configuration and cache reads every prediction from the cache.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1 <= I <= N) -> (I - 1, N), the engine's 0-based shard."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N (e.g. 2/4), found {text!r}")
    return i - 1, n


class ShardPlugin:
    """Puts the session's workspace engine in shard mode and collects errors that are not gates."""

    def __init__(self, shard: tuple[int, int]):
        self.shard = shard
        self.engine = None
        self.errors: list[str] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        outcome = yield
        if fixturedef.argname == "prunecheck_workspace" and outcome.excinfo is None:
            self.engine = outcome.get_result().engine
            self.engine.shard = self.shard

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.errors.append(f"collecting {report.nodeid or 'suites'}: {report.longreprtext.strip()}")

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "setup" and report.failed:  # a model or dataset that does not load
            self.errors.append(f"{report.nodeid}: {report.longreprtext.strip().splitlines()[-1]}")


def run_predict(args: argparse.Namespace) -> int:
    """Compute shard I of N of every prediction the configured suites need, into the cache."""
    index, count = args.shard
    report_dir = Path(tempfile.mkdtemp(prefix="prunecheck-predict-"))
    pytest_args = [str(args.suites), "-p", "no:cacheprovider", "-p", "no:terminal",
                   "--prunecheck-report-dir", str(report_dir)]
    if args.config:
        pytest_args += ["--prunecheck-config", args.config]
    if args.cache_dir:
        pytest_args += ["--prunecheck-cache-dir", args.cache_dir]
    extra = list(args.pytest_args or [])
    pytest_args += extra[1:] if extra[:1] == ["--"] else extra
    plugin = ShardPlugin((index, count))
    started = time.perf_counter()
    try:
        code = pytest.main(pytest_args, plugins=[plugin])
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)
    for error in plugin.errors:
        print(f"prunecheck predict: error: {error}", file=sys.stderr)
    if plugin.errors or code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        if not plugin.errors:
            print(f"prunecheck predict: error: pytest {' '.join(pytest_args)} exited with {code!r}", file=sys.stderr)
        return 1
    engine = plugin.engine
    if engine is None:
        print("prunecheck predict: no suite asked for predictions (nothing to do)")
        return 0
    print(
        f"prunecheck predict: shard {index + 1}/{count}: {len(engine.computed)} parts computed, "
        f"{engine.forward_passes} forward passes, {engine.cache.stats.writes} cache writes "
        f"({engine.cache.location}), {time.perf_counter() - started:.1f} s"
    )
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", metavar="I/N", type=parse_shard, default=(0, 1),
                        help="compute the I-th of N disjoint parts (1 <= I <= N). Default: '1/1' (everything)")
    parser.add_argument("--suites", metavar="DIR", default="suites", help="the gate suites. Default: %(default)r")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help="config file (default: discovered as pytest does)")
    parser.add_argument("--cache-dir", metavar="DIR|URL", default=None,
                        help="cache folder or shared prediction cache URL (overrides [run] cache_dir)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="after '--': more pytest arguments (e.g. -k to select suites)")
