"""Metric metadata: direction, range and inputs live with the metric (no per-metric ``if``s in suites).

``METRICS[name]`` is a :class:`MetricInfo`; :func:`degradation` turns a
(parent, pruned) pair of values into "how much worse the pruned model is",
positive = worse, whatever the metric's direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

from prunecheck.metrics import _resample
from prunecheck.metrics._validation import MetricInputError
from prunecheck.metrics.classification import (
    accuracy,
    agreement,
    brier,
    disagreement,
    ece,
    nll,
    predictive_entropy,
    softmax_distance,
)
from prunecheck.metrics.pruning import excess_error, instability, prune_potential
from prunecheck.metrics.sparsification import ause

Inputs = Literal["probs_labels", "probs", "pair", "members", "scalars"]


@dataclass(frozen=True)
class MetricInfo:
    """What a suite needs to know about a metric.

    Attributes:
        name: registry key, also the function's name.
        fn: the public function.
        higher_is_better: direction; drives :func:`degradation`.
        range: (low, high) of possible values (``math.inf`` when unbounded).
        inputs: call signature family: ``probs_labels`` = (probs, labels),
            ``probs`` = (probs,), ``pair`` = (probs_a, probs_b), ``members`` =
            (member_probs,), ``scalars`` = numbers or short curves.
        unit: "fraction" or "nats", for reports.
        bootstrap: vectorised bootstrap kernel (``prepare(p, y, **kw)``), when
            :func:`~prunecheck.metrics.paired_bootstrap` has a fast path.
    """

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    range: tuple[float, float]
    inputs: Inputs
    unit: str = "fraction"
    bootstrap: _resample.Prepare | None = None


def _info(fn, higher_is_better, low, high, inputs, unit="fraction", bootstrap=None) -> MetricInfo:
    return MetricInfo(fn.__name__, fn, higher_is_better, (low, high), inputs, unit, bootstrap)


METRICS: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        _info(accuracy, True, 0.0, 1.0, "probs_labels", bootstrap=_resample.accuracy_kernel),
        _info(nll, False, 0.0, math.inf, "probs_labels", "nats", _resample.nll_kernel),
        _info(brier, False, 0.0, 2.0, "probs_labels", bootstrap=_resample.brier_kernel),
        _info(ece, False, 0.0, 1.0, "probs_labels", bootstrap=_resample.ece_kernel),
        _info(ause, False, -1.0, 1.0, "probs_labels", bootstrap=_resample.ause_kernel),
        # On OOD data a model should stay uncertain: less entropy / disagreement = overconfident.
        _info(predictive_entropy, True, 0.0, math.inf, "probs", "nats", _resample.entropy_kernel),
        _info(disagreement, True, 0.0, math.inf, "members", "nats"),
        _info(agreement, True, 0.0, 1.0, "pair"),
        _info(softmax_distance, False, 0.0, math.sqrt(2.0), "pair"),
        _info(prune_potential, True, 0.0, 1.0, "scalars"),
        _info(excess_error, False, -1.0, 1.0, "scalars"),
        _info(instability, False, -math.inf, 1.0, "scalars"),
    )
}


def metric_info(name: str) -> MetricInfo:
    """The registry entry of ``name``.

    Raises:
        MetricInputError: unknown name (the known ones are listed).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise MetricInputError(f"metric: expected one of {sorted(METRICS)}, found {name!r}") from None


def degradation(name: str, parent_value: float, pruned_value: float) -> float:
    """How much worse the pruned model is on metric ``name`` (positive = worse).

    ``parent - pruned`` when higher is better, else ``pruned - parent``.

    Args:
        name: a key of :data:`METRICS`.
        parent_value: the metric of the parent.
        pruned_value: the metric of the pruned model.

    Example:
        >>> round(degradation("accuracy", 0.92, 0.90), 6), round(degradation("ece", 0.02, 0.05), 6)
        (0.02, 0.03)
    """
    info = metric_info(name)
    return signed_difference(pruned_value, parent_value, higher_is_better=info.higher_is_better)


def signed_difference(pruned_value: float, parent_value: float, *, higher_is_better: bool) -> float:
    """``pruned - parent`` as a degradation: negated when higher is better."""
    diff = float(pruned_value) - float(parent_value)
    return -diff if higher_is_better else diff
