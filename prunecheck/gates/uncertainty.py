"""Uncertainty drift (SPEC 4.2; seeds 000, 001, 003): methods, uncertainties and gates.

The suite ``suites/test_uncertainty.py`` only declares the test nodes; the session
gathers the predictions a method uses (:mod:`prunecheck.session.uncertainty`). This
module is pure: from those predictions and ``[gates.uncertainty]`` it computes the
per-sample uncertainties and returns each node's
:class:`~prunecheck.gates.decide.Outcome` (:func:`drift`, :func:`ood`, :func:`blur`):
gate results plus the report entry.

Methods (``pairs[].methods``):

- ``msp``: the model's class probabilities as configured (for an ensemble entry,
  its combined distribution); uncertainty ``u = 1 - max p``.
- ``mc_dropout``: ``mc_passes`` seeded forward passes with only the dropout
  modules in train mode (BatchNorm stays in eval; the engine does this); the
  prediction is the mean of the passes' probabilities. Needs a dropout module
  in both models, else the test fails closed.
- ``ensemble``: both models are ensemble entries; their members are combined as
  the model entry says (``ensemble_average = "probs"``, the default, or
  ``"logits"``: softmax of the mean logits, seed 000's Eq. 6).

Uncertainty for AUSE and the blur check (``[gates.uncertainty] ause_uncertainty``):
``"msp"`` (``1 - max p`` of the combined prediction) or ``"variance"``: the
variance over passes / members of the probability of the predicted class
(population variance, 1/M). The ``msp`` method has a single prediction and
always uses ``1 - max p``.

Protocols (``[gates.uncertainty] protocol``), for ``mc_dropout`` and ``ensemble``:

- ``"prunecheck"`` (default): mean of the probabilities (or the ensemble entry's
  ``ensemble_average``), uncertainty from ``ause_uncertainty``, ECE on ``max p``.
- ``"seed000"``: seed 000's protocol, to compare with its tables: the prediction
  is the softmax of the mean logits (Eq. 6), the uncertainty the variance over
  passes / members of the predicted class's log-softmax output
  (:data:`LOGIT_VARIANCE`; Eq. 6 takes raw logits, which prunecheck does not
  cache: log-softmax = logits minus each pass's log-sum-exp), and the ECE bins
  ``1 - u`` with ``u`` min-max normalised to [0, 1] over the test set (Sec. 6.1:
  "we normalize the uncertainty prediction of MC dropout and bootstrapped
  ensembles into the range [0,1]"). ``ause_uncertainty`` is then not used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

from prunecheck import metrics
from prunecheck.core.errors import GateError
from prunecheck.gates.decide import (
    COMPUTE_ERRORS, Direction, GateResult, Outcome, Unavailable, cannot_compute, decide, fail_closed, failed_closed,
)

if TYPE_CHECKING:
    from prunecheck.engine.predictor import Predictions
    from prunecheck.nn.models import LoadedModel

SUITE = "uncertainty"
METHODS: tuple[str, ...] = ("msp", "mc_dropout", "ensemble")
UNCERTAINTY_KINDS: tuple[str, ...] = ("msp", "variance")
#: Uncertainty of the seed000 protocol: predicted class's variance over log-softmax outputs.
LOGIT_VARIANCE = "logit_variance"
PROTOCOLS: tuple[str, ...] = ("prunecheck", "seed000")
#: Methods whose predictions have several members / passes (disagreement, variance).
MEMBER_METHODS: tuple[str, ...] = ("mc_dropout", "ensemble")
CONFIDENCE = 0.95


# --------------------------------------------------------------------------- predictions
def method_problem(method: str, parent: "LoadedModel", pruned: "LoadedModel", *, mc_passes: int) -> str | None:
    """Why ``method`` cannot be applied to these models, or None when it can.

    Args:
        method: one of :data:`METHODS`.
        parent: the loaded parent model.
        pruned: the loaded pruned model.
        mc_passes: ``[gates.uncertainty] mc_passes``.

    Returns:
        A sentence saying what was expected and found, or None.
    """
    if method not in METHODS:
        return f"unknown uncertainty method {method!r}; expected one of {', '.join(METHODS)}"
    if method == "mc_dropout":
        if isinstance(mc_passes, bool) or not isinstance(mc_passes, int) or mc_passes < 2:
            return f"MC dropout needs [gates.uncertainty] mc_passes >= 2, found {mc_passes!r}"
        without = [m.name for m in (parent, pruned) if not m.has_dropout]
        if without:
            names = " and ".join(f"'{n}'" for n in without)
            return (
                f"method 'mc_dropout' is configured, but model {names} contains no dropout module "
                "(torch.nn.Dropout, Dropout1d/2d/3d, AlphaDropout), so every MC pass would be identical; "
                "remove 'mc_dropout' from this pair's methods or use a model with dropout"
            )
    if method == "ensemble":
        single = [m.name for m in (parent, pruned) if not m.is_ensemble]
        if single:
            names = " and ".join(f"'{n}'" for n in single)
            return f"method 'ensemble' needs ensemble entries (models with 'members'), found single model {names}"
    return None


def check_protocol(options: Mapping[str, Any]) -> str:
    """``[gates.uncertainty] protocol``, validated.

    Raises:
        GateError: not one of :data:`PROTOCOLS`.
    """
    protocol = options["protocol"]
    if protocol not in PROTOCOLS:
        raise GateError(
            f"[gates.uncertainty] protocol: expected one of {', '.join(PROTOCOLS)}, found {protocol!r}"
        )
    return protocol


def seed000(method: str, options: Mapping[str, Any]) -> bool:
    """True when seed 000's protocol applies: ``protocol = "seed000"`` and a member method."""
    return method in MEMBER_METHODS and check_protocol(options) == "seed000"


def with_protocol(predictions: "Predictions", method: str, options: Mapping[str, Any]) -> "Predictions":
    """Predictions combined as the protocol says: softmax of the mean logits under seed000 (Eq. 6)."""
    import dataclasses

    if seed000(method, options) and predictions.average != "logits":
        return dataclasses.replace(predictions, average="logits")
    return predictions


#: MC passes whose probabilities differ by less than this everywhere count as identical (float noise).
IDENTICAL_PASSES_ATOL = 1e-6


def check_passes_differ(predictions: "Predictions") -> None:
    """Fail closed when MC dropout passes are identical: dropout was not really on.

    A model traced with ``torch.jit.trace`` in eval mode has its dropout baked
    out: switching its dropout submodules to train mode changes nothing, and
    variance / disagreement would be 0 for a meaningless reason.

    Raises:
        GateError: every pass gives the same probabilities (within
            :data:`IDENTICAL_PASSES_ATOL`).
    """
    member = predictions.member_probs
    if member.shape[0] >= 2 and float((member - member[:1]).abs().max()) <= IDENTICAL_PASSES_ATOL:
        raise GateError(
            f"model '{predictions.model}': its {member.shape[0]} MC dropout passes are identical (largest "
            f"difference <= {IDENTICAL_PASSES_ATOL:g}), so dropout did not act at inference; a TorchScript "
            "model made with torch.jit.trace has dropout compiled out (use torch.jit.script or a state_dict "
            "model), or remove 'mc_dropout' from this pair's methods"
        )


# --------------------------------------------------------------------------- uncertainties
def uncertainty_kind(method: str, ause_uncertainty: str, protocol: str = "prunecheck") -> str:
    """The per-sample uncertainty a method uses: ``msp`` always for MSP; for MC dropout and
    ensembles :data:`LOGIT_VARIANCE` under the seed000 protocol, else the configured kind."""
    if ause_uncertainty not in UNCERTAINTY_KINDS:
        raise GateError(
            f"[gates.uncertainty] ause_uncertainty: expected one of {', '.join(UNCERTAINTY_KINDS)}, "
            f"found {ause_uncertainty!r}"
        )
    check_protocol({"protocol": protocol})
    if method == "msp":
        return "msp"
    return LOGIT_VARIANCE if (protocol == "seed000" and method in MEMBER_METHODS) else ause_uncertainty


def _kind(method: str, options: Mapping[str, Any]) -> str:
    return uncertainty_kind(method, options["ause_uncertainty"], options["protocol"])


def predicted_class_variance(member_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Variance over members of the probability of the predicted class (seed 000, Eq. 6).

    Args:
        member_probs: float [M, N, C] per member / MC pass.
        probs: float [N, C] combined prediction; its argmax is the predicted class.

    Returns:
        float64 [N]: ``mean_m (p_m[k] - mean_m p_m[k])^2`` with ``k = argmax probs``.
    """
    k = probs.argmax(dim=1)
    picked = member_probs.to(torch.float64).gather(2, k.view(1, -1, 1).expand(member_probs.shape[0], -1, 1))[..., 0]
    return picked.var(dim=0, unbiased=False)


def per_sample_uncertainty(predictions: "Predictions", kind: str) -> torch.Tensor:
    """float64 [N] predicted uncertainty, higher = less certain.

    Kinds: ``msp`` (``1 - max p``), ``variance`` (over the members' probabilities)
    and :data:`LOGIT_VARIANCE` (over their log-softmax outputs, seed 000 Eq. 6).

    Raises:
        GateError: a variance kind on predictions with a single member / pass.
    """
    if kind == "msp":
        return 1.0 - predictions.probs.to(torch.float64).amax(dim=1)
    if kind in ("variance", LOGIT_VARIANCE):
        if predictions.num_members < 2:
            raise GateError(
                f"{kind} uncertainty needs several members or MC passes, found {predictions.num_members} "
                f"for model '{predictions.model}'"
            )
        members = predictions.member_probs if kind == "variance" else predictions.log_probs
        return predicted_class_variance(members, predictions.probs)
    raise GateError(f"uncertainty kind: expected one of {', '.join(UNCERTAINTY_KINDS)}, found {kind!r}")


def per_sample_entropy(probs: torch.Tensor) -> torch.Tensor:
    """float64 [N] entropy of each row, nats (0 log 0 = 0)."""
    q = probs.to(torch.float64)
    return -torch.special.xlogy(q, q).sum(dim=-1)


def per_sample_disagreement(member_probs: torch.Tensor) -> torch.Tensor:
    """float64 [N]: mean over members of KL(member || mean of members) (seed 001)."""
    q = member_probs.to(torch.float64)
    mean = q.mean(dim=0, keepdim=True).expand_as(q)
    kl = (torch.special.xlogy(q, q) - torch.special.xlogy(q, mean)).sum(dim=-1)
    return kl.clamp_min(0.0).mean(dim=0)


def normalised_confidence(u: torch.Tensor) -> torch.Tensor:
    """float64 [N] ``1 - (u - min u) / (max u - min u)``: seed 000's uncertainty "normalized into
    the range [0, 1]" (Sec. 6.1), as a confidence for the ECE; 1 everywhere when u is constant."""
    u = u.to(torch.float64)
    span = float(u.max() - u.min())
    return torch.ones_like(u) if span <= 0 else 1.0 - (u - u.min()) / span


def uncertainty_ece(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """ECE of a given per-sample confidence, with :func:`prunecheck.metrics.ece`'s bins.

    ``sum_b (|B_b| / N) * |acc(B_b) - mean confidence(B_b)|``, bin b holding
    ``b/n <= c < (b+1)/n`` and the last bin also ``c = 1``.
    """
    return float(_ece_kernel(confidence, correct, n_bins)(torch.arange(len(confidence)).view(1, -1))[0])


def _ece_kernel(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int) -> Statistic:
    """Statistic: ECE of the rows ``idx`` [R, N] of (confidence, correct), per resample."""
    from prunecheck.metrics.classification import _bin_index, _check_n_bins

    n_bins = _check_n_bins(n_bins)
    conf = confidence.to(torch.float64)
    gap_all = correct.to(torch.float64) - conf
    bins = _bin_index(conf, n_bins)

    def statistic(idx: torch.Tensor) -> torch.Tensor:
        rows = idx.shape[0]
        where = (bins[idx] + n_bins * torch.arange(rows).view(-1, 1)).reshape(-1)
        per_bin = torch.zeros(rows * n_bins, dtype=torch.float64).index_add_(0, where, gap_all[idx].reshape(-1))
        return per_bin.view(rows, n_bins).abs().sum(dim=1) / idx.shape[1]

    return statistic


def _bins_of(conf: torch.Tensor, correct: torch.Tensor, n_bins: int):
    """:class:`~prunecheck.metrics.classification.CalibrationBins` of a given confidence."""
    from prunecheck.metrics.classification import CalibrationBins, _bin_index

    conf = conf.to(torch.float64)
    index = _bin_index(conf, n_bins)
    counts = torch.bincount(index, minlength=n_bins).double().numpy()
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, conf).numpy()
    hit_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct.double()).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return CalibrationBins(np.arange(n_bins + 1) / n_bins, counts,
                               np.where(counts > 0, hit_sum / counts, np.nan),
                               np.where(counts > 0, conf_sum / counts, np.nan))


def calibration_inputs(
    predictions: "Predictions", method: str, options: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence float64 [N], correct bool [N]) the ECE bins: ``max p``, or under the seed000
    protocol ``1 -`` the min-max normalised :data:`LOGIT_VARIANCE`."""
    p = predictions.probs
    correct = p.argmax(dim=1) == predictions.labels
    if seed000(method, options):
        return normalised_confidence(per_sample_uncertainty(predictions, LOGIT_VARIANCE)), correct
    return p.to(torch.float64).amax(dim=1), correct


# --------------------------------------------------------------------------- summaries
def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=np.float64)]


def summary(
    predictions: "Predictions", *, kind: str, n_bins: int, steps: int,
    confidence: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Accuracy / AUSE / ECE / NLL / Brier plus the curves behind them (JSON-able).

    Returns:
        ``{"accuracy", "ause", "ece", "nll", "brier", "members", "sparsification":
        {"fractions", "pred_errors", "oracle_errors"}, "reliability": {"edges",
        "counts", "accuracy", "confidence"}}``; empty bins have ``None``.
        ``confidence``: (confidence, correct) for the ECE and reliability bins
        instead of ``max p`` (:func:`calibration_inputs`).
    """
    p, y = predictions.probs, predictions.labels
    u = per_sample_uncertainty(predictions, kind)
    curves = metrics.sparsification_curves(p, y, uncertainty=u, steps=steps)
    if confidence is None:
        bins, ece = metrics.calibration_bins(p, y, n_bins=n_bins), metrics.ece(p, y, n_bins=n_bins)
    else:  # the same bins as metrics.calibration_bins, on the given confidence
        conf, correct = confidence
        bins, ece = _bins_of(conf, correct, n_bins), uncertainty_ece(conf, correct, n_bins)
    return {
        "accuracy": metrics.accuracy(p, y),
        "ause": metrics.ause(p, y, uncertainty=u, steps=steps),
        "ece": ece,
        "nll": metrics.nll(p, y),
        "brier": metrics.brier(p, y),
        "members": predictions.num_members,
        "sparsification": {
            "fractions": _finite_or_none(curves.fractions),
            "pred_errors": _finite_or_none(curves.pred_errors),
            "oracle_errors": _finite_or_none(curves.oracle_errors),
        },
        "reliability": {
            "edges": _finite_or_none(bins.edges),
            "counts": [int(c) for c in bins.counts],
            "accuracy": _finite_or_none(bins.accuracy),
            "confidence": _finite_or_none(bins.confidence),
        },
    }


# --------------------------------------------------------------------------- bootstrap
Statistic = Callable[[torch.Tensor], torch.Tensor]  # int64 indices [R, N] -> float [R]


def paired_interval(
    parent_stat: Statistic, pruned_stat: Statistic, n: int, estimate: float, *,
    n_resamples: int, seed: int, confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of ``pruned_stat - parent_stat`` over paired resamples.

    Both statistics see the SAME resampled indices (the same stream as
    :func:`prunecheck.metrics.paired_bootstrap`); the interval is widened to
    contain ``estimate``.
    """
    from prunecheck.metrics.bootstrap import _index_chunks

    diffs = []
    for chunk in _index_chunks(n, n_resamples, seed):
        idx = torch.from_numpy(chunk)
        diffs.append((pruned_stat(idx) - parent_stat(idx)).double().numpy())
    values = np.concatenate(diffs)
    if not np.all(np.isfinite(values)):
        raise GateError("bootstrap: a resampled value is not finite")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return min(float(low), estimate), max(float(high), estimate)


def _mean_of(values: torch.Tensor) -> Statistic:
    return lambda idx: values[idx].mean(dim=-1)


def _ause_of(probs: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, steps: int) -> Statistic:
    from prunecheck.metrics._resample import ause_kernel

    return ause_kernel(probs, labels, uncertainty=u, steps=steps)


# --------------------------------------------------------------------------- gates
def _decided(
    options: Mapping[str, Any], *, metric: str, threshold_key: str, parent_value: float, pruned_value: float,
    value: float, interval: Callable[[], tuple[float, float]], subject: str, view: str,
) -> GateResult:
    """A degradation (pruned minus parent, must stay <= the threshold) decided in the suite's
    mode; the interval is computed only for ``confident`` / ``lenient``."""
    mode = options["mode"]
    return decide(
        name=SUITE, metric=metric, value=value, threshold=options[threshold_key], threshold_name=threshold_key,
        direction="max", mode=mode, ci=interval() if mode != "point" else None,
        parent=parent_value, pruned=pruned_value, subject=subject, view=view,
    )


def _gate(
    build: Callable[[], GateResult], options: Mapping[str, Any], *, metric: str, threshold_key: str, subject: str,
    view: str,
) -> GateResult:
    """``build()`` through the one fail-closed wrapper (:func:`~prunecheck.gates.decide.fail_closed`)."""
    return fail_closed(build, name=SUITE, metric=metric, threshold=options[threshold_key],
                       threshold_name=threshold_key, subject=subject, view=view)


def drift_gates(
    parent: "Predictions", pruned: "Predictions", options: Mapping[str, Any], *, method: str, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> tuple[list[GateResult], dict[str, Any]]:
    """ΔAUSE, ΔECE and ΔNLL gates of one (pair, method), and the report payload.

    ``parent``/``pruned`` are combined as the protocol says already (:func:`with_protocol`).
    ΔECE and ΔNLL go through :func:`prunecheck.gates.accuracy.degradation`. ΔAUSE does
    too with the MSP uncertainty; with ``variance`` its bootstrap resamples each model's
    own per-sample uncertainty alongside its probabilities.
    """
    from prunecheck.gates.accuracy import degradation

    n_bins, steps = options["ece_bins"], options["ause_steps"]
    kind = _kind(method, options)
    tag = f"[{method}]"
    protocol = check_protocol(options)
    paper = seed000(method, options)
    common = dict(gate=SUITE, subject=subject, n_resamples=n_resamples, seed=seed)
    results = [
        _normalised_ece_gate(parent, pruned, options, method=method, subject=subject, n_resamples=n_resamples,
                             seed=seed) if paper else
        degradation("ece", parent, pruned, options, threshold_key="max_ece_increase", label=f"ECE increase {tag}",
                    metric_kwargs={"n_bins": n_bins}, **common),
        degradation("nll", parent, pruned, options, threshold_key="max_nll_increase",
                    label=f"NLL increase {tag}" + (" (softmax of mean logits)" if paper else ""), **common),
    ]
    label = f"AUSE increase {tag}" + {"variance": " (variance)", LOGIT_VARIANCE: " (seed000: logit variance)"}.get(
        kind, "")
    if kind == "msp":
        results.insert(0, degradation("ause", parent, pruned, options, threshold_key="max_ause_increase",
                                      label=label, metric_kwargs={"steps": steps}, **common))
    else:
        def ause_gate() -> GateResult:  # each model's own variance; the bootstrap resamples it too
            u_parent, u_pruned = per_sample_uncertainty(parent, kind), per_sample_uncertainty(pruned, kind)
            a_parent = metrics.ause(parent.probs, parent.labels, uncertainty=u_parent, steps=steps)
            a_pruned = metrics.ause(pruned.probs, pruned.labels, uncertainty=u_pruned, steps=steps)
            value = a_pruned - a_parent
            return _decided(
                options, metric=label, threshold_key="max_ause_increase", parent_value=a_parent,
                pruned_value=a_pruned, value=value, subject=subject, view=parent.view.id,
                interval=lambda: paired_interval(
                    _ause_of(parent.probs, parent.labels, u_parent, steps),
                    _ause_of(pruned.probs, pruned.labels, u_pruned, steps),
                    len(parent.labels), value, n_resamples=n_resamples, seed=seed,
                ),
            )

        results.insert(0, _gate(ause_gate, options, metric=label, threshold_key="max_ause_increase",
                                subject=subject, view=parent.view.id))
    payload: dict[str, Any] = {"kind": "drift", "method": method, "uncertainty": kind, "protocol": protocol,
                               "ece_confidence": "1 - normalised logit variance" if paper else "max p",
                               "parent_name": parent.model, "pruned_name": pruned.model,
                               "dataset": parent.dataset, "n": int(len(parent.labels))}
    try:
        for role, p in (("parent", parent), ("pruned", pruned)):
            conf = calibration_inputs(p, method, options) if paper else None
            payload[role] = summary(p, kind=kind, n_bins=n_bins, steps=steps, confidence=conf)
    except COMPUTE_ERRORS as exc:
        payload["error"] = str(exc)
    return results, payload


def _normalised_ece_gate(
    parent: "Predictions", pruned: "Predictions", options: Mapping[str, Any], *, method: str, subject: str,
    n_resamples: int, seed: int,
) -> GateResult:
    """ΔECE under the seed000 protocol: bins on ``1 -`` normalised logit variance (seed 000 Sec. 6.1).

    The normalisation (min and max over the test set) is fixed once per model; the
    bootstrap resamples (confidence, correct) pairs on the same indices for both.
    """
    n_bins = options["ece_bins"]
    label = f"ECE increase [{method}] (seed000: 1 - normalised logit variance)"

    def build() -> GateResult:
        (c_parent, hit_parent), (c_pruned, hit_pruned) = (calibration_inputs(p, method, options) for p in (parent, pruned))
        e_parent, e_pruned = uncertainty_ece(c_parent, hit_parent, n_bins), uncertainty_ece(c_pruned, hit_pruned, n_bins)
        value = e_pruned - e_parent
        return _decided(
            options, metric=label, threshold_key="max_ece_increase", parent_value=e_parent, pruned_value=e_pruned,
            value=value, subject=subject, view=parent.view.id,
            interval=lambda: paired_interval(
                _ece_kernel(c_parent, hit_parent, n_bins), _ece_kernel(c_pruned, hit_pruned, n_bins),
                len(c_parent), value, n_resamples=n_resamples, seed=seed),
        )

    return _gate(build, options, metric=label, threshold_key="max_ece_increase", subject=subject,
                 view=parent.view.id)


def ood_gates(
    parent: "Predictions", pruned: "Predictions", options: Mapping[str, Any], *, method: str, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> tuple[list[GateResult], dict[str, Any]]:
    """OOD overconfidence: the pruned model's mean predictive entropy (and, for MC
    dropout / ensembles, disagreement) must not fall below the parent's by more
    than ``ood_max_entropy_drop`` (``ood_max_disagreement_drop``). Labels of the
    OOD data are not used.
    """
    view = f"ood:{parent.dataset}"
    results, payload = [], {"kind": "ood", "method": method, "dataset": parent.dataset,
                            "n": int(len(parent.labels))}
    for (label, key), per_sample in zip(_ood_keys(method), (
        lambda p: per_sample_entropy(p.probs), lambda p: per_sample_disagreement(p.member_probs),
    )):
        label = f"{label} [{method}]"

        def build(label=label, key=key, per_sample=per_sample) -> GateResult:
            for p in (parent, pruned):
                metrics.validate_probs(p.probs)
            v_parent, v_pruned = per_sample(parent), per_sample(pruned)
            m_parent, m_pruned = float(v_parent.mean()), float(v_pruned.mean())
            payload["entropy" if "entropy" in key else "disagreement"] = {"parent": m_parent, "pruned": m_pruned}
            drop = m_parent - m_pruned  # higher is better on OOD data: a drop is a degradation
            return _decided(
                options, metric=label, threshold_key=key, parent_value=m_parent, pruned_value=m_pruned,
                value=drop, subject=subject, view=view,
                interval=lambda: paired_interval(
                    _mean_of(-v_parent), _mean_of(-v_pruned), len(v_parent), drop, n_resamples=n_resamples,
                    seed=seed),
            )

        results.append(_gate(build, options, metric=label, threshold_key=key, subject=subject, view=view))
    return results, payload


def _ood_keys(method: str) -> list[tuple[str, str]]:
    """(label, threshold key) of the OOD gates of ``method``: disagreement only with members / passes."""
    keys = [("OOD entropy drop", "ood_max_entropy_drop")]
    if method in MEMBER_METHODS:
        keys.append(("OOD disagreement drop", "ood_max_disagreement_drop"))
    return keys


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant.

    Example:
        >>> spearman([0, 1, 2, 3], [0.1, 0.2, 0.15, 0.4])
        0.8
    """
    from scipy.stats import rankdata

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"spearman: expected two 1-D sequences of equal length >= 2, found {a.shape} and {b.shape}")
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def blur_gate(
    radii: Sequence[float], parents: Sequence["Predictions"], pruneds: Sequence["Predictions"],
    options: Mapping[str, Any], *, method: str, subject: str = "",
) -> tuple[GateResult, dict[str, Any]]:
    """Mean uncertainty must rise with the blur radius (Spearman >= ``min_blur_spearman``).

    Enforced for the pruned model whenever the parent's own uncertainty rises;
    when it does not, the result passes with the threshold shown as ``-inf`` and
    the reason in the metric label and ``details``. A model whose mean
    uncertainty is constant over the radii has correlation 0 (no rise).
    """
    key = "min_blur_spearman"
    threshold = float(options[key])
    kind = _kind(method, options)
    view = "blur" + ",".join(f"{r:g}" for r in radii)
    label = f"blur uncertainty Spearman [{method}]"
    try:
        u_parent = [float(per_sample_uncertainty(p, kind).mean()) for p in parents]
        u_pruned = [float(per_sample_uncertainty(p, kind).mean()) for p in pruneds]
        rho_parent, rho_pruned = spearman(radii, u_parent), spearman(radii, u_pruned)
    except COMPUTE_ERRORS as exc:
        return failed_closed(
            name=SUITE, metric=label, threshold=threshold, threshold_name=key, direction="min",
            reason=cannot_compute(exc), subject=subject, view=view,
        ), {"kind": "blur", "method": method, "error": str(exc)}
    constant = []
    if all(math.isfinite(v) for v in (*u_parent, *u_pruned)):  # otherwise decide() fails closed
        if math.isnan(rho_parent):
            constant.append("parent")
            rho_parent = 0.0
        if math.isnan(rho_pruned):
            constant.append("pruned")
            rho_pruned = 0.0
    parent_rises = math.isfinite(rho_parent) and rho_parent >= threshold
    details = {"radii": [float(r) for r in radii], "uncertainty": kind, "parent_uncertainty": u_parent,
               "pruned_uncertainty": u_pruned, "parent_spearman": rho_parent, "parent_rises": parent_rises,
               "constant": constant}
    enforced = threshold
    if not parent_rises and math.isfinite(rho_parent):
        why = ("the parent's mean uncertainty is the same at every radius" if "parent" in constant
               else f"the parent's own Spearman {rho_parent:.4f} < {threshold:g}")
        label += f" (not enforced: {why})"
        details["note"] = (f"the parent's uncertainty does not rise with blur ({why}), "
                           "so the pruned model is not held to it")
        enforced = -math.inf
    result = decide(
        name=SUITE, metric=label, value=rho_pruned, threshold=enforced, threshold_name=key, direction="min",
        parent=rho_parent, pruned=rho_pruned, subject=subject, view=view, details=details,
    )
    payload = {"kind": "blur", "method": method, "uncertainty": kind, "radii": details["radii"],
               "parent": {"mean_uncertainty": u_parent, "spearman": rho_parent},
               "pruned": {"mean_uncertainty": u_pruned, "spearman": rho_pruned},
               "parent_rises": parent_rises, "threshold": threshold}
    return result, payload


# --------------------------------------------------------------------------- one test node each
PairPredictions = tuple["Predictions", "Predictions"]
_DRIFT_KEYS = (("AUSE increase", "max_ause_increase"), ("ECE increase", "max_ece_increase"),
               ("NLL increase", "max_nll_increase"))


def _all_closed(options: Mapping[str, Any], subject: str, method: str, keys, reason: str, view: str,
                direction: Direction = "max") -> Outcome:
    return Outcome(results=tuple(
        failed_closed(name=SUITE, metric=f"{label} [{method}]", threshold=options[key], threshold_name=key,
                      direction=direction, reason=f"{reason}; the gate fails closed", subject=subject, view=view)
        for label, key in keys
    ))


def _combined(predictions: PairPredictions, method: str, options: Mapping[str, Any]) -> PairPredictions:
    parent, pruned = predictions
    return with_protocol(parent, method, options), with_protocol(pruned, method, options)


def drift(
    predictions: PairPredictions | Unavailable, options: Mapping[str, Any], *, method: str, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> Outcome:
    """The ``test_uncertainty_drift`` node: ΔAUSE, ΔECE, ΔNLL on nominal data, and the report entry.

    Args:
        predictions: (parent, pruned) predictions of ``method`` on the pair's test set
            (``Pair.uncertainty_predictions``), or why they could not be gathered.
        options: ``[gates.uncertainty]``.
        method: one of :data:`METHODS`.
        subject: the pair's name.
        n_resamples, seed: the paired bootstrap of the ``confident`` / ``lenient`` modes.

    Returns:
        Three gate results and an ``uncertainty`` report entry (``kind = "drift"``); three
        failed-closed results and no entry when the predictions are :class:`Unavailable`.
    """
    if isinstance(predictions, Unavailable):
        return _all_closed(options, subject, method, _DRIFT_KEYS, predictions.reason, "nominal")
    parent, pruned = _combined(predictions, method, options)
    results, payload = drift_gates(parent, pruned, options, method=method, subject=subject,
                                   n_resamples=n_resamples, seed=seed)
    return Outcome(tuple(results), ((SUITE, subject, payload),))


def ood(
    predictions: PairPredictions | Unavailable, options: Mapping[str, Any], *, method: str, subject: str = "",
    n_resamples: int = 1000, seed: int = 0,
) -> Outcome:
    """The ``test_uncertainty_ood`` node: entropy (and disagreement) drop on the pair's OOD
    data (``Pair.ood_predictions``), and the report entry (``kind = "ood"``)."""
    if isinstance(predictions, Unavailable):
        return _all_closed(options, subject, method, _ood_keys(method), predictions.reason, "ood")
    parent, pruned = _combined(predictions, method, options)
    results, payload = ood_gates(parent, pruned, options, method=method, subject=subject,
                                 n_resamples=n_resamples, seed=seed)
    return Outcome(tuple(results), ((SUITE, subject, payload),))


def blur(
    predictions: Sequence[PairPredictions] | Unavailable, options: Mapping[str, Any], *, method: str,
    subject: str = "",
) -> Outcome:
    """The ``test_uncertainty_blur`` node: one (parent, pruned) per ``blur_radii`` radius
    (``Pair.blur_predictions``), the Spearman gate and the report entry (``kind = "blur"``)."""
    radii = [float(r) for r in options["blur_radii"]]  # >= 2 distinct radii >= 0: checked by the options schema
    keys = [("blur uncertainty Spearman", "min_blur_spearman")]
    if isinstance(predictions, Unavailable):
        return _all_closed(options, subject, method, keys, predictions.reason, "blur", direction="min")
    if len(predictions) != len(radii):
        raise ValueError(f"blur: expected one (parent, pruned) per radius ({len(radii)}), found {len(predictions)}")
    combined = [_combined(p, method, options) for p in predictions]
    result, payload = blur_gate(radii, [p for p, _ in combined], [q for _, q in combined], options,
                                method=method, subject=subject)
    return Outcome((result,), ((SUITE, subject, payload),))
