"""Metrics for pruned-vs-parent gates (SPEC 3): ``prunecheck.metrics.<fn>``.

Inputs are torch tensors (any device; computed there) or numpy arrays:
``probs`` float [N, C] with rows summing to 1, ``labels`` int [N]. Scalars come
back as Python ``float``; curves as small NamedTuples of numpy arrays. Invalid
input raises :class:`MetricInputError` (a ``ValueError``) saying what was
expected and what was found. ``METRICS`` holds each metric's direction and range;
``degradation`` and ``paired_bootstrap`` use it so suites need no per-metric code.
"""

from prunecheck.metrics._validation import (
    MetricInputError,
    validate_labels,
    validate_member_probs,
    validate_pair,
    validate_probs,
    validate_vector,
)
from prunecheck.metrics.bootstrap import BootstrapResult, bootstrap_indices, paired_bootstrap
from prunecheck.metrics.classification import (
    CalibrationBins,
    ConfidenceCurve,
    accuracy,
    agreement,
    brier,
    calibration_bins,
    confidence_curve,
    disagreement,
    ece,
    nll,
    predictive_entropy,
    softmax_distance,
)
from prunecheck.metrics.perclass import (
    PerClassAccuracy,
    class_accuracy_drop,
    class_drop_intervals,
    class_histogram,
    modal_classes,
    per_class_accuracy,
    pie_mask,
    prediction_votes,
)
from prunecheck.metrics.pruning import excess_error, instability, prune_potential
from prunecheck.metrics.registry import METRICS, MetricInfo, degradation, metric_info
from prunecheck.metrics.sparsification import SparsificationCurves, ause, sparsification_curves

__all__ = [
    "METRICS",
    "BootstrapResult",
    "CalibrationBins",
    "ConfidenceCurve",
    "MetricInfo",
    "MetricInputError",
    "PerClassAccuracy",
    "SparsificationCurves",
    "accuracy",
    "agreement",
    "ause",
    "bootstrap_indices",
    "brier",
    "calibration_bins",
    "class_accuracy_drop",
    "class_drop_intervals",
    "class_histogram",
    "confidence_curve",
    "degradation",
    "disagreement",
    "ece",
    "excess_error",
    "instability",
    "metric_info",
    "modal_classes",
    "nll",
    "paired_bootstrap",
    "per_class_accuracy",
    "pie_mask",
    "prediction_votes",
    "predictive_entropy",
    "prune_potential",
    "softmax_distance",
    "sparsification_curves",
    "validate_labels",
    "validate_member_probs",
    "validate_pair",
    "validate_probs",
    "validate_vector",
]
