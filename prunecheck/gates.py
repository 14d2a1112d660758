"""Gates: a metric, a threshold and a mode, turned into a pass/fail ``GateResult``.

Defaults for every suite's thresholds live in ``GATE_DEFAULTS``; the config
validates user values against them (unknown keys and wrong types are errors).
Modes (SPEC 4): ``point`` compares the estimate; ``confident`` passes only if the
whole 95% bootstrap interval of the degradation is within the threshold;
``lenient`` fails only if the whole interval is outside it. A gate whose metric
is not finite fails closed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["max", "min"]  # "max": value must be <= threshold; "min": >= threshold

GATE_DEFAULTS: dict[str, dict[str, Any]] = {
    # SPEC 4.1: accuracy(parent) - accuracy(pruned) <= max_drop on nominal data.
    # max_relative_drop: drop / accuracy(parent) <= it as well (0.01 = 1 % of the parent's
    # accuracy); unset = not checked (docs/configuration.md).
    "accuracy_margin": {"max_drop": 0.005, "max_relative_drop": None, "mode": "point"},
    # Per-class accuracy drop (Hooker et al. 2019): the worst class with >= min_class_images
    # images must lose at most max_class_drop; 0.10 sits > 3 standard errors above the noise of a
    # 200-image class at 90 % accuracy (docs/metrics.md).
    "class_accuracy": {"max_class_drop": 0.10, "min_class_images": 50, "mode": "point", "report_classes": 10},
    # Pruning identified exemplars (Hooker et al. 2019): reported; gated only when
    # max_pie_fraction is set (a fraction of the test images).
    "pies": {"max_pie_fraction": None, "thumbnails": 16, "thumbnail_size": 64},
    # SPEC 4.2 (seeds 000, 001, 003).
    "uncertainty": {
        "mode": "point",
        "max_ause_increase": 0.01,
        "max_ece_increase": 0.02,
        "max_nll_increase": 0.1,
        "ece_bins": 15,
        "ause_steps": 50,
        "ause_uncertainty": "msp",  # msp: 1 - max p; variance: predicted class variance over passes/members
        # mc_dropout / ensemble: "prunecheck" (mean probs, ECE on max p) or "seed000" (softmax of mean
        # logits, logit variance for AUSE, ECE on normalised variance; docs/uncertainty.md)
        "protocol": "prunecheck",
        "mc_passes": 5,
        "ood_max_entropy_drop": 0.05,  # nats: pruned OOD entropy may fall at most this far below the parent's
        "ood_max_disagreement_drop": 0.05,  # ensembles: the same for disagreement
        "blur_radii": [0.0, 1.0, 2.0, 3.0, 5.0],
        "min_blur_spearman": 0.8,
    },
    # SPEC 4.3 (seed 002).
    "corruptions": {
        "mode": "point",
        "corruptions": ["benchmark"],  # names, or "benchmark" (15), "extra" (4), "all" (19)
        "severities": [3],
        "noise_levels": [0.0],  # L-inf uniform noise eps (normalised space) counted as extra corruptions; 0 = none
        "max_drop": 0.005,
        "max_relative_drop": None,  # as [gates.accuracy_margin]
        "delta": 0.005,  # prune potential: largest ratio whose error is within delta of the parent's
        "policy": "mean",  # mean | min over the configured corruptions
        "max_excess_error_diff": 0.01,
        # generated corruptions: "imagecorruptions" (reference) or "torch" (batched, CPU/GPU,
        # for the corruptions it covers; the others still use the reference; docs/performance.md)
        "backend": "imagecorruptions",
    },
    # SPEC 4.4 (seed 002, Sec. 4).
    "functional": {
        "mode": "point",
        "eps": [0.0, 0.1, 0.2, 0.3],
        "repetitions": 10,  # seed 002 used 100; see docs/similarity_and_instability.md for why 10
        "max_images": 1000,
        "min_agreement": 0.9,
        "min_reference_margin": 0.0,  # pruned-vs-parent agreement minus reference-vs-parent, per eps
        "backselect": False,
        "backselect_images": 16,
        "backselect_pixels_per_round": 64,
        "backselect_keep_fraction": 0.1,
    },
    # SPEC 4.5 (seed 004).
    "instability": {
        "max_instability": 0.5,  # per pruning step (schedule / pre_finetune checkpoints)
        # no step known: parent with the final zero mask in one shot, a different quantity
        # ("one-shot mask damage"); it fails only when the mask alone leaves < 1/5 of the accuracy
        "max_mask_damage": 0.8,
    },
}

# Keys whose value must be one of a fixed set of strings.
GATE_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("uncertainty", "ause_uncertainty"): ("msp", "variance"),
    ("uncertainty", "protocol"): ("prunecheck", "seed000"),
    ("corruptions", "policy"): ("mean", "min"),
    ("corruptions", "backend"): ("imagecorruptions", "torch"),
}


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
            label = f"{self.metric} ({self.mode}: 95% CI [{self.ci[0]:.4f}, {self.ci[1]:.4f}], estimate {self.value:.4f})"
            shown = bound
        text = f"{label} {shown:.4f} {op} {self.threshold_name} {self.threshold:g}"
        parts = []
        if self.parent is not None:
            parts.append(f"parent {self.parent:.4f}")
        if self.pruned is not None:
            parts.append(f"pruned {self.pruned:.4f}")
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
    result.passed = compared <= threshold if direction == "max" else compared >= threshold
    return result


def optional_fraction(options: dict[str, Any], key: str, suite: str) -> float | None:
    """An optional threshold that is a fraction in [0, 1] (``None`` = not set).

    Raises:
        ValueError: a value that is not a number in [0, 1], naming the key.
    """
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"gates.{suite}.{key}: expected a fraction in [0, 1] (e.g. 0.01), found {value!r}")
    return float(value)


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
