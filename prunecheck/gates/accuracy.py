"""Degradation gates (SPEC 4.1): a metric of the parent and of the pruned model, pruned minus parent.

Pure: predictions and a suite's options in, a :class:`~prunecheck.gates.decide.GateResult`
out. The value is the degradation of a metric of :mod:`prunecheck.metrics` (``accuracy``:
parent minus pruned; ``ece``, ``nll``: pruned minus parent); the ``confident`` and
``lenient`` modes decide on its 95% paired bootstrap interval; a metric that cannot be
computed fails the gate closed, with the reason. Accuracy-type suites may also bound
the drop relative to the parent (``max_relative_drop``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from prunecheck.gates.decide import GateResult, decide, fail_closed, with_relative_drop

if TYPE_CHECKING:  # pragma: no cover - annotations only (predictions pull in torch)
    from prunecheck.engine.predictor import Predictions

#: The suite (``[gates.accuracy_margin]``) of :func:`margin`.
GATE = "accuracy_margin"


def degradation(
    metric: str,
    parent: "Predictions",
    pruned: "Predictions",
    options: Mapping[str, Any],
    *,
    threshold_key: str,
    gate: str | None = None,
    label: str | None = None,
    subject: str = "",
    metric_kwargs: Mapping[str, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> GateResult:
    """Gate on the degradation of ``metric`` from ``parent`` to ``pruned`` (one view).

    Args:
        metric: a name in :data:`prunecheck.metrics.METRICS`, e.g. ``"accuracy"``.
        parent, pruned: :class:`~prunecheck.engine.predictor.Predictions` of the same view
            (rows, or per-sample summaries where the view is stored compact).
        options: the suite's options (:mod:`prunecheck.config.options`); reads
            ``threshold_key``, ``mode`` (``point`` where the suite has none) and
            ``max_relative_drop`` where present.
        threshold_key: the option holding the threshold, e.g. ``"max_drop"``.
        gate: the gate's name; default ``options.suite``.
        label: what the value measures; default ``"<metric> drop"`` / ``"<metric> increase"``.
        subject: pair name, for the messages and the report.
        metric_kwargs: passed to the metric, e.g. ``{"n_bins": 15}``.
        n_resamples, seed: the paired bootstrap of the ``confident`` / ``lenient`` modes.

    Returns:
        The result; failed closed with the reason when the metric cannot be computed.

    Example:
        >>> degradation("accuracy", parent, pruned, AccuracyMarginOptions(), threshold_key="max_drop")  # doctest: +SKIP
    """
    from prunecheck import metrics
    from prunecheck.engine import compact

    name = gate or options.suite  # type: ignore[attr-defined]
    threshold = options[threshold_key]
    mode = options.get("mode", "point")  # suites without gate modes compare the point estimate
    kwargs = dict(metric_kwargs or {})
    view = parent.view.id
    label = label or f"{metric} {'drop' if metrics.METRICS[metric].higher_is_better else 'increase'}"

    def build() -> GateResult:
        parent_value = compact.score(parent, metric, **kwargs)
        pruned_value = compact.score(pruned, metric, **kwargs)
        value = metrics.degradation(metric, parent_value, pruned_value)
        ci = None
        if mode != "point":
            boot = compact.paired_bootstrap(
                metric, parent, pruned, n_resamples=n_resamples, seed=seed, as_degradation=True,
                metric_kwargs=kwargs or None,
            )
            ci = (boot.low, boot.high)
        return decide(
            name=name, metric=label, value=value, threshold=threshold, threshold_name=threshold_key,
            direction="max", mode=mode, ci=ci, parent=parent_value, pruned=pruned_value,
            subject=subject, view=view,
        )

    result = fail_closed(
        build, name=name, metric=label, threshold=threshold, threshold_name=threshold_key,
        subject=subject, view=view,
    )
    return with_relative_drop(result, options.get("max_relative_drop"))


def margin(
    parent: "Predictions", pruned: "Predictions", options: Mapping[str, Any], *,
    subject: str = "", n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """``accuracy(parent) - accuracy(pruned) <= max_drop`` (and ``<= max_relative_drop x
    accuracy(parent)`` when that is set): the accuracy margin of ``options``' suite."""
    return degradation(
        "accuracy", parent, pruned, options, threshold_key="max_drop", subject=subject,
        n_resamples=n_resamples, seed=seed,
    )
