"""Thresholds mean what they say: a value exactly at its threshold passes, one image beyond fails.

Accuracy-type values are ratios of counts, so the reference here is integer arithmetic
on the counts (SPEC 4: inclusive, whatever the float rounding), for test sets of
N = 200, 1,000, 10,000 and 50,000 images, through the real gate path (predictions ->
metrics -> degradation -> mode -> GateResult).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings as hsettings, strategies as st

from prunecheck.config.options import AccuracyMarginOptions, CorruptionsOptions
from prunecheck.core.views import NOMINAL
from prunecheck.engine.predictor import Predictions
from prunecheck.gates import accuracy
from prunecheck.gates.decide import ROUNDING_TOLERANCE, decide, fmt
from prunecheck.metrics.pruning import PRUNE_POTENTIAL_EPS


def predictions(correct: int, n: int, model: str) -> Predictions:
    """Two-class predictions of a model that gets exactly the first ``correct`` of ``n`` images right."""
    labels = torch.zeros(n, dtype=torch.int64)
    probs = torch.full((n, 2), 0.0)
    probs[:correct, 0] = 0.8
    probs[:correct, 1] = 0.2
    probs[correct:, 0] = 0.3
    probs[correct:, 1] = 0.7
    return Predictions(model=model, dataset="d", view=NOMINAL, log_probs=probs.log()[None], labels=labels)


def suite_options(suite: str, max_drop: float):
    """The options of ``suite`` (both have ``max_drop``) with that threshold."""
    return {"accuracy_margin": AccuracyMarginOptions, "corruptions": CorruptionsOptions}[suite](max_drop=max_drop)


@pytest.mark.parametrize("n", [200, 1_000, 10_000, 50_000])
@pytest.mark.parametrize("max_drop", [0.005, 0.01, 0.02])
@pytest.mark.parametrize("suite", ["accuracy_margin", "corruptions"])
def test_a_drop_of_exactly_max_drop_passes_and_one_image_more_fails(n: int, max_drop: float, suite: str) -> None:
    allowed = round(max_drop * n)  # the drop in images that max_drop allows: 1 for N = 200 at 0.005
    assert allowed / n == max_drop
    options = suite_options(suite, max_drop)
    for parent_correct in (int(0.95 * n), int(0.921 * n), n):
        parent = predictions(parent_correct, n, "parent")
        for dropped, expected in ((allowed - 1, True), (allowed, True), (allowed + 1, False)):
            pruned = predictions(parent_correct - dropped, n, "pruned")
            result = accuracy.degradation("accuracy", parent, pruned, options, threshold_key="max_drop")
            assert result.passed is expected, (n, parent_correct, dropped, result.message)
            assert result.value == pytest.approx(dropped / n, abs=1e-15)


@pytest.mark.parametrize(("parent", "pruned"), [(0.95, 0.945), (0.921, 0.916), (0.7, 0.695)])
def test_the_issue_examples_pass_at_the_boundary(parent: float, pruned: float) -> None:
    assert parent - pruned > 0.005  # float rounding puts them just above the threshold
    result = decide(name="accuracy_margin", metric="accuracy drop", value=parent - pruned, threshold=0.005,
                    threshold_name="max_drop", parent=parent, pruned=pruned)
    assert result.passed and "0.0050 <= max_drop 0.005" in result.message


@hsettings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 1_000_000),
    data=st.data(),
    direction=st.sampled_from(["max", "min"]),
)
def test_count_ratios_decide_like_integer_comparisons(n: int, data, direction: str) -> None:
    """For every N up to 10^6 the float rule agrees with comparing counts exactly."""
    a = data.draw(st.integers(0, n), label="parent count")
    b = data.draw(st.integers(0, n), label="pruned count")
    m = data.draw(st.integers(0, n), label="threshold count")
    value = a / n - b / n  # as the gates compute it: difference of two accuracies
    result = decide(name="g", metric="m", value=value, threshold=m / n, threshold_name="t", direction=direction)
    assert result.passed is ((a - b <= m) if direction == "max" else (a - b >= m))


def test_every_gate_uses_one_rule_and_it_is_far_below_one_image() -> None:
    assert ROUNDING_TOLERANCE == PRUNE_POTENTIAL_EPS  # the prune-potential metric's own slack
    assert ROUNDING_TOLERANCE < 1e-6 / 50_000


@pytest.mark.parametrize(("value", "shown"), [(-0.0, "0.0000"), (-1e-17, "0.0000"), (-0.00004, "0.0000"),
                                              (-0.00005, "-0.0001"), (0.00005, "0.0001"), (-0.25, "-0.2500")])
def test_no_negative_zero(value: float, shown: str) -> None:
    assert fmt(value) == shown
    assert float(fmt(value)) == float(f"{value:.4f}")  # the same number, only the sign of zero dropped
