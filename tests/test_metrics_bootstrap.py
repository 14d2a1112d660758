"""paired_bootstrap: vectorised kernels vs a plain loop over the same resampled indices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunecheck import metrics as M
from prunecheck.strategies import member_stacks

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Plain references, written independently of the library.
def ref_accuracy(p, y):
    return float(np.mean([np.argmax(p[i]) == y[i] for i in range(len(y))]))


def ref_nll(p, y):
    return float(np.mean([-math.log(max(p[i][y[i]], 1e-12)) for i in range(len(y))]))


def ref_ece(p, y, n_bins=15):
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    total = 0.0
    for b in range(n_bins):
        hi_ok = conf < (b + 1) / n_bins if b < n_bins - 1 else conf <= 1.0 + 1e-9
        m = (conf >= b / n_bins) & hi_ok
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return total


def ref_ause(p, y, steps=50):
    correct = p.argmax(axis=1) == y
    gaps = []
    for k in range(steps):
        errs = []
        for u in (1 - p.max(axis=1), 1 - p[np.arange(len(y)), y]):
            keep = u <= np.quantile(u, 1 - k / steps)
            errs.append(1 - correct[keep].mean())
        gaps.append(errs[0] - errs[1])
    return sum((gaps[k] + gaps[k + 1]) / 2 / steps for k in range(steps - 1))


def ref_interval(ref, parent, pruned, labels, n_resamples, seed, confidence=0.95):
    idx = M.bootstrap_indices(len(labels), n_resamples=n_resamples, seed=seed)
    diffs = [ref(pruned[r], labels[r]) - ref(parent[r], labels[r]) for r in idx]
    estimate = ref(pruned, labels) - ref(parent, labels)
    a = (1 - confidence) / 2
    low, high = np.percentile(diffs, [100 * a, 100 * (1 - a)])
    return estimate, min(low, estimate), max(high, estimate)


@st.composite
def model_pairs(draw, max_size=40):
    stack = draw(member_stacks(n_members=2, min_size=2, max_size=max_size))
    labels = np.asarray(draw(st.lists(st.integers(0, stack.shape[2] - 1), min_size=stack.shape[1], max_size=stack.shape[1])))
    return stack[0], stack[1], labels


@SETTINGS
@given(model_pairs(), st.sampled_from(["accuracy", "nll", "ece", "ause"]))
def test_fast_kernels_match_reference_loop(pair, name):
    parent, pruned, y = pair
    ref = {"accuracy": ref_accuracy, "nll": ref_nll, "ece": ref_ece, "ause": ref_ause}[name]
    result = M.paired_bootstrap(name, parent, pruned, y, n_resamples=40, seed=3)
    estimate, low, high = ref_interval(ref, parent, pruned, y, 40, 3)
    assert result.estimate == pytest.approx(estimate, abs=1e-9)
    assert result.low == pytest.approx(low, abs=1e-9)
    assert result.high == pytest.approx(high, abs=1e-9)
    assert result.low <= result.estimate <= result.high
    assert result.n_resamples == 40


@SETTINGS
@given(model_pairs())
def test_callable_metric_uses_the_same_indices(pair):
    parent, pruned, y = pair
    by_name = M.paired_bootstrap("ece", parent, pruned, y, n_resamples=30, seed=5)
    by_callable = M.paired_bootstrap(ref_ece, parent, pruned, y, n_resamples=30, seed=5)
    assert by_callable.low == pytest.approx(by_name.low, abs=1e-9)
    assert by_callable.high == pytest.approx(by_name.high, abs=1e-9)


@SETTINGS
@given(model_pairs())
def test_identical_models_give_zero_width_interval(pair):
    parent, _, y = pair
    for name in ("accuracy", "brier", "ece", "ause"):
        r = M.paired_bootstrap(name, parent, parent.copy(), y, n_resamples=25)
        assert (r.estimate, r.low, r.high) == (0.0, 0.0, 0.0)


def _random_pair(n=500, c=10, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 3
    parent = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    noisy = logits + rng.normal(size=(n, c))
    pruned = np.exp(noisy) / np.exp(noisy).sum(1, keepdims=True)
    labels = np.where(rng.random(n) < 0.7, parent.argmax(1), rng.integers(0, c, n))
    return parent, pruned, labels


def test_seeded_determinism_and_seed_sensitivity():
    parent, pruned, y = _random_pair()
    a = M.paired_bootstrap("nll", parent, pruned, y, seed=7)
    b = M.paired_bootstrap("nll", parent, pruned, y, seed=7)
    c = M.paired_bootstrap("nll", parent, pruned, y, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == c.estimate


def test_torch_inputs_match_numpy_and_degradation_sign():
    parent, pruned, y = _random_pair()
    np_result = M.paired_bootstrap("accuracy", parent, pruned, y, n_resamples=200)
    torch_result = M.paired_bootstrap(
        "accuracy", torch.from_numpy(parent), torch.from_numpy(pruned), torch.from_numpy(y), n_resamples=200
    )
    assert torch_result == np_result
    assert np_result.estimate == pytest.approx(M.accuracy(pruned, y) - M.accuracy(parent, y))
    deg = M.paired_bootstrap("accuracy", parent, pruned, y, n_resamples=200, as_degradation=True)
    # accuracy: higher is better, so the degradation is parent - pruned (flipped interval)
    assert (deg.estimate, deg.low, deg.high) == pytest.approx((-np_result.estimate, -np_result.high, -np_result.low))
    ece_deg = M.paired_bootstrap("ece", parent, pruned, y, n_resamples=50, as_degradation=True)
    assert ece_deg.estimate == pytest.approx(M.degradation("ece", M.ece(parent, y), M.ece(pruned, y)))


def test_label_free_metric_and_interval_width_shrinks_with_confidence():
    parent, pruned, _ = _random_pair()
    wide = M.paired_bootstrap("predictive_entropy", parent, pruned, n_resamples=300, confidence=0.99)
    narrow = M.paired_bootstrap("predictive_entropy", parent, pruned, n_resamples=300, confidence=0.5)
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    assert wide.estimate == pytest.approx(M.predictive_entropy(pruned) - M.predictive_entropy(parent))


def test_bootstrap_errors():
    parent, pruned, y = _random_pair(n=20)
    with pytest.raises(ValueError, match="needs labels"):
        M.paired_bootstrap("accuracy", parent, pruned)
    with pytest.raises(ValueError, match="expected one of"):
        M.paired_bootstrap("acc", parent, pruned, y)
    with pytest.raises(ValueError, match="inputs 'pair'"):
        M.paired_bootstrap("agreement", parent, pruned, y)
    with pytest.raises(ValueError, match="expected the shape of parent_probs"):
        M.paired_bootstrap("accuracy", parent, pruned[:10], y)
    with pytest.raises(ValueError, match="n_resamples"):
        M.paired_bootstrap("accuracy", parent, pruned, y, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        M.paired_bootstrap("accuracy", parent, pruned, y, confidence=95)
    with pytest.raises(ValueError, match="higher_is_better"):
        M.paired_bootstrap(ref_accuracy, parent, pruned, y, as_degradation=True)


def test_bootstrap_indices_shape_and_chunking_is_invisible():
    idx = M.bootstrap_indices(7, n_resamples=11, seed=1)
    assert idx.shape == (11, 7) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < 7
    np.testing.assert_array_equal(idx, M.bootstrap_indices(7, n_resamples=11, seed=1))


def test_resampled_counts_match_a_loop_over_the_paired_indices():
    from prunecheck.metrics.bootstrap import bootstrap_indices, resampled_counts

    rng = np.random.default_rng(1)
    hits = rng.random((4, 37)) < 0.6
    got = resampled_counts(hits, n_resamples=50, seed=9)
    expected = [[int(hits[s, idx].sum()) for s in range(4)] for idx in bootstrap_indices(37, n_resamples=50, seed=9)]
    assert got.tolist() == expected
