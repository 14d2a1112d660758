"""Every demo verdict sits at least 3 bootstrap standard errors from its threshold.

The slow test runs the demo suites on the shipped zoo with
:class:`prunecheck.demo.margins.MarginProbe` (the command ``prunecheck demo
margins`` prints the same table) and names every gate that is too close. It
covers whatever gates the demo config declares: a new severity or a new gate
shows up in the table without changes here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from prunecheck.demo.expectations import KNOWN_FAILURES
from prunecheck.demo.margins import GateMargin, _Resampler, format_table, measure_margins, too_close
from prunecheck.gates.decide import decide

ROOT = Path(__file__).resolve().parents[1]


def _margin(value, threshold, replicates, direction="max", node="test_x[p]"):
    result = decide(name="g", metric="m", value=value, threshold=threshold, threshold_name="t", direction=direction)
    return GateMargin(node, result, list(replicates))


# --------------------------------------------------------------------------- the arithmetic

def test_standard_errors_by_hand():
    # replicates 0.00, 0.02: sample std = 0.01414; distance 0.005 - (-0.03) = 0.035 -> 2.47 SE
    m = _margin(-0.03, 0.005, [0.0, 0.02])
    assert m.se == pytest.approx(0.0141421, rel=1e-5)
    assert m.standard_errors == pytest.approx(0.035 / 0.0141421, rel=1e-5)
    assert not m.clear
    assert _margin(-0.05, 0.005, [0.0, 0.02]).clear  # 3.9 SE


def test_direction_does_not_change_the_distance_in_standard_errors():
    low = _margin(0.80, 0.9, [0.79, 0.81], direction="min")  # fails by 0.1
    assert not low.result.passed and low.standard_errors == pytest.approx(0.1 / np.std([0.79, 0.81], ddof=1))
    assert low.clear  # a clear failure is as stable as a clear pass


def test_zero_and_undefined_standard_errors():
    assert _margin(0.0, 0.5, [0.0, 0.0]).standard_errors == math.inf
    assert not _margin(0.5, 0.5, [0.5, 0.5]).clear  # exactly at the threshold is never clear
    nan = _margin(0.0, 0.5, [0.1, math.nan])  # a replicate that could not be computed
    assert math.isnan(nan.se) and not nan.clear
    assert "TOO CLOSE" in format_table([nan]) and "nan" in format_table([nan])


def test_moving_a_threshold_next_to_its_estimate_makes_the_gate_too_close():
    replicates = list(np.random.default_rng(0).normal(0.01, 0.004, 200))
    far = _margin(0.01, 0.05, replicates)
    assert far.clear
    near = _margin(0.01, 0.01 + 2 * far.se, replicates)
    assert not near.clear and too_close([far, near]) == [near]


def test_resampled_indices_are_shared_per_dataset_size_and_differ_between_replicates():
    r = _Resampler(seed=0)
    r.start(0)
    a, b, c = r.indices(2000), r.indices(2000), r.indices(1000)
    assert a is b and len(c) == 1000 and c.max() < 1000
    r.start(1)
    assert not np.array_equal(r.indices(2000), a)
    r.start(0)
    assert np.array_equal(r.indices(2000), a)  # seeded: the same replicate draws the same images


# --------------------------------------------------------------------------- the shipped demo

@pytest.fixture(scope="module")
def demo_margins():
    # The project's own cache: predictions are shared with `pytest suites/` runs (cache entries are atomic).
    return measure_margins(ROOT / ".prunecheck-cache")


@pytest.mark.slow
def test_every_demo_gate_is_at_least_3_standard_errors_from_its_threshold(demo_margins):
    margins, _, _ = demo_margins
    assert margins, "the demo suites recorded no gate"
    bad = too_close(margins)
    assert not bad, "demo gates too close to their thresholds (run `prunecheck demo margins`):\n" + "\n".join(
        f"  {m.label}: estimate {m.result.value:.4f}, threshold {m.result.threshold:g}, SE {m.se:.4f}, "
        f"{m.standard_errors:.1f} SE" for m in bad
    )


@pytest.mark.slow
def test_every_demo_verdict_is_the_declared_one(demo_margins):
    margins, outcomes, code = demo_margins
    nodes: dict[str, list[GateMargin]] = {}
    for m in margins:
        nodes.setdefault(m.node, []).append(m)
    wrong = [
        name for name, gates in nodes.items()
        if all(g.result.passed for g in gates) != (name not in KNOWN_FAILURES)
    ]
    assert not wrong, f"verdicts that differ from prunecheck/demo/expectations.py: {wrong}"
    assert set(KNOWN_FAILURES) <= set(nodes), f"declared but not run: {sorted(set(KNOWN_FAILURES) - set(nodes))}"
    assert code == 0, f"the demo suites did not pass: {[n for n, o in outcomes.items() if o == 'failed']}"


@pytest.mark.slow
def test_the_margins_cover_the_per_class_gate_of_every_pair(demo_margins):
    margins, outcomes, _ = demo_margins
    pairs = {node.split("[", 1)[1].rstrip("]") for node in outcomes if "::test_accuracy_margin[" in node}
    covered = {m.node for m in margins if m.result.name == "class_accuracy"}
    assert pairs and covered == {f"test_class_accuracy[{pair}]" for pair in pairs}
