"""Input conversion and validation shared by every metric.

Each validator takes user input (a torch tensor on any device, a numpy array or
a nested list), checks it, and returns torch tensors on the input's device, so
that the metric computes where the data already lives. Nothing is copied to the
host: numpy arrays are wrapped without a copy, labels are moved to the device
of the probabilities they belong to (a copy of N integers at most).

Every problem raises :class:`MetricInputError` (a ``ValueError``) whose message
says what was expected, what was found and where (argument name, row index).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from prunecheck.core.errors import PrunecheckError

#: Default tolerance on row sums and on the [0, 1] range of probabilities.
ROW_SUM_ATOL = 1e-3


class MetricInputError(PrunecheckError, ValueError):
    """Invalid input to a metric: wrong shape, NaN/inf, labels out of range, ..."""


def as_tensor(x: Any, *, name: str) -> torch.Tensor:
    """Wrap ``x`` as a torch tensor without copying when possible.

    Args:
        x: a ``torch.Tensor`` (returned as is), a numpy array (wrapped, no copy)
            or anything ``numpy.asarray`` accepts.
        name: argument name used in error messages.

    Returns:
        A tensor on ``x``'s device (CPU for numpy input).

    Raises:
        MetricInputError: when ``x`` is not numeric.
    """
    if isinstance(x, torch.Tensor):
        return x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise MetricInputError(f"{name}: expected a numeric array, found {type(x).__name__} ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise MetricInputError(f"{name}: expected a numeric array, found dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # Read-only arrays: torch warns that writing would be undefined; metrics never write.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr) if arr.ndim else torch.as_tensor(arr)


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 everywhere except on devices without it (Apple MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _check_float(t: torch.Tensor, *, name: str) -> None:
    if not t.is_floating_point():
        raise MetricInputError(f"{name}: expected a floating-point array, found dtype {t.dtype}")


def _check_finite(t: torch.Tensor, *, name: str) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
        raise MetricInputError(
            f"{name}: expected finite values, found {t[index].item()!r} at index {index} "
            f"({int(bad.sum())} non-finite values in all)"
        )


def validate_probs(
    probs: Any,
    labels: Any = None,
    *,
    name: str = "probs",
    atol: float = ROW_SUM_ATOL,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check class probabilities (and, if given, their labels).

    Args:
        probs: float [N, C], every entry in [0, 1] and every row summing to 1
            (both within ``atol``).
        labels: optional integer [N] with values in [0, C).
        name: argument name used in error messages.
        atol: tolerance of the row-sum and range checks.

    Returns:
        ``(probs, labels)`` as tensors on ``probs``' device; labels as int64
        (``None`` when not given).

    Raises:
        MetricInputError: wrong rank, empty, non-float, NaN/inf, values outside
            [0, 1], a row not summing to 1 (the worst row is named), or bad labels.
    """
    p = as_tensor(probs, name=name)
    if p.ndim != 2:
        raise MetricInputError(f"{name}: expected shape [N, C], found {p.ndim}-D shape {tuple(p.shape)}")
    n, c = p.shape
    if n == 0 or c == 0:
        raise MetricInputError(f"{name}: expected at least one sample and one class, found shape {tuple(p.shape)}")
    _check_float(p, name=name)
    _check_rows(p, name=name, atol=atol)
    y = None if labels is None else validate_labels(labels, n_samples=n, n_classes=c, device=p.device)
    return p, y


def _sum_dtype(p: torch.Tensor) -> torch.dtype:
    return p.dtype if p.dtype == torch.float64 else torch.float32


def _check_rows(p: torch.Tensor, *, name: str, atol: float) -> None:
    """Finiteness, range and row-sum checks on a float tensor [..., C], in two passes.

    A NaN or inf anywhere makes its row sum non-finite, so the finiteness scan
    only runs when a row sum is not finite.
    """
    sums = p.sum(dim=-1, dtype=_sum_dtype(p)).to(accumulation_dtype(p.device))
    if not bool(torch.isfinite(sums).all()):
        _check_finite(p, name=name)  # raises, unless finite values overflowed the sum
    low, high = (float(v) for v in torch.aminmax(p))
    if low < -atol or high > 1.0 + atol:
        worst = low if low < -atol else high
        index = tuple(int(i) for i in torch.nonzero(p == worst)[0].tolist())
        raise MetricInputError(
            f"{name}: expected probabilities in [0, 1], found {worst!r} at index {index}"
        )
    deviation = (sums - 1.0).abs()
    worst_flat = int(torch.argmax(deviation.reshape(-1)))
    worst_dev = float(deviation.reshape(-1)[worst_flat])
    if worst_dev > atol:
        index = tuple(int(i) for i in np.unravel_index(worst_flat, tuple(sums.shape)))
        where = f"row {index[0]}" if len(index) == 1 else f"row {index}"
        raise MetricInputError(
            f"{name}: expected every row to sum to 1 (tolerance {atol:g}), found "
            f"{float(sums.reshape(-1)[worst_flat])!r} in {where} (the worst of "
            f"{int((deviation > atol).sum())} rows outside the tolerance)"
        )


def validate_labels(
    labels: Any,
    *,
    n_samples: int,
    n_classes: int,
    device: torch.device | None = None,
    name: str = "labels",
) -> torch.Tensor:
    """Check integer labels [N] with values in [0, n_classes).

    Args:
        labels: integer array [N].
        n_samples: expected N.
        n_classes: number of classes C.
        device: device to move the labels to (the device of their probabilities).
        name: argument name used in error messages.

    Returns:
        int64 tensor [N] on ``device``.

    Raises:
        MetricInputError: wrong shape, non-integer dtype or a label out of range.
    """
    y = as_tensor(labels, name=name)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise MetricInputError(f"{name}: expected shape [{n_samples}] (one label per row), found {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise MetricInputError(f"{name}: expected an integer array, found dtype {y.dtype}")
    if device is not None and y.device != device:
        y = y.to(device)
    y = y.long()
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        worst = low if low < 0 else high
        index = int(torch.nonzero(y == worst)[0, 0])
        raise MetricInputError(
            f"{name}: expected values in [0, {n_classes - 1}] (C = {n_classes} classes), "
            f"found {worst} at index {index}"
        )
    return y


def validate_pair(probs_a: Any, probs_b: Any, *, atol: float = ROW_SUM_ATOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two probability arrays of the same shape [N, C] (e.g. pruned and parent).

    Returns:
        Both as tensors; ``probs_b`` is moved to ``probs_a``'s device if needed.

    Raises:
        MetricInputError: as :func:`validate_probs`, or shapes that differ.
    """
    a, _ = validate_probs(probs_a, name="probs_a", atol=atol)
    b, _ = validate_probs(probs_b, name="probs_b", atol=atol)
    if a.shape != b.shape:
        raise MetricInputError(f"probs_b: expected the shape of probs_a {tuple(a.shape)}, found {tuple(b.shape)}")
    return a, b.to(a.device)


def validate_member_probs(member_probs: Any, *, atol: float = ROW_SUM_ATOL) -> torch.Tensor:
    """Check ensemble member probabilities [M, N, C].

    Raises:
        MetricInputError: wrong rank, empty, NaN/inf, or a row that is not a
            distribution (the worst (member, sample) row is named).
    """
    name = "member_probs"
    p = as_tensor(member_probs, name=name)
    if p.ndim != 3:
        raise MetricInputError(f"{name}: expected shape [M, N, C], found {p.ndim}-D shape {tuple(p.shape)}")
    if 0 in p.shape:
        raise MetricInputError(f"{name}: expected at least one member, sample and class, found shape {tuple(p.shape)}")
    _check_float(p, name=name)
    _check_rows(p, name=name, atol=atol)
    return p


def validate_vector(
    x: Any, *, name: str, n_samples: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Check a finite float vector [N] (e.g. a per-sample uncertainty).

    Returns:
        The vector as a tensor on ``device`` (when given).
    """
    v = as_tensor(x, name=name)
    if v.ndim != 1 or (n_samples is not None and v.shape[0] != n_samples):
        expected = f"[{n_samples}]" if n_samples is not None else "[N]"
        raise MetricInputError(f"{name}: expected shape {expected}, found {tuple(v.shape)}")
    if v.shape[0] == 0:
        raise MetricInputError(f"{name}: expected at least one value, found an empty array")
    if v.dtype == torch.bool or v.is_complex():
        raise MetricInputError(f"{name}: expected a real-valued array, found dtype {v.dtype}")
    if device is not None and v.device != device:
        v = v.to(device)
    if v.is_floating_point():
        _check_finite(v, name=name)
    return v


def check_scalar(value: Any, *, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite real number, optionally within [low, high]; returned as float."""
    if isinstance(value, torch.Tensor) or isinstance(value, np.ndarray):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            raise MetricInputError(f"{name}: expected a scalar, found an array of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise MetricInputError(f"{name}: expected a real number, found {type(value).__name__} {value!r}")
    result = float(value)
    if not np.isfinite(result):
        raise MetricInputError(f"{name}: expected a finite number, found {result!r}")
    if (low is not None and result < low) or (high is not None and result > high):
        raise MetricInputError(f"{name}: expected a value in [{low}, {high}], found {result!r}")
    return result
