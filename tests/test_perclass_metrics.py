"""Per-class accuracy, prediction votes and PIEs (prunecheck.metrics.perclass) against plain loops.

The references are naive Python loops over images, models and classes that share
no code with the library; hypothesis draws the probabilities (exact 0/1 and ties
included) and, for PIEs, populations built to tie often.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunecheck import metrics as M
from prunecheck.strategies import member_stacks, probs_and_labels

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def first_argmax(row):
    best = 0
    for c in range(1, len(row)):
        if row[c] > row[best]:
            best = c
    return best


def ref_per_class(p, y, num_classes):
    correct, counts = [0] * num_classes, [0] * num_classes
    for i in range(len(y)):
        counts[y[i]] += 1
        correct[y[i]] += int(first_argmax(p[i]) == y[i])
    acc = [correct[c] / counts[c] if counts[c] else math.nan for c in range(num_classes)]
    return correct, counts, acc


def ref_modal_sets(population):
    """For each image, the set of classes with the most votes (argmax of each model)."""
    n, c = len(population[0]), len(population[0][0])
    sets = []
    for i in range(n):
        votes = [0] * c
        for model in population:
            votes[first_argmax(model[i])] += 1
        top = max(votes)
        sets.append({k for k in range(c) if votes[k] == top})
    return sets


def ref_pie_count(unpruned, pruned):
    a, b = ref_modal_sets(unpruned), ref_modal_sets(pruned)
    return sum(1 for i in range(len(a)) if not (a[i] & b[i]))


# ---------------------------------------------------------------- per-class accuracy
@SETTINGS
@given(probs_and_labels(max_size=40))
def test_per_class_accuracy_matches_loop(data):
    p, y = data
    got = M.per_class_accuracy(p, y)
    correct, counts, acc = ref_per_class(p, y, p.shape[1])
    assert got.correct.tolist() == correct and got.counts.tolist() == counts
    np.testing.assert_allclose(got.accuracy, acc, equal_nan=True)
    # the counts weigh back to the overall accuracy
    assert got.correct.sum() / len(y) == pytest.approx(M.accuracy(p, y))


@SETTINGS
@given(st.data())
def test_class_accuracy_drop_matches_loop(data):
    parent, y = data.draw(probs_and_labels(max_size=40))
    pruned = data.draw(member_stacks(n_members=1, n_classes=parent.shape[1], min_size=len(y), max_size=len(y)))[0]
    got = M.class_accuracy_drop(parent, pruned, y)
    _, _, before = ref_per_class(parent, y, parent.shape[1])
    _, _, after = ref_per_class(pruned, y, parent.shape[1])
    np.testing.assert_allclose(got, np.array(before) - np.array(after), equal_nan=True)


def test_class_without_images_has_no_accuracy_not_a_bad_one():
    # Regression: a class absent from the labels must read NaN, not 0 (which would look like a collapse).
    r = M.per_class_accuracy([[0.2, 0.8, 0.0], [0.9, 0.1, 0.0]], [1, 0])
    assert r.counts.tolist() == [1, 1, 0] and math.isnan(r.accuracy[2])


def test_per_class_accuracy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        M.per_class_accuracy([[0.5, 0.5]], [2])


# ---------------------------------------------------------------- class bootstrap
def test_class_drop_intervals_hand_worked():
    # Class 1: parent right on 4 of 4, pruned right on 2 of 4 -> drop 0.5; class 0 unchanged.
    parent = np.array([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 4)
    pruned = np.array([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 2 + [[0.9, 0.1]] * 2)
    y = np.array([0] * 4 + [1] * 4)
    out = M.class_drop_intervals(parent, pruned, y, [0, 1], n_resamples=400, seed=3)
    assert (out[0].estimate, out[0].low, out[0].high) == (0.0, 0.0, 0.0)
    assert out[1].estimate == pytest.approx(0.5)
    assert 0.0 <= out[1].low < 0.5 < out[1].high <= 1.0
    with pytest.raises(ValueError, match="class 5"):
        M.class_drop_intervals(parent, pruned, y, [5])


# ---------------------------------------------------------------- votes, modal classes, PIEs
def populations(max_models=4):
    """Two populations on the same images whose rows are one-hot picks among few classes,
    so votes tie often; plus soft rows with exact ties from the library strategy."""

    @st.composite
    def build(draw):
        c = draw(st.integers(2, 4))
        n = draw(st.integers(1, 12))
        m0, m1 = draw(st.integers(1, max_models)), draw(st.integers(1, max_models))
        if draw(st.booleans()):
            def stack(m):
                picks = draw(st.lists(st.integers(0, c - 1), min_size=m * n, max_size=m * n))
                return np.eye(c, dtype=np.float32)[np.array(picks)].reshape(m, n, c)
            return stack(m0), stack(m1)
        return (draw(member_stacks(n_members=m0, n_classes=c, min_size=n, max_size=n)),
                draw(member_stacks(n_members=m1, n_classes=c, min_size=n, max_size=n)))

    return build()


@SETTINGS
@given(populations())
def test_votes_and_modal_classes_match_loop(pops):
    for population in pops:
        votes = M.prediction_votes(population)
        for i in range(population.shape[1]):
            expected = [0] * population.shape[2]
            for model in population:
                expected[first_argmax(model[i])] += 1
            assert votes[i].tolist() == expected
        modal = M.modal_classes(population)
        assert [set(np.flatnonzero(row).tolist()) for row in modal] == ref_modal_sets(population)


@SETTINGS
@given(populations())
def test_pie_count_matches_plain_recomputation(pops):
    unpruned, pruned = pops
    mask = M.pie_mask(unpruned, pruned)
    assert mask.shape == (unpruned.shape[1],)
    assert int(mask.sum()) == ref_pie_count(unpruned, pruned)
    # symmetric in the populations, and a population never differs from itself
    assert (M.pie_mask(pruned, unpruned) == mask).all()
    assert not M.pie_mask(unpruned, unpruned).any()


def test_pie_tie_rule_hand_worked():
    e = np.eye(3, dtype=np.float32)
    # image 0: unpruned votes {0: 1, 1: 1} (tie), pruned {1} -> they share class 1: not a PIE
    # image 1: unpruned {2, 2}, pruned {0, 1} (tie) -> no common class: a PIE
    # image 2: unpruned {0, 0}, pruned {0, 1} (tie) -> share 0: not a PIE
    unpruned = np.stack([np.stack([e[0], e[2], e[0]]), np.stack([e[1], e[2], e[0]])])
    pruned = np.stack([np.stack([e[1], e[0], e[0]]), np.stack([e[1], e[1], e[1]])])
    assert M.pie_mask(unpruned, pruned).tolist() == [False, True, False]


def test_pie_populations_must_cover_the_same_images():
    with pytest.raises(ValueError, match="pruned_member_probs"):
        M.pie_mask(np.full((1, 3, 2), 0.5), np.full((2, 4, 2), 0.5))


def test_class_histogram_matches_loop():
    y = [0, 2, 2, 1, 2]
    mask = [True, True, False, False, True]
    assert M.class_histogram(y, mask, 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="mask"):
        M.class_histogram(y, [[True]], 4)
