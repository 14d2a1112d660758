"""Pruning under distribution shift on a family (seed 002, Sec. 5): curves, prune potential, excess error.

A family is a parent and pruned members at several prune ratios. On each view
(nominal data, every configured corruption and severity, every L-inf noise level)
the whole family is predicted with one ``predict_many`` call, giving a
prune-accuracy curve per view. From the curves:

- prune potential per view (Def. 1 with 0-1 loss): the largest member ratio whose
  error is within ``delta`` of the parent's error *on the same view*;
- excess error of a model (Def. 2): its mean error over the shifted views minus
  its nominal error; the gate compares the deployed member with the parent.

Every function here is pure: predictions, curves or plain numbers in, results and
report payloads out. The session predicts the curves (``Family.curves`` in
:mod:`prunecheck.session.pairs`, measured by :mod:`prunecheck.session.families`,
memoised per family and view set); the suite hands them to :func:`curves_report`,
:func:`prune_potential_gate`, :func:`excess_error_gate` and, per pair and view,
predictions to :func:`corruption_margin`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from prunecheck import metrics
from prunecheck.core.corruption_names import check_severity, resolve_corruptions
from prunecheck.core.errors import GateError
from prunecheck.core.views import View, corruption, noise
from prunecheck.gates.accuracy import degradation
from prunecheck.gates.decide import COMPUTE_ERRORS, GateResult, Outcome, Unavailable, available, decide, fail_closed
from prunecheck.metrics.bootstrap import percentile_interval, resampled_counts
from prunecheck.metrics.pruning import PRUNE_POTENTIAL_EPS

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only (predictions pull in torch)
    from prunecheck.engine.predictor import Predictions

#: Gate suite (``[gates.corruptions]``) whose options this module reads.
GATE = "corruptions"
#: Column label of nominal data (seed 002's "train distribution").
NOMINAL_ID = "nominal"
POLICIES = ("mean", "min")


@dataclass(frozen=True)
class Shift:
    """One "corruption" of seed 002's test distribution.

    Attributes:
        id: short label used in test ids and tables, e.g. ``gaussian_noise-3`` or ``noise0.1``.
        view: the view the engine evaluates (``corruption(name, severity)`` or ``noise(eps, 0)``).
    """

    id: str
    view: View


def configured_shifts(options: Mapping[str, Any]) -> tuple[Shift, ...]:
    """The shifted views selected by ``[gates.corruptions]``: corruptions x severities, then noise levels.

    Args:
        options: the suite's options; reads ``corruptions`` ("benchmark", "extra",
            "all", names, or a list mixing them; an empty list selects none),
            ``severities`` (integers in 1..5) and ``noise_levels`` (eps >= 0 in
            normalised input space; 0 entries mean "no noise" and are ignored).

    Returns:
        The shifts in configuration order (corruption-major, then severity), then one
        ``noise(eps, 0)`` view per positive eps, labelled ``noise<eps>``.

    Raises:
        ValueError: unknown corruption name, bad severity or noise level (the message
            names the option), or nothing selected at all.

    Example:
        >>> [s.id for s in configured_shifts({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.0, 0.1]})]
        ['fog-3', 'noise0.1']
    """
    raw = options["corruptions"]
    names: tuple[str, ...] = ()
    if not (isinstance(raw, (list, tuple)) and len(raw) == 0):  # an empty list selects no corruption
        try:
            names = resolve_corruptions(raw)
        except ValueError as exc:
            raise ValueError(f"corruptions: {exc}") from None
    severities: list[int] = []
    for value in _as_list(options["severities"], "severities"):
        try:
            severity = check_severity(value)
        except ValueError as exc:
            raise ValueError(f"severities: {exc}") from None
        if severity not in severities:
            severities.append(severity)
    if names and not severities:
        raise ValueError("severities: expected at least one severity in 1..5 for the configured corruptions, found []")
    levels: list[float] = []
    for value in _as_list(options["noise_levels"], "noise_levels"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"noise_levels: expected finite numbers >= 0 (L-inf eps), found {value!r}")
        if value > 0 and float(value) not in levels:
            levels.append(float(value))
    shifts = [Shift(f"{name}-{sev}", corruption(name, sev)) for name in names for sev in severities]
    shifts += [Shift(f"noise{eps:g}", noise(eps, 0)) for eps in levels]
    if not shifts:
        raise ValueError(
            "expected at least one corruption or a noise level > 0, found corruptions = [] and "
            f"noise_levels = {list(options['noise_levels'])}; configure one, or do not run "
            "suites/test_corruptions.py"
        )
    return tuple(shifts)


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"{key}: expected a list, found {type(value).__name__} {value!r}")


# -- curves ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PruneAccuracyCurves:
    """Accuracy of a family's parent and members on every view.

    Members are sorted by prune ratio (ties keep configuration order).

    Attributes:
        family: family name.
        parent: parent model name.
        members: member model names, [K].
        ratios: prune ratio of each member, [K], fractions in [0, 1].
        views: view labels, [V]; ``views[0]`` is ``"nominal"``, then the shifts.
        parent_accuracy: parent accuracy per view, [V].
        accuracy: member accuracy per view, [V][K].
        deployed: the deployed member's name, or None.
        correct: optional bool [V, 1 + K, N]: whether the parent (index 0) and
            each member (ratio order) classify test image n correctly on each
            view; needed by the ``confident`` / ``lenient`` modes (bootstrap).
    """

    family: str
    parent: str
    members: tuple[str, ...]
    ratios: tuple[float, ...]
    views: tuple[str, ...]
    parent_accuracy: tuple[float, ...]
    accuracy: tuple[tuple[float, ...], ...]
    deployed: str | None = None
    correct: Any = field(default=None, compare=False, repr=False)

    @property
    def shift_views(self) -> tuple[str, ...]:
        """The shifted views (test distribution): every view but nominal."""
        return self.views[1:]

    def view_index(self, view: str) -> int:
        if view not in self.views:
            raise ValueError(f"view: expected one of {', '.join(self.views)}, found {view!r}")
        return self.views.index(view)

    def member_index(self, member: str) -> int:
        if member not in self.members:
            raise ValueError(
                f"member: expected one of the family's members ({', '.join(self.members)})"
                f", found {member!r}"
            )
        return self.members.index(member)

    def errors(self, view: str) -> tuple[float, ...]:
        """0-1 error of each member on ``view``, [K]."""
        return tuple(1.0 - a for a in self.accuracy[self.view_index(view)])

    def parent_error(self, view: str) -> float:
        return 1.0 - self.parent_accuracy[self.view_index(view)]


def curves_from_accuracies(
    *,
    family: str,
    parent: str,
    members: Sequence[str],
    ratios: Sequence[float],
    parent_accuracy: Mapping[str, float],
    accuracy: Mapping[str, Sequence[float]],
    deployed: str | None = None,
    correct: Mapping[str, Any] | None = None,
) -> PruneAccuracyCurves:
    """Build and validate curves from plain numbers.

    Args:
        family, parent: names.
        members: member names, [K] (any order; sorted by ratio here).
        ratios: prune ratio per member, [K], in [0, 1].
        parent_accuracy: view label -> parent accuracy; must contain ``"nominal"``
            and at least one other view. Its order is the view order.
        accuracy: view label -> member accuracies [K]; same keys as ``parent_accuracy``.
        deployed: optional member name.
        correct: optional view label -> bool [1 + K, N] per-image correctness of the
            parent and the members (in ``members`` order), for the bootstrap modes.

    Raises:
        ValueError: mismatched lengths or keys, values outside [0, 1] or not finite,
            an unknown deployed member.
    """
    members = tuple(members)
    ratios = tuple(float(r) for r in ratios)
    if not members:
        raise ValueError(f"family {family!r}: expected at least one member, found none")
    if len(ratios) != len(members):
        raise ValueError(
            f"family {family!r}: expected one ratio per member ({len(members)})"
            f", found {len(ratios)}"
        )
    for name, ratio in zip(members, ratios):
        if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
            raise ValueError(
                f"family {family!r}: prune ratio of {name!r}: expected a fraction in [0, 1]"
                f", found {ratio!r}"
            )
    views = tuple(parent_accuracy)
    if not views or views[0] != NOMINAL_ID:
        raise ValueError(f"family {family!r}: expected 'nominal' as the first view, found {list(views)}")
    if len(views) < 2:
        raise ValueError(
            f"family {family!r}: expected at least one shifted view besides nominal"
            f", found {list(views)}"
        )
    if set(accuracy) != set(views):
        raise ValueError(
            f"family {family!r}: expected member accuracies for views {list(views)}"
            f", found {list(accuracy)}"
        )
    if deployed is not None and deployed not in members:
        raise ValueError(
            f"family {family!r}: deployed: expected one of {', '.join(members)}"
            f", found {deployed!r}"
        )
    order = sorted(range(len(members)), key=lambda k: ratios[k])
    rows = []
    for view in views:
        row = tuple(float(a) for a in accuracy[view])
        if len(row) != len(members):
            raise ValueError(
                f"family {family!r}: view {view!r}: expected {len(members)} member accuracies"
                f", found {len(row)}"
            )
        for value in (*row, float(parent_accuracy[view])):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(
                    f"family {family!r}: view {view!r}: expected accuracies in [0, 1]"
                    f", found {value!r}"
                )
        rows.append(tuple(row[k] for k in order))
    stacked = None
    if correct is not None:
        stacked = np.stack([np.asarray(correct[v], dtype=bool) for v in views])  # [V, 1 + K, N]
        if stacked.ndim != 3 or stacked.shape[1] != 1 + len(members):
            raise ValueError(
                f"family {family!r}: correct: expected [views, 1 + {len(members)} models, images]"
                f", found {list(stacked.shape)}"
            )
        stacked = stacked[:, [0, *(1 + k for k in order)]]
    return PruneAccuracyCurves(
        family=family,
        parent=parent,
        members=tuple(members[k] for k in order),
        ratios=tuple(ratios[k] for k in order),
        views=views,
        parent_accuracy=tuple(float(parent_accuracy[v]) for v in views),
        accuracy=tuple(rows),
        deployed=deployed,
        correct=stacked,
    )


# -- prune potential and excess error ----------------------------------------------------
def prune_potentials(curves: PruneAccuracyCurves, delta: float) -> dict[str, float]:
    """Prune potential P per view (seed 002, Def. 1 with 0-1 loss).

    ``P(view) = max { ratio_k : error_k(view) - parent_error(view) <= delta }``, 0.0
    when no member qualifies (the parent, ratio 0, always does).

    Returns:
        view label -> P, in the curves' view order (``"nominal"`` first).
    """
    return {
        view: metrics.prune_potential(curves.ratios, curves.errors(view), curves.parent_error(view), delta)
        for view in curves.views
    }


def policy_potential(potentials: Mapping[str, float], policy: str) -> float:
    """The prune potential the deployed ratio is gated against: mean or min over the shifted views.

    Args:
        potentials: view label -> P, as from :func:`prune_potentials` (``"nominal"`` is ignored).
        policy: ``"mean"`` (average over the configured corruptions) or ``"min"``.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, found {policy!r}")
    shifted = [p for view, p in potentials.items() if view != NOMINAL_ID]
    if not shifted:
        raise ValueError("expected prune potentials for at least one shifted view, found only nominal")
    return sum(shifted) / len(shifted) if policy == "mean" else min(shifted)


def potential_summary(potentials: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Average and minimum prune potential on the train and test distribution (seed 002, Tables 9-10).

    The train distribution is nominal data only (average = minimum); the test
    distribution is every shifted view.

    Returns:
        ``{"train": {"average", "minimum"}, "test": {"average", "minimum"}}``.
    """
    nominal = potentials[NOMINAL_ID]
    return {
        "train": {"average": nominal, "minimum": nominal},
        "test": {"average": policy_potential(potentials, "mean"), "minimum": policy_potential(potentials, "min")},
    }


def excess_errors(curves: PruneAccuracyCurves) -> tuple[float, tuple[float, ...]]:
    """Excess error (seed 002, Def. 2 with 0-1 loss) of the parent and of each member.

    ``e = mean over shifted views of error - nominal error``.

    Returns:
        (parent excess error, member excess errors [K]).
    """
    shifted = [curves.view_index(v) for v in curves.shift_views]

    def excess(accuracies: Sequence[float]) -> float:
        mean_shifted = sum(1.0 - accuracies[i] for i in shifted) / len(shifted)
        return metrics.excess_error(mean_shifted, 1.0 - accuracies[0])

    parent = excess(curves.parent_accuracy)
    members = tuple(excess([row[k] for row in curves.accuracy]) for k in range(len(curves.members)))
    return parent, members


# -- bootstrap ------------------------------------------------------------------------------
def family_resamples(
    curves: PruneAccuracyCurves, options: Mapping[str, Any], *, n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Policy prune potential and excess-error difference on paired bootstrap resamples of the test images.

    Every resample draws N test indices with replacement and uses them for EVERY
    model and EVERY view (the shifted views are the same images, corrupted), so
    the whole family moves together, as the paired bootstrap of the pair gates.

    Returns:
        ``{"potential": float [R], "excess_difference": float [R]}``: the
        ``policy`` prune potential over the shifted views, and excess error of
        the deployed member minus the parent's, per resample.

    Raises:
        ValueError: the curves carry no per-image correctness, or no deployed member.
    """
    if curves.correct is None:
        raise ValueError("the bootstrap modes need per-image predictions; these curves were built from accuracies")
    deployed = curves.member_index(_deployed(curves))
    hits = np.asarray(curves.correct)
    v, m, n = hits.shape
    counts = resampled_counts(hits.reshape(v * m, n), n_resamples=n_resamples, seed=seed)
    counts = counts.reshape(-1, v, m)  # [R, V, 1 + K] correct counts
    # error_k - parent_error = (correct_parent - correct_k) / N, exact in integers
    ok = (counts[:, :, :1] - counts[:, :, 1:]) / n <= options["delta"] + PRUNE_POTENTIAL_EPS
    ratios = np.asarray(curves.ratios, dtype=np.float64)
    potential = np.where(ok, ratios, 0.0).max(axis=2)[:, 1:]  # [R, shifted views]
    policy = options["policy"]
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, found {policy!r}")
    errors = 1.0 - counts / n
    excess = errors[:, 1:, :].mean(axis=1) - errors[:, 0, :]  # [R, 1 + K]
    return {
        "potential": potential.mean(axis=1) if policy == "mean" else potential.min(axis=1),
        "excess_difference": excess[:, 1 + deployed] - excess[:, 0],
    }


def _mode(options: Mapping[str, Any]) -> str:
    mode = options["mode"]
    if mode not in ("point", "confident", "lenient"):
        raise ValueError(f"mode: expected one of point, confident, lenient, found {mode!r}")
    return mode


# -- gate results ---------------------------------------------------------------------------
def prune_potential_result(
    curves: PruneAccuracyCurves, options: Mapping[str, Any], *, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """Gate ``deployed ratio <= P`` with P from ``options["policy"]`` over the shifted views.

    ``mode`` (``[gates.corruptions] mode``): ``point`` compares with P itself;
    ``confident`` with the lower end of P's 95% paired bootstrap interval (the
    deployed ratio must be safe even if the test set was lucky), ``lenient``
    with its upper end. The interval is in the metric label and ``details``.
    """
    policy = options["policy"]
    delta = options["delta"]
    mode = _mode(options)
    deployed = _deployed(curves)
    ratio = curves.ratios[curves.member_index(deployed)]
    potentials = prune_potentials(curves, delta)
    estimate = policy_potential(potentials, policy)
    worst = min(curves.shift_views, key=lambda v: potentials[v])
    details = {"policy": policy, "delta": delta, "deployed": deployed, "potentials": potentials,
               "policy_potential": estimate}
    label = (f"deployed prune ratio ({deployed}; nominal prune potential {potentials[NOMINAL_ID]:.3f}, "
             f"lowest {worst} {potentials[worst]:.3f})")
    threshold, threshold_name = estimate, f"{policy} prune potential over {len(curves.shift_views)} corruptions"
    if mode != "point":
        draws = family_resamples(curves, options, n_resamples=n_resamples, seed=seed)["potential"]
        low, high = percentile_interval(draws, estimate)
        details.update(potential_ci=[low, high], n_resamples=n_resamples)
        threshold = low if mode == "confident" else high
        bound = "lower" if mode == "confident" else "upper"
        label = label[:-1] + f"; {policy} prune potential {estimate:.3f}, 95% CI [{low:.3f}, {high:.3f}])"
        threshold_name = f"{bound} 95% bound of the {threshold_name}"
    result = decide(
        name=GATE, metric=label, value=ratio, threshold=threshold,
        threshold_name=f"{threshold_name} (delta {delta:g})", direction="max",
        subject=subject or curves.family, view="corruptions", details=details,
    )
    result.mode = mode  # the mode moved the threshold (P's bound), not the value: decided as a point
    return result


def excess_error_result(
    curves: PruneAccuracyCurves, options: Mapping[str, Any], *, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """Gate ``excess_error(deployed) - excess_error(parent) <= max_excess_error_diff``.

    ``confident`` / ``lenient`` decide on the 95% paired bootstrap interval of
    the difference (same resampled images for both models and every view).
    """
    mode = _mode(options)
    deployed = _deployed(curves)
    parent, members = excess_errors(curves)
    pruned = members[curves.member_index(deployed)]
    value = pruned - parent
    ci = None
    if mode != "point":
        draws = family_resamples(curves, options, n_resamples=n_resamples, seed=seed)["excess_difference"]
        ci = percentile_interval(draws, value)
    return decide(
        name=GATE,
        metric=f"excess error difference ({deployed} - parent, mean over {len(curves.shift_views)} corruptions)",
        value=value,
        threshold=options["max_excess_error_diff"],
        threshold_name="max_excess_error_diff",
        direction="max",
        mode=mode,
        ci=ci,
        parent=parent,
        pruned=pruned,
        subject=subject or curves.family,
        view="corruptions",
        details={"deployed": deployed, "views": list(curves.shift_views),
                 **({"n_resamples": n_resamples} if ci else {})},
    )


def _deployed(curves: PruneAccuracyCurves) -> str:
    if curves.deployed is None:
        raise ValueError(
            f"family {curves.family!r}: expected a deployed member to gate"
            f", found none (set families[].deployed)"
        )
    return curves.deployed


def prune_potential_gate(
    curves: PruneAccuracyCurves | Unavailable, options: Mapping[str, Any], *, subject: str,
    n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """The ``test_prune_potential`` node: :func:`prune_potential_result`, failed closed when the
    curves are :class:`~prunecheck.gates.decide.Unavailable` or the value cannot be computed."""
    return _family_gate("prune_potential", curves, options, subject=subject, n_resamples=n_resamples, seed=seed)


def excess_error_gate(
    curves: PruneAccuracyCurves | Unavailable, options: Mapping[str, Any], *, subject: str,
    n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """The ``test_excess_error`` node: :func:`excess_error_result`, failed closed like
    :func:`prune_potential_gate`."""
    return _family_gate("excess_error", curves, options, subject=subject, n_resamples=n_resamples, seed=seed)


def _family_gate(
    kind: str, curves: PruneAccuracyCurves | Unavailable, options: Mapping[str, Any], *, subject: str,
    n_resamples: int = 1000, seed: int = 0,
) -> GateResult:
    """``kind`` = "prune_potential" or "excess_error" on a family's curves; fails closed with the reason.

    Anything that prevents the curves or the value from being computed (curves the
    session could not predict, no deployed member, bad options) yields a failed
    result, never a skip.
    """
    build = {"prune_potential": prune_potential_result, "excess_error": excess_error_result}[kind]
    label = {"prune_potential": "deployed prune ratio", "excess_error": "excess error difference"}[kind]
    threshold, threshold_name = (
        (options["max_excess_error_diff"], "max_excess_error_diff") if kind == "excess_error"
        else (float("nan"), "prune potential")
    )
    return fail_closed(
        lambda: build(available(curves), options, subject=subject, n_resamples=n_resamples, seed=seed),
        name=GATE, metric=label, threshold=threshold, threshold_name=threshold_name, subject=subject,
        view="corruptions",
    )


def corruption_margin(
    parent: "Predictions", pruned: "Predictions", options: Mapping[str, Any], *, shift: str, source: str = "",
    subject: str = "", n_resamples: int = 1000, seed: int = 0,
) -> Outcome:
    """``accuracy(parent) - accuracy(pruned) <= max_drop`` on one shifted view, and its report row.

    Args:
        parent, pruned: predictions of the pair on the view (rows or compact summaries).
        options: ``[gates.corruptions]``.
        shift: the view's label (:attr:`Shift.id`, e.g. ``fog-3``).
        source: where the view's images come from (``Pair.view_source``), for the report.
    """
    result = degradation("accuracy", parent, pruned, options, threshold_key="max_drop", gate=GATE,
                         subject=subject, n_resamples=n_resamples, seed=seed)
    row = {"kind": "pair", "view": shift, "parent_accuracy": result.parent, "pruned_accuracy": result.pruned,
           "source": source}
    return Outcome(results=(result,), records=((GATE, subject, row),))


#: The keys of :func:`curves_payload` that the corruption section's family tables read.
CURVE_KEYS = ("parent", "members", "ratios", "views", "parent_accuracy", "accuracy", "delta")


def curves_report(
    curves: PruneAccuracyCurves | Unavailable, options: Mapping[str, Any], *, subject: str,
    n_resamples: int = 1000, seed: int = 0,
) -> Outcome:
    """The family's curves for the report: a ``corruptions`` entry (the raw curves) and a
    ``prune_potential`` entry (:func:`curves_payload`). No gate.

    Raises:
        GateError: the curves or their payload cannot be computed (a one-line failure).
    """
    try:
        payload = curves_payload(available(curves), options, n_resamples=n_resamples, seed=seed)
    except COMPUTE_ERRORS as exc:
        raise GateError(f"prune-accuracy curves of family {subject!r} cannot be computed: {exc}") from None
    return Outcome(records=(
        (GATE, subject, {"kind": "family", **{k: payload[k] for k in CURVE_KEYS}}),
        ("prune_potential", subject, payload),
    ))


def curves_payload(
    curves: PruneAccuracyCurves, options: Mapping[str, Any], *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """JSON-able data for the report tables and plots: raw curves, potentials, excess errors.

    Keys: ``parent``, ``members``, ``ratios`` [K], ``views`` [V], ``parent_accuracy`` [V],
    ``accuracy`` [V][K], ``delta``, ``delta_band`` [V] (the lowest accuracy within delta of
    the parent per view: ``parent_accuracy - delta``), ``potentials`` {view: P},
    ``summary`` (train/test average and minimum), ``policy``, ``policy_potential``,
    ``excess_error`` {"parent", "members" [K], "difference" [K]}, ``deployed``,
    ``deployed_ratio``, ``mode``; with ``mode`` confident / lenient and a deployed
    member also ``intervals`` {"policy_potential", "excess_difference"}: 95% paired
    bootstrap intervals (:func:`family_resamples`).
    """
    delta = options["delta"]
    policy = options["policy"]
    potentials = prune_potentials(curves, delta)
    parent_excess, member_excess = excess_errors(curves)
    deployed_ratio = (
        curves.ratios[curves.member_index(curves.deployed)] if curves.deployed is not None else None
    )
    return {
        "parent": curves.parent,
        "members": list(curves.members),
        "ratios": list(curves.ratios),
        "views": list(curves.views),
        "parent_accuracy": list(curves.parent_accuracy),
        "accuracy": [list(row) for row in curves.accuracy],
        "delta": delta,
        "delta_band": [a - delta for a in curves.parent_accuracy],
        "potentials": potentials,
        "summary": potential_summary(potentials),
        "policy": policy,
        "policy_potential": policy_potential(potentials, policy),
        "excess_error": {
            "parent": parent_excess,
            "members": list(member_excess),
            "difference": [e - parent_excess for e in member_excess],
        },
        "deployed": curves.deployed,
        "deployed_ratio": deployed_ratio,
        "mode": _mode(options),
        **_intervals(curves, options, potentials, policy, parent_excess, member_excess, n_resamples, seed),
    }


def _intervals(curves, options, potentials, policy, parent_excess, member_excess, n_resamples, seed) -> dict:
    if _mode(options) == "point" or curves.deployed is None or curves.correct is None:
        return {}
    draws = family_resamples(curves, options, n_resamples=n_resamples, seed=seed)
    difference = member_excess[curves.member_index(curves.deployed)] - parent_excess
    return {"intervals": {
        "policy_potential": list(percentile_interval(draws["potential"], policy_potential(potentials, policy))),
        "excess_difference": list(percentile_interval(draws["excess_difference"], difference)),
        "n_resamples": n_resamples,
    }}
