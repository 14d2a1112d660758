"""prunecheck.strategies: valid values, the edge cases they promise, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis.errors import InvalidArgument

from prunecheck import metrics as M
from prunecheck.strategies import (
    label_arrays,
    member_stacks,
    probability_rows,
    probs_and_labels,
    prune_accuracy_curves,
)

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIND = settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(probability_rows(min_size=3, max_size=12, min_classes=2, max_classes=4))
def test_probability_rows_are_valid_and_bounded(p):
    assert p.dtype == np.float64
    assert 3 <= p.shape[0] <= 12 and 2 <= p.shape[1] <= 4
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    M.validate_probs(p)


@SETTINGS
@given(probability_rows(n_classes=5, dtype=np.float32, max_size=10))
def test_float32_rows(p):
    assert p.dtype == np.float32 and p.shape[1] == 5
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "condition",
    [
        lambda p: (p.max(axis=1) == 1.0).any(),  # exact 1.0 confidence
        lambda p: (p == 0.0).any(),  # exact zeros
        lambda p: any((row == row.max()).sum() >= 2 for row in p),  # ties between classes
        lambda p: any(0 < np.ptp(row) < 1e-5 for row in p),  # near-uniform but not uniform
        lambda p: len({float(v) for v in p.max(axis=1)}) < len(p),  # ties between samples
        lambda p: any(float(v) in (0.2, 0.4, 0.6, 0.8) for v in p.max(axis=1)),  # on a bin edge
    ],
    ids=["one", "zero", "class_tie", "near_uniform", "sample_tie", "bin_edge"],
)
def test_edge_cases_are_generated(condition):
    find(probability_rows(min_size=2, max_size=10), condition, settings=FIND)


@SETTINGS
@given(probs_and_labels(n_classes=3, max_size=15))
def test_probs_and_labels_match(data):
    p, y = data
    assert y.dtype == np.int64 and y.shape == (p.shape[0],)
    assert ((0 <= y) & (y < 3)).all()
    M.validate_probs(p, y)


def test_accuracy_range_is_covered():
    find(probs_and_labels(min_size=3), lambda d: M.accuracy(*d) == 0.0, settings=FIND)
    find(probs_and_labels(min_size=3), lambda d: M.accuracy(*d) == 1.0, settings=FIND)


@SETTINGS
@given(label_arrays(4, min_size=2, max_size=6))
def test_label_arrays(y):
    assert 2 <= len(y) <= 6 and y.min() >= 0 and y.max() < 4


@SETTINGS
@given(member_stacks(min_members=2, max_members=3, n_classes=4, max_size=8))
def test_member_stacks(mp):
    m, n, c = mp.shape
    assert 2 <= m <= 3 and 1 <= n <= 8 and c == 4
    M.validate_member_probs(mp)


@SETTINGS
@given(prune_accuracy_curves(min_size=2, max_size=6))
def test_prune_accuracy_curves(curve):
    r, e = curve
    assert r[0] == 0.0 and (np.diff(r) > 0).all() and r[-1] < 1.0
    assert 2 <= len(r) <= 6 and e.shape == r.shape
    assert ((0 <= e) & (e <= 1)).all() and curve.parent_error == e[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: probability_rows(min_size=5, max_size=2),
        lambda: probability_rows(min_size=-1),
        lambda: probability_rows(n_classes=0),
        lambda: probability_rows(min_classes=4, max_classes=3),
        lambda: probability_rows(dtype=np.int64),
        lambda: label_arrays(0),
        lambda: member_stacks(n_members=0),
        lambda: prune_accuracy_curves(min_size=0),
        lambda: prune_accuracy_curves(max_size=101),
    ],
)
def test_impossible_arguments_are_rejected(make):
    with pytest.raises(InvalidArgument):
        make()
