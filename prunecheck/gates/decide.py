"""Gates: a metric, a threshold and a mode, turned into a pass/fail ``GateResult``.

Every suite's options (thresholds, defaults, ranges) are declared in
``prunecheck.config.options`` and validated when the configuration is loaded.
Modes (SPEC 4): ``point`` compares the estimate; ``confident`` passes only if the
whole 95% bootstrap interval of the degradation is within the threshold;
``lenient`` fails only if the whole interval is outside it. A gate whose metric
is not finite fails closed. Comparisons are inclusive (:func:`within`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, TypeVar

from prunecheck.core.errors import PrunecheckError, plain_text

Direction = Literal["max", "min"]  # "max": value must be <= threshold; "min": >= threshold

#: Errors that mean "this gate's metric cannot be computed" on every gate path: prunecheck's
#: own (unreadable data, model or cache), the metrics' ValueError (NaN, empty, bad shapes),
#: torch's RuntimeError and numeric ArithmeticError. The gate then fails closed with the
#: reason; anything else is a bug and stays a traceback.
COMPUTE_ERRORS: tuple[type[BaseException], ...] = (PrunecheckError, ValueError, RuntimeError, ArithmeticError)

#: One comparison rule for every gate: inclusive, with this absolute slack for float
#: rounding. Accuracy-type values are ratios of counts (k/N, accumulated in float64), and
#: differences of such ratios carry rounding errors of ~1e-16 (0.95 - 0.945 =
#: 0.0050000000000000044); the slack is far below the resolution 1/N of any test set
#: (2e-5 for ImageNet's 50,000 images), so a value exactly at its threshold passes and one
#: a single image beyond fails. It equals the slack of ``metrics.prune_potential``.
ROUNDING_TOLERANCE = 1e-12


def within(value: float, threshold: float, direction: "Direction") -> bool:
    """``value <= threshold`` ("max") or ``>=`` ("min"), inclusive up to float rounding."""
    if direction == "max":
        return value <= threshold + ROUNDING_TOLERANCE
    return value >= threshold - ROUNDING_TOLERANCE


def fmt(value: float) -> str:
    """A value with 4 decimals, never ``-0.0000`` (identical models show ``0.0000``)."""
    text = f"{value:.4f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


@dataclass
class GateResult:
    """Outcome of one gate on one test node; travels to reports as a dict."""

    name: str  # gate name, e.g. "accuracy_margin"
    metric: str  # what ``value`` measures, e.g. "accuracy drop"
    value: float
    threshold: float
    threshold_name: str  # e.g. "max_drop"
    direction: Direction
    passed: bool
    mode: str = "point"
    ci: tuple[float, float] | None = None
    parent: float | None = None
    pruned: float | None = None
    subject: str = ""  # pair / family name
    view: str = "nominal"
    reason: str = ""  # set when the gate failed closed
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def margin(self) -> float:
        """Distance to the threshold, positive when on the passing side."""
        if self.direction == "max":
            return self.threshold - self.value
        return self.value - self.threshold

    @property
    def message(self) -> str:
        if self.reason:
            return f"{self.metric}: {self.reason}"
        op_fail, op_pass = (">", "<=") if self.direction == "max" else ("<", ">=")
        op = op_pass if self.passed else op_fail
        shown = self.value
        label = self.metric
        if self.mode != "point" and self.ci is not None:
            bound = self._deciding_bound()
            label = f"{self.metric} ({self.mode}: 95% CI [{fmt(self.ci[0])}, {fmt(self.ci[1])}], estimate {fmt(self.value)})"
            shown = bound
        text = f"{label} {fmt(shown)} {op} {self.threshold_name} {self.threshold:g}"
        parts = []
        if self.parent is not None:
            parts.append(f"parent {fmt(self.parent)}")
        if self.pruned is not None:
            parts.append(f"pruned {fmt(self.pruned)}")
        if parts:
            text += f" ({', '.join(parts)})"
        return text

    def _deciding_bound(self) -> float:
        assert self.ci is not None
        low, high = self.ci
        worst, best = (high, low) if self.direction == "max" else (low, high)
        return worst if self.mode == "confident" else best

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["margin"] = self.margin
        data["message"] = self.message
        return data


@dataclass
class Outcome:
    """What a pure gate function returns: its gate results and the report data it adds.

    ``records`` are ``(section, subject, payload)`` entries for the report's sections
    (``prunecheck.report.tables``); a suite hands the whole outcome to ``gate.check``.
    """

    results: tuple[GateResult, ...] = ()
    records: tuple[tuple[str, str, dict[str, Any]], ...] = ()


def decide(
    *,
    name: str,
    metric: str,
    value: float,
    threshold: float,
    threshold_name: str,
    direction: Direction = "max",
    mode: str = "point",
    ci: tuple[float, float] | None = None,
    parent: float | None = None,
    pruned: float | None = None,
    subject: str = "",
    view: str = "nominal",
    details: dict[str, Any] | None = None,
) -> GateResult:
    """Apply ``mode`` to a value (and its CI) and build the GateResult."""
    result = GateResult(
        name=name,
        metric=metric,
        value=float(value),
        threshold=float(threshold),
        threshold_name=threshold_name,
        direction=direction,
        passed=False,
        mode=mode,
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        parent=None if parent is None else float(parent),
        pruned=None if pruned is None else float(pruned),
        subject=subject,
        view=view,
        details=dict(details or {}),
    )
    numbers = [result.value] + ([] if result.ci is None else list(result.ci))
    if not all(math.isfinite(x) for x in numbers):
        result.reason = f"not finite ({result.value!r}); the gate fails closed"
        return result
    if mode != "point" and result.ci is None:
        result.reason = f"mode '{mode}' needs a bootstrap interval and none was computed; the gate fails closed"
        return result
    if mode not in ("point", "confident", "lenient"):
        result.reason = f"unknown gate mode {mode!r}; expected point, confident or lenient"
        return result
    compared = result.value if mode == "point" else result._deciding_bound()
    result.passed = within(compared, result.threshold, direction)
    return result


def with_relative_drop(result: GateResult, max_relative_drop: float | None) -> GateResult:
    """Also hold an accuracy drop relative to the parent: drop / parent <= max_relative_drop.

    Intel Neural Compressor's relative criterion: 0.01 allows the pruned model to
    lose 1 % of the parent's accuracy (0.92 -> 0.9108). Both margins must hold. The
    returned result is the failing one (the absolute one when both fail); the other
    margin travels in ``details["also"]``. In the bootstrap modes the interval of
    the absolute drop is divided by the parent's accuracy on the full test set (the
    measured baseline, as the relative criterion is defined).
    """
    if max_relative_drop is None or result.reason:
        return result
    if result.parent is None or not result.parent > 0.0:
        relative = failed_closed(
            name=result.name, metric=f"relative {result.metric}", threshold=max_relative_drop,
            threshold_name="max_relative_drop", subject=result.subject, view=result.view,
            reason=f"the parent's value is {result.parent!r}, so a drop relative to it is undefined; the gate fails closed",
        )
    else:
        relative = decide(
            name=result.name, metric=f"relative {result.metric}", value=result.value / result.parent,
            threshold=max_relative_drop, threshold_name="max_relative_drop", direction=result.direction,
            mode=result.mode, ci=None if result.ci is None else (result.ci[0] / result.parent, result.ci[1] / result.parent),
            parent=result.parent, pruned=result.pruned, subject=result.subject, view=result.view,
            details=result.details,
        )
    chosen, other = (relative, result) if (result.passed and not relative.passed) else (result, relative)
    chosen.passed = result.passed and relative.passed
    chosen.details["also"] = {
        "metric": other.metric, "value": other.value, "threshold_name": other.threshold_name,
        "threshold": other.threshold, "passed": other.passed, "message": other.message,
    }
    return chosen


def failed_closed(
    *, name: str, metric: str, reason: str, threshold: float, threshold_name: str,
    direction: Direction = "max", subject: str = "", view: str = "nominal",
) -> GateResult:
    """A gate whose metric could not be computed: it fails, with the reason."""
    return GateResult(
        name=name, metric=metric, value=float("nan"), threshold=float(threshold),
        threshold_name=threshold_name, direction=direction, passed=False,
        subject=subject, view=view, reason=reason,
    )


def cannot_compute(exc: BaseException) -> str:
    """The fail-closed reason for an error raised while computing a metric."""
    return f"cannot be computed ({plain_text(exc)}); the gate fails closed"


def fail_closed(
    build: Callable[[], GateResult], *, name: str, metric: str, threshold: float, threshold_name: str,
    direction: Direction = "max", subject: str = "", view: str = "nominal",
) -> GateResult:
    """``build()``, or a failed result with the reason when it raises one of :data:`COMPUTE_ERRORS`.

    The one fail-closed wrapper for gate paths: the same failure is a failed gate with
    the same kind of reason in every suite, never a skip or a bare traceback.
    """
    try:
        return build()
    except COMPUTE_ERRORS as exc:
        return failed_closed(
            name=name, metric=metric, reason=cannot_compute(exc), threshold=threshold,
            threshold_name=threshold_name, direction=direction, subject=subject, view=view,
        )


def fail_closed_outcome(
    build: Callable[[], Outcome], *, name: str, metric: str, threshold: float, threshold_name: str,
    direction: Direction = "max", subject: str = "", view: str = "nominal",
    error_record: str | None = None,
) -> Outcome:
    """:func:`fail_closed` for a gate function that returns an :class:`Outcome` (several results,
    report records): ``build()``, or an outcome with the one failed result.

    With ``error_record`` (a report section), the failed outcome also records
    ``{"error": <the error's text>}`` for ``subject`` there, so the section says why its data is missing.
    """
    try:
        return build()
    except COMPUTE_ERRORS as exc:
        failed = failed_closed(
            name=name, metric=metric, reason=cannot_compute(exc), threshold=threshold,
            threshold_name=threshold_name, direction=direction, subject=subject, view=view,
        )
        records = ((error_record, subject, {"error": plain_text(exc)}),) if error_record else ()
        return Outcome((failed,), records)


T = TypeVar("T")


@dataclass(frozen=True)
class Unavailable:
    """Inputs the session could not gather (a model, a dataset or a prediction failed).

    The session hands this to a gate function in place of the predictions or curves;
    every gate fed with it fails closed with the error's text (:func:`available`
    inside :func:`fail_closed`), so a failure to predict is a failed gate, not an error
    without a gate result.
    """

    error: BaseException

    @property
    def reason(self) -> str:
        return plain_text(self.error)


def gathered(produce: Callable[[], T]) -> T | Unavailable:
    """``produce()``, or :class:`Unavailable` when it raises one of :data:`COMPUTE_ERRORS`."""
    try:
        return produce()
    except COMPUTE_ERRORS as exc:
        return Unavailable(exc)


def available(value: T | Unavailable) -> T:
    """``value``, or raise the error that made it :class:`Unavailable` (so a :func:`fail_closed`
    build around it fails closed with that reason)."""
    if isinstance(value, Unavailable):
        raise value.error
    return value
