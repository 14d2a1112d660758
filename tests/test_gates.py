"""Gate decisions and messages, worked by hand."""

import math

import pytest

from prunecheck.gates.decide import decide, failed_closed


def make(value, threshold=0.005, **kw):
    return decide(name="accuracy_margin", metric="accuracy drop", value=value, threshold=threshold,
                  threshold_name="max_drop", **kw)


def test_point_mode_inclusive_threshold():
    assert make(0.005).passed
    assert not make(0.0051).passed


def test_failure_message_names_metric_values_threshold_and_direction():
    result = make(0.0132, parent=0.9210, pruned=0.9078)
    assert result.message == "accuracy drop 0.0132 > max_drop 0.005 (parent 0.9210, pruned 0.9078)"
    assert math.isclose(result.margin, 0.005 - 0.0132)


@pytest.mark.parametrize(
    "mode, ci, passed",
    [
        ("confident", (0.001, 0.004), True),   # whole interval within
        ("confident", (0.001, 0.006), False),  # upper bound outside
        ("lenient", (0.004, 0.009), True),     # lower bound within: not proven worse
        ("lenient", (0.006, 0.009), False),    # whole interval outside
    ],
)
def test_bootstrap_modes(mode, ci, passed):
    result = make(0.003, mode=mode, ci=ci)
    assert result.passed is passed
    assert mode in result.message and "95% CI" in result.message


def test_min_direction():
    ok = decide(name="f", metric="agreement", value=0.95, threshold=0.9, threshold_name="min_agreement", direction="min")
    bad = decide(name="f", metric="agreement", value=0.85, threshold=0.9, threshold_name="min_agreement", direction="min")
    assert ok.passed and not bad.passed
    assert "0.8500 < min_agreement 0.9" in bad.message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_fails_closed(value):
    result = make(value)
    assert not result.passed and "fails closed" in result.message


def test_mode_without_interval_fails_closed():
    result = make(0.0, mode="confident")
    assert not result.passed and "bootstrap" in result.reason


def test_failed_closed_helper():
    result = failed_closed(name="g", metric="ECE increase", reason="predictions contain NaN", threshold=0.02, threshold_name="max_ece_increase")
    assert not result.passed and result.message == "ECE increase: predictions contain NaN"
