"""`prunecheck predict --shard I/N`: two shard processes fill one cache; the gate run then predicts nothing."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import pytest

from prunecheck.sharding import parse_shard
from tests.test_corruption_suite import SUITE, write_project

pytest_plugins = ["pytester"]


class ForwardCounter:
    """Captures the session's workspace engine so the test can read its forward-pass count."""

    def __init__(self):
        self.engine = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        outcome = yield
        if fixturedef.argname == "prunecheck_workspace" and outcome.excinfo is None:
            self.engine = outcome.get_result().engine


def gate_run(pytester) -> tuple[ForwardCounter, list[dict]]:
    counter = ForwardCounter()
    pytester.inline_run("suites", "-p", "no:cacheprovider", plugins=[counter])
    report = json.loads((pytester.path / "reports" / "prunecheck.json").read_text())
    gates = sorted(
        ((g["name"], g["subject"], g["view"], g["value"], g["passed"]) for g in report["gates"]), key=repr
    )
    return counter, gates


def test_parse_shard_is_one_based_and_says_what_is_wrong():
    assert parse_shard("1/2") == (0, 2) and parse_shard("4/4") == (3, 4)
    for bad in ("0/2", "3/2", "2", "a/b", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"expected I/N with 1 <= I <= N"):
            parse_shard(bad)


def test_two_shard_processes_leave_a_cache_the_gates_read_without_a_forward_pass(pytester):
    root = write_project(pytester, corruptions=("gaussian_noise",), noise_levels=(0.1,))
    (root / "suites" / "test_accuracy_margin.py").write_text((SUITE.parent / "test_accuracy_margin.py").read_text())
    shards = [
        subprocess.Popen([sys.executable, "-m", "prunecheck.cli", "predict", "--shard", f"{i}/2"], cwd=root,
                         env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (1, 2)
    ]
    for shard in shards:
        out, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err[-3000:]
        assert "forward passes" in out
    sharded, sharded_gates = gate_run(pytester)
    assert sharded.engine is not None and sharded.engine.forward_passes == 0
    assert sharded.engine.computed == []
    # The same suites on an empty prediction cache compute everything, with identical numbers.
    shutil.rmtree(root / ".prunecheck-cache" / "predictions")
    unsharded, unsharded_gates = gate_run(pytester)
    assert unsharded.engine.forward_passes > 0
    assert sharded_gates == unsharded_gates
    assert {g[2] for g in sharded_gates} >= {"nominal", "gaussian_noise-3", "noise0.1-r0"}
