"""Compact prediction entries: every gate reads the same numbers from summaries as from float32 rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunecheck import metrics
from prunecheck.core.views import corruption
from prunecheck.engine import compact
from prunecheck.engine.predictions import PredictionSummary, Predictions, RowsNotStoredError
from prunecheck.gates import accuracy
from prunecheck.gates.decide import decide
from prunecheck.strategies import probability_rows, probs_and_labels

VIEW = corruption("gaussian_noise", 3)
# brier is Σp² - 2 p[y] + 1 from the summary, Σ (p - onehot)² from rows: float64 rounding apart.
TOLERANCE = {"brier": 1e-12}


def with_rows(probs: np.ndarray, labels: np.ndarray, model: str = "m") -> Predictions:
    """Predictions as the engine builds them: float32 log-probabilities [1, N, C]."""
    p = torch.as_tensor(probs, dtype=torch.float32)
    return Predictions(
        model=model, dataset="d", view=VIEW, log_probs=torch.log(p)[None],
        labels=torch.as_tensor(labels, dtype=torch.int64),
    )


def as_compact(rows: Predictions) -> Predictions:
    """The same predictions as a compact entry stores them (summaries of exp(log_probs))."""
    return Predictions(
        model=rows.model, dataset=rows.dataset, view=rows.view, log_probs=None, labels=rows.labels,
        compact=PredictionSummary.from_probs(rows.probs, rows.labels),
    )


def naive_summary(probs: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """Plain Python loop over rows: the independent reference of the stored summaries."""
    out = {"predicted": [], "confidence": [], "label_prob": [], "entropy": [], "sum_sq": []}
    for row, label in zip(probs.tolist(), labels.tolist()):
        best = 0
        for c, value in enumerate(row):
            if value > row[best]:
                best = c
        out["predicted"].append(best)
        out["confidence"].append(row[best])
        out["label_prob"].append(row[label])
        out["entropy"].append(-sum(v * math.log(v) for v in row if v > 0))
        out["sum_sq"].append(sum(v * v for v in row))
    return out


@st.composite
def pairs(draw, max_size=60):
    """(parent, pruned) rows-predictions of the same samples, probabilities with exact 0/1 and ties."""
    parent_probs, labels = draw(probs_and_labels(max_size=max_size, dtype=np.float32))
    pruned_probs = draw(
        probability_rows(n_classes=parent_probs.shape[1], min_size=len(labels), max_size=len(labels), dtype=np.float32)
    )
    return with_rows(parent_probs, labels, "parent"), with_rows(pruned_probs, labels, "pruned")


@settings(max_examples=60, deadline=None)
@given(probs_and_labels(max_size=40, dtype=np.float32))
def test_summaries_match_a_naive_loop(data):
    probs, labels = data
    rows = with_rows(probs, labels)
    p = rows.probs.double().numpy()  # what every metric of the rows reads
    reference = naive_summary(p, labels)
    summary = rows.summary
    np.testing.assert_array_equal(summary.predicted, reference["predicted"])
    np.testing.assert_array_equal(summary.confidence, np.float32(reference["confidence"]))
    np.testing.assert_array_equal(summary.label_prob, np.float32(reference["label_prob"]))
    np.testing.assert_allclose(summary.entropy, reference["entropy"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(summary.sum_sq, reference["sum_sq"], rtol=1e-12, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(probs_and_labels(max_size=60, dtype=np.float32), st.sampled_from([1, 7, 15]), st.sampled_from([2, 10, 50]))
def test_every_summary_metric_equals_the_metric_of_the_rows(data, n_bins, steps):
    probs, labels = data
    rows = with_rows(probs, labels)
    small = as_compact(rows)
    assert not small.has_rows
    for metric in compact.SUMMARY_METRICS:
        kwargs = {"ece": {"n_bins": n_bins}, "ause": {"steps": steps}}.get(metric, {})
        info = metrics.METRICS[metric]
        args = (rows.probs, rows.labels) if info.inputs == "probs_labels" else (rows.probs,)
        expected = info.fn(*args, **kwargs)
        for candidate in (small, rows):  # compact entry; rows entry (scored from its summaries)
            got = compact.score(candidate, metric, **kwargs)
            assert got == pytest.approx(expected, abs=TOLERANCE.get(metric, 1e-15), rel=0), metric
    assert compact.score(small, "accuracy") == metrics.accuracy(rows.probs, rows.labels)  # exact


@settings(max_examples=40, deadline=None)
@given(pairs(), st.sampled_from(["accuracy", "ece", "nll", "brier", "ause", "predictive_entropy"]))
def test_paired_bootstrap_from_summaries_equals_the_rows_version(pair, metric):
    parent, pruned = pair
    labels = parent.labels if metrics.METRICS[metric].inputs == "probs_labels" else None
    expected = metrics.paired_bootstrap(metric, parent.probs, pruned.probs, labels, n_resamples=64, seed=3,
                                        as_degradation=True)
    tolerance = TOLERANCE.get(metric, 1e-12)
    for candidate in ((as_compact(parent), as_compact(pruned)), (parent, pruned)):
        got = compact.paired_bootstrap(metric, *candidate, n_resamples=64, seed=3, as_degradation=True)
        for field in ("estimate", "low", "high"):
            assert getattr(got, field) == pytest.approx(getattr(expected, field), abs=tolerance, rel=0), field


def rows_gate(metric: str, parent: Predictions, pruned: Predictions, mode: str) -> dict:
    """The gate as computed before summaries existed: metrics on float32 rows, then decide()."""
    fn = metrics.METRICS[metric].fn
    parent_value, pruned_value = fn(parent.probs, parent.labels), fn(pruned.probs, pruned.labels)
    ci = None
    if mode != "point":
        boot = metrics.paired_bootstrap(metric, parent.probs, pruned.probs, parent.labels, n_resamples=100,
                                        seed=0, as_degradation=True)
        ci = (boot.low, boot.high)
    return decide(
        name="g", metric=f"{metric} {'drop' if metrics.METRICS[metric].higher_is_better else 'increase'}",
        value=metrics.degradation(metric, parent_value, pruned_value), threshold=0.02,
        threshold_name="max_increase", direction="max", mode=mode, ci=ci, parent=parent_value,
        pruned=pruned_value, subject="", view=VIEW.id,
    ).to_dict()


@settings(max_examples=40, deadline=None)
@given(pairs(), st.sampled_from(["accuracy", "ece", "nll", "brier", "ause"]),
       st.sampled_from(["point", "confident", "lenient"]))
def test_gate_gives_the_same_verdict_and_numbers(pair, metric, mode):
    parent, pruned = pair
    options = {"max_increase": 0.02, "mode": mode}
    full = rows_gate(metric, parent, pruned, mode)
    for candidate in ((as_compact(parent), as_compact(pruned)), (parent, pruned)):  # compact entry; rows entry
        small = accuracy.degradation(metric, *candidate, options, gate="g", threshold_key="max_increase",
                                     n_resamples=100).to_dict()
        check_same_gate(small, full, metric)


def check_same_gate(small: dict, full: dict, metric: str) -> None:
    assert small["passed"] == full["passed"]
    tolerance = TOLERANCE.get(metric, 1e-12)
    for field in ("value", "parent", "pruned"):
        assert small[field] == pytest.approx(full[field], abs=tolerance, rel=0, nan_ok=True), field
    if full["ci"] is not None:
        assert small["ci"] == pytest.approx(full["ci"], abs=tolerance, rel=0)


def test_rows_only_metrics_say_what_is_stored():
    rows = with_rows(np.array([[0.7, 0.3], [0.4, 0.6]]), np.array([0, 0]))
    small = as_compact(rows)
    with pytest.raises(RowsNotStoredError, match=r"per-sample summaries.*rows=True"):
        small.probs
    with pytest.raises(RowsNotStoredError, match="agreement"):
        compact._prepare("agreement", {})
    assert compact.score(small, "accuracy") == 0.5


def test_nan_predictions_fail_instead_of_scoring():
    rows = with_rows(np.array([[0.7, 0.3], [np.nan, 0.6]]), np.array([0, 0]))
    with pytest.raises(ValueError, match="finite"):
        compact.score(as_compact(rows), "accuracy")
    with pytest.raises(ValueError, match="NaN|finite"):
        compact.score(rows, "accuracy")  # the rows are validated once, as every metric does
