"""Hypothesis strategies for metric inputs, public so users can property-test their own metrics.

Random floats almost never hit the cases that break calibration and ranking
code: exact 0.0 / 1.0 confidences, ties between classes, ties between samples,
near-uniform rows. These strategies generate them on purpose, mixed with
generic rows. Every array is a numpy array (wrap with ``torch.from_numpy``).

Example::

    from hypothesis import given
    from prunecheck.strategies import probs_and_labels

    @given(probs_and_labels(max_size=20))
    def test_my_metric_is_a_fraction(data):
        probs, labels = data
        assert 0.0 <= my_metric(probs, labels) <= 1.0
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

__all__ = [
    "label_arrays",
    "member_stacks",
    "probability_rows",
    "probs_and_labels",
    "prune_accuracy_curves",
]

#: Kinds of rows ``probability_rows`` mixes.
ROW_KINDS = (
    "one_hot", "uniform", "top_tie", "near_uniform", "round_confidence", "integer_weights", "float_weights", "peaked",
)

#: Confidences that sit exactly on common bin edges (k / 2, k / 5, k / 10, k / 15, k / 20).
ROUND_CONFIDENCES = (0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1 / 3, 2 / 3, 14 / 15)


def _check_int(value: Any, name: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidArgument(f"{name}: expected an integer >= {low}, found {value!r}")


def _check_sizes(min_size: int, max_size: int, *, low: int = 0, what: str = "size") -> None:
    _check_int(min_size, f"min_{what}", low=low)
    _check_int(max_size, f"max_{what}", low=low)
    if min_size > max_size:
        raise InvalidArgument(f"min_{what}={min_size} must be <= max_{what}={max_size}")


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InvalidArgument(f"dtype: expected float32 or float64, found {dt}")
    return dt


def _classes(n_classes: int | None, min_classes: int, max_classes: int) -> st.SearchStrategy[int]:
    if n_classes is not None:
        _check_int(n_classes, "n_classes", low=1)
        return st.just(int(n_classes))
    _check_sizes(min_classes, max_classes, low=1, what="classes")
    return st.integers(min_classes, max_classes)


@st.composite
def _row(draw, n_classes: int) -> np.ndarray:
    """One probability row [C] in float64 (normalised), of a drawn kind."""
    c = n_classes
    kind = draw(st.sampled_from(ROW_KINDS))
    if kind == "one_hot":  # exact 1.0 and 0.0
        w = np.zeros(c)
        w[draw(st.integers(0, c - 1))] = 1.0
    elif kind == "uniform":  # every class tied
        w = np.ones(c)
    elif kind == "top_tie":  # k >= 2 classes tied for the max, the rest 0 or smaller
        k = draw(st.integers(min(2, c), c))
        chosen = draw(st.permutations(range(c)))[:k]
        w = np.zeros(c)
        w[list(chosen)] = 2.0
        rest = [i for i in range(c) if i not in chosen]
        for i in rest:
            w[i] = draw(st.sampled_from([0.0, 1.0]))
    elif kind == "near_uniform":
        eps = draw(st.sampled_from([1e-9, 1e-6, 1e-3]))
        w = 1.0 + eps * np.asarray(draw(st.lists(st.integers(-3, 3), min_size=c, max_size=c)), dtype=float)
    elif kind == "integer_weights":  # small integers: zeros and ties are frequent
        w = np.asarray(draw(st.lists(st.integers(0, 4), min_size=c, max_size=c)), dtype=float)
    elif kind == "round_confidence":  # max p exactly on a bin edge; returned unnormalised to stay exact
        top = draw(st.sampled_from(ROUND_CONFIDENCES))
        if c == 1 or top < 1.0 / c:
            return np.full(c, 1.0 / c)
        row = np.full(c, (1.0 - top) / (c - 1))
        row[draw(st.integers(0, c - 1))] = top
        return row
    elif kind == "peaked":  # confidence close to, but not at, 1.0
        w = np.full(c, draw(st.sampled_from([1e-7, 1e-4, 1e-2])))
        w[draw(st.integers(0, c - 1))] = 1.0
    else:
        w = np.asarray(
            draw(st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=c, max_size=c)), dtype=float
        )
    if w.sum() <= 0.0:
        w = np.ones(c)
    return w / w.sum()


def _cast(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = rows.astype(dtype)
    if dtype != np.float64:  # re-normalise in the target precision; exact 0/1 rows stay exact
        out = out / out.sum(axis=-1, keepdims=True, dtype=dtype)
    return out


@st.composite
def _probability_matrix(draw, c: int, min_size: int, max_size: int, dtype: np.dtype) -> np.ndarray:
    rows = draw(st.lists(_row(c), min_size=min_size, max_size=max_size))
    if rows and draw(st.booleans()):
        # duplicate some rows: ties between samples (same confidence)
        extra = draw(st.lists(st.integers(0, len(rows) - 1), max_size=max(0, max_size - len(rows))))
        rows = rows + [rows[i] for i in extra]
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), c)
    return _cast(matrix, dtype)


def probability_rows(
    *,
    n_classes: int | None = None,
    min_classes: int = 2,
    max_classes: int = 10,
    min_size: int = 1,
    max_size: int = 50,
    dtype: Any = np.float64,
) -> st.SearchStrategy[np.ndarray]:
    """Probability matrices [N, C] whose rows sum to 1, rich in edge cases.

    Rows mix: one-hot (exact 1.0 and 0.0), uniform, ties between the top
    classes, near-uniform, small-integer weights, peaked (1 - tiny), generic
    floats; rows are sometimes duplicated (ties between samples).

    Args:
        n_classes: fixed C; when ``None`` C is drawn from [min_classes, max_classes].
        min_classes: smallest C drawn (>= 1).
        max_classes: largest C drawn.
        min_size: smallest N (0 allowed, to test error paths).
        max_size: largest N.
        dtype: float32 or float64.

    Returns:
        A strategy of numpy arrays [N, C] of ``dtype``.

    Raises:
        hypothesis.errors.InvalidArgument: impossible combinations (min > max,
            negative sizes, C < 1, non-float dtype).
    """
    _check_sizes(min_size, max_size)
    dt = _check_dtype(dtype)
    return _classes(n_classes, min_classes, max_classes).flatmap(
        lambda c: _probability_matrix(c, min_size, max_size, dt)
    )


def label_arrays(n_classes: int, *, min_size: int = 1, max_size: int = 50) -> st.SearchStrategy[np.ndarray]:
    """Integer labels int64 [N] with values in [0, n_classes).

    Args:
        n_classes: number of classes C (>= 1).
        min_size: smallest N.
        max_size: largest N.
    """
    _check_int(n_classes, "n_classes", low=1)
    _check_sizes(min_size, max_size)
    return st.lists(st.integers(0, n_classes - 1), min_size=min_size, max_size=max_size).map(
        lambda v: np.asarray(v, dtype=np.int64)
    )


@st.composite
def _labels_for(draw, probs: np.ndarray) -> np.ndarray:
    n, c = probs.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Mostly the argmax (a plausible classifier), sometimes another class.
    p_correct = draw(st.sampled_from([0.0, 0.5, 0.8, 1.0]))
    labels = np.empty(n, dtype=np.int64)
    argmax = probs.argmax(axis=1)
    for i in range(n):
        correct = draw(st.booleans()) if 0.0 < p_correct < 1.0 else p_correct == 1.0
        labels[i] = argmax[i] if correct else draw(st.integers(0, c - 1))
    return labels


def probs_and_labels(
    *,
    n_classes: int | None = None,
    min_classes: int = 2,
    max_classes: int = 10,
    min_size: int = 1,
    max_size: int = 50,
    dtype: Any = np.float64,
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """A matching pair (probs [N, C], labels int64 [N]).

    Labels are the argmax for a drawn share of the samples and arbitrary for
    the rest, so accuracies cover the whole [0, 1] range. Arguments as
    :func:`probability_rows`.
    """
    rows = probability_rows(
        n_classes=n_classes, min_classes=min_classes, max_classes=max_classes,
        min_size=min_size, max_size=max_size, dtype=dtype,
    )
    return rows.flatmap(lambda p: _labels_for(p).map(lambda y: (p, y)))


@st.composite
def _stack(draw, m: int, c: int, min_size: int, max_size: int, dtype: np.dtype) -> np.ndarray:
    n = draw(st.integers(min_size, max_size))
    members = [draw(_probability_matrix(c, n, n, np.dtype(np.float64))) for _ in range(m)]
    if m > 1 and draw(st.booleans()):
        members[-1] = members[0].copy()  # two identical members
    return _cast(np.stack(members).reshape(m, n, c), dtype)


def member_stacks(
    *,
    n_members: int | None = None,
    min_members: int = 1,
    max_members: int = 5,
    n_classes: int | None = None,
    min_classes: int = 2,
    max_classes: int = 6,
    min_size: int = 1,
    max_size: int = 20,
    dtype: Any = np.float64,
) -> st.SearchStrategy[np.ndarray]:
    """Ensemble member probabilities [M, N, C] (same N and C for every member).

    Args:
        n_members: fixed M; when ``None`` drawn from [min_members, max_members].
        n_classes, min_classes, max_classes: as :func:`probability_rows`.
        min_size, max_size: bounds of N.
        dtype: float32 or float64.
    """
    _check_sizes(min_size, max_size)
    dt = _check_dtype(dtype)
    if n_members is not None:
        _check_int(n_members, "n_members", low=1)
        members = st.just(int(n_members))
    else:
        _check_sizes(min_members, max_members, low=1, what="members")
        members = st.integers(min_members, max_members)
    classes = _classes(n_classes, min_classes, max_classes)
    return st.tuples(members, classes).flatmap(lambda mc: _stack(mc[0], mc[1], min_size, max_size, dt))


class PruneCurve(NamedTuple):
    """A family's error curve: ``prune_ratios[0] == 0.0`` is the parent."""

    prune_ratios: np.ndarray  # float64 [K], strictly increasing, in [0, 1)
    errors: np.ndarray  # float64 [K], in [0, 1]

    @property
    def parent_error(self) -> float:
        return float(self.errors[0])


@st.composite
def _curve(draw, min_size: int, max_size: int, resolution: int) -> PruneCurve:
    k = draw(st.integers(min_size, max_size))
    grid = draw(st.lists(st.integers(1, 99), min_size=k - 1, max_size=k - 1, unique=True))
    ratios = np.asarray([0.0] + sorted(g / 100 for g in grid), dtype=np.float64)
    parent = draw(st.integers(0, resolution // 2))
    steps = draw(st.lists(st.integers(-resolution // 50, resolution // 10), min_size=k - 1, max_size=k - 1))
    # errors as counts / resolution (as measured), so "exactly delta above the parent" happens
    counts = np.clip(np.asarray([parent] + [parent + s for s in steps]), 0, resolution)
    return PruneCurve(ratios, counts.astype(np.float64) / resolution)


def prune_accuracy_curves(
    *, min_size: int = 1, max_size: int = 8, resolution: int = 1000
) -> st.SearchStrategy[PruneCurve]:
    """Pruning-family curves: ratios ascending from 0.0 (the parent) and errors.

    Errors are multiples of ``1 / resolution`` (a test-set size), scattered
    around the parent's error, not necessarily monotone, so differences equal
    to a decimal ``delta`` (e.g. 5 / 1000) occur.

    Args:
        min_size: fewest points K, parent included (>= 1).
        max_size: most points (<= 100: ratios are on a 0.01 grid).
        resolution: denominator of the errors (>= 50).
    """
    _check_sizes(min_size, max_size, low=1)
    if max_size > 100:
        raise InvalidArgument(f"max_size: expected <= 100 (ratios lie on a 0.01 grid), found {max_size}")
    _check_int(resolution, "resolution", low=50)
    return _curve(min_size, max_size, resolution)
