"""Pruning methods of the seed papers, on top of ``torch.nn.utils.prune``.

Every method takes a model and a prune ``ratio`` in [0, 1) and returns a pruned
*copy* (the input is not modified) whose masks are made permanent with
``prune.remove``: plain parameters with exact zeros, which save as ordinary
state dicts and which :func:`prunecheck.nn.models.zero_mask` reads back.

Unstructured methods (ratio = fraction of the prunable *weights*, counted over
every Conv/Linear weight the method considers, the classifier included):

- ``global_magnitude`` (WT, seed 002 Table 1; Han et al. 2015 / Renda et al.
  2020): global L1 over all weights, the ``round(ratio * n)`` smallest |w| go.
- ``random_unstructured``: ``round(ratio * n)`` weights drawn uniformly (seeded).

Structured methods (ratio = fraction of the *output filters* of the
convolutions they consider; the final classifier is never pruned, see
:mod:`prunecheck.nn.layers`). A pruned filter is removed as a whole: its
conv weights and bias are zeroed, and so are ``gamma`` and ``beta`` of the
BatchNorm that follows it, so the channel outputs exactly 0 whatever the
running statistics (zeroing the conv alone would leave BN's constant offset).

- ``l1_filter`` (FT, seed 002; Li et al. 2017): per layer, the filters with the
  smallest L1 norm, ``round(ratio * C_out)`` in every layer.
- ``random_channels``: per layer, ``round(ratio * C_out)`` random filters (seed 000).
- ``bn_scale`` (network slimming, Liu et al. 2017; seed 000): channels ranked by
  the |gamma| of the following BatchNorm, globally over all conv+BN pairs
  (``scope="global"``, ``round(ratio * total)`` channels) or per layer.
- ``ebn_magnitude`` (E[BN] pruning, seed 004 App. A.1): channels ranked by the
  expected post-ReLU BN output E[ReLU(gamma * z + beta)] with z ~ N(0, 1)
  (closed form ``beta * Phi(beta/|gamma|) + |gamma| * phi(beta/|gamma|)``), or by its
  sample mean over a few batches (``estimate="empirical"``); global by default.
- ``hrank`` (Lin et al. 2020; seed 000): per layer, the filters whose
  post-activation feature maps (the ReLU after the conv / its BatchNorm, as the
  authors' ``rank_generation.py`` hooks it; :mod:`prunecheck.pruning.activations`)
  have the lowest matrix rank, averaged over the given batches; equal ranks go
  to the smaller filter L1 norm first.

Shared rules:

- Weights (filters) that are already exactly zero count as pruned first. So
  pruning a pruned model further only adds zeros (the masks of
  :func:`prunecheck.pruning.iterative_prune` are nested), and a parent that is
  already sparser than the target keeps its zeros (it is not "unpruned").
- A structured method leaves at least one filter in every layer (so
  ``round(ratio * C_out)`` is capped at ``C_out - 1``; global rankings skip a
  layer's last filter).
- Ties are broken by position (stable sort), so results are deterministic
  (``hrank`` first breaks equal ranks by filter L1 norm).
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunecheck.nn.layers import (
    check_module,
    conv_bn_pairs,
    filter_layers,
    iter_inputs,
    prunable_layers,
)

__all__ = [
    "METHODS",
    "UNSTRUCTURED_METHODS",
    "STRUCTURED_METHODS",
    "PruneReport",
    "PruneResult",
    "prune",
    "prune_with_report",
    "check_ratio",
    "random_unstructured",
    "random_channels",
    "global_magnitude",
    "l1_filter",
    "bn_scale",
    "ebn_magnitude",
    "hrank",
    "ebn_expected_relu",
]

#: Every method name :func:`prune` accepts.
METHODS: tuple[str, ...] = (
    "global_magnitude",
    "random_unstructured",
    "l1_filter",
    "random_channels",
    "bn_scale",
    "ebn_magnitude",
    "hrank",
)
UNSTRUCTURED_METHODS: tuple[str, ...] = ("global_magnitude", "random_unstructured")
STRUCTURED_METHODS: tuple[str, ...] = ("l1_filter", "random_channels", "bn_scale", "ebn_magnitude", "hrank")
#: Methods that need input batches (``hrank`` always, ``ebn_magnitude`` for its empirical estimate).
DATA_METHODS: tuple[str, ...] = ("hrank", "ebn_magnitude")

Mask = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PruneReport:
    """What a pruning call did.

    Attributes:
        method: The method name.
        ratio: The requested ratio (weights for unstructured methods, filters
            for structured ones).
        structured: True for filter methods.
        zero_weights: Exact zeros among all prunable weights of the model
            (every Conv/Linear weight, as :func:`prunecheck.nn.models.zero_mask` counts).
        prunable_weights: Number of those weights.
        pruned_filters: All-zero output filters among the layers the method
            considered (structured methods; ``None`` otherwise).
        total_filters: Output filters of those layers (``None`` for unstructured).
        layers: Per considered layer: ``(zero weights, weights)`` of its weight.
    """

    method: str
    ratio: float
    structured: bool
    zero_weights: int
    prunable_weights: int
    pruned_filters: int | None = None
    total_filters: int | None = None
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def weight_sparsity(self) -> float:
        """Fraction of all prunable weights that are zero."""
        return self.zero_weights / self.prunable_weights if self.prunable_weights else 0.0

    @property
    def filter_sparsity(self) -> float | None:
        """Fraction of the considered filters that are zero (structured methods)."""
        if self.pruned_filters is None or not self.total_filters:
            return None
        return self.pruned_filters / self.total_filters

    def summary(self) -> str:
        """One line, e.g. ``l1_filter ratio 0.50: 50.0% of filters, 46.9% of weights zero``."""
        text = f"{self.method} ratio {self.ratio:.2f}: "
        if self.filter_sparsity is not None:
            text += f"{100 * self.filter_sparsity:.1f}% of filters, "
        return text + f"{100 * self.weight_sparsity:.1f}% of weights zero"


@dataclass(frozen=True, eq=False)
class PruneResult:
    """A pruned model with its keep-mask and report.

    Attributes:
        module: The pruned copy (plain parameters with exact zeros).
        mask: ``{parameter name: bool keep-mask}`` (True = kept) for every
            parameter the method governs: the considered weights (True where
            non-zero) and, for structured methods, the biases and BatchNorm
            ``weight``/``bias`` of the considered channels. Fine-tuning should
            keep the False entries at zero (:func:`prunecheck.pruning.keep_mask`).
            The entries for Conv/Linear ``.weight`` are what
            :func:`prunecheck.nn.models.apply_mask` accepts (:func:`weight_mask`).
        report: Counts (:class:`PruneReport`).
    """

    module: nn.Module
    mask: Mask
    report: PruneReport


# --------------------------------------------------------------------------- validation


def check_ratio(ratio: Any, what: str = "ratio") -> float:
    """Validate a prune ratio.

    Raises:
        ValueError: ``ratio`` is not a number in [0, 1).
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"{what}: expected a number in [0, 1), found {type(ratio).__name__} {ratio!r}")
    value = float(ratio)
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{what}: expected a prune ratio in [0, 1), found {ratio!r}")
    return value


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, found {value!r}")
    return value


# --------------------------------------------------------------------------- helpers


def _prepare(model: nn.Module) -> nn.Module:
    """A deep copy with any live ``torch.nn.utils.prune`` reparametrisation folded in."""
    check_module(model)
    model = copy.deepcopy(model)
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                torch_prune.remove(module, hook._tensor_name)
    return model


def _count(ratio: float, n: int) -> int:
    """Elements to prune: ``round(ratio * n)`` (Python's round, as torch.nn.utils.prune)."""
    return int(round(ratio * n))


def _filter_view(keep: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return keep.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight)


def _zero_filters(w: torch.Tensor) -> torch.Tensor:
    """bool [C_out]: filters that are entirely zero."""
    return (w.detach().reshape(w.shape[0], -1) == 0).all(dim=1)


def _select_per_layer(scores: Mapping[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Per layer, drop the ``min(round(ratio * C), C - 1)`` lowest scores (bool keep [C])."""
    keeps: dict[str, torch.Tensor] = {}
    for name, s in scores.items():
        c = s.numel()
        k = min(_count(ratio, c), c - 1)
        keep = torch.ones(c, dtype=torch.bool)
        keep[torch.argsort(s, stable=True)[:k]] = False
        keeps[name] = keep
    return keeps


def _select_global(scores: Mapping[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Over all layers, drop the ``round(ratio * total)`` lowest scores, keeping >= 1 per layer."""
    names = list(scores)
    flat = torch.cat([scores[n].double().reshape(-1) for n in names])
    owner = torch.cat([torch.full((scores[n].numel(),), i) for i, n in enumerate(names)])
    offsets = [0]
    for n in names:
        offsets.append(offsets[-1] + scores[n].numel())
    k = _count(ratio, flat.numel())
    room = [scores[n].numel() - 1 for n in names]
    keeps = {n: torch.ones(scores[n].numel(), dtype=torch.bool) for n in names}
    taken = 0
    for idx in torch.argsort(flat, stable=True).tolist():
        if taken >= k:
            break
        layer = int(owner[idx])
        if room[layer] <= 0:
            continue
        room[layer] -= 1
        keeps[names[layer]][idx - offsets[layer]] = False
        taken += 1
    return keeps


def _select(scores: Mapping[str, torch.Tensor], ratio: float, scope: str) -> dict[str, torch.Tensor]:
    scope = _check_choice("scope", scope, ("global", "layer"))
    return _select_global(scores, ratio) if scope == "global" else _select_per_layer(scores, ratio)


def _mark_zero_filters(scores: dict[str, torch.Tensor], layers: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Already-zero filters get score -inf, so they are pruned first."""
    out = {}
    for name, s in scores.items():
        s = s.detach().double().cpu().clone()
        s[_zero_filters(layers[name].weight).cpu()] = -math.inf
        out[name] = s
    return out


def _apply_channels(
    model: nn.Module, layers: Mapping[str, nn.Module], keeps: Mapping[str, torch.Tensor]
) -> Mask:
    """Zero the dropped filters (conv weight, bias, following BN gamma/beta); return the mask."""
    pairs = conv_bn_pairs(model)
    mask: Mask = {}
    for name, conv in layers.items():
        keep = keeps[name].to(conv.weight.device)
        targets: list[tuple[str, nn.Module, str, torch.Tensor]] = [
            (name, conv, "weight", _filter_view(keep, conv.weight))
        ]
        if conv.bias is not None:
            targets.append((name, conv, "bias", keep))
        if name in pairs:
            bn_name, bn = pairs[name]
            if bn.affine:
                targets += [(bn_name, bn, "weight", keep), (bn_name, bn, "bias", keep)]
        for module_name, module, param, m in targets:
            torch_prune.custom_from_mask(module, param, m.to(getattr(module, param).dtype))
            torch_prune.remove(module, param)
            key = f"{module_name}.{param}" if module_name else param
            value = getattr(module, param).detach()
            mask[key] = (value != 0).cpu() if param == "weight" and module is conv else m.cpu().clone()
    return mask


def _weight_mask(layers: Mapping[str, nn.Module]) -> Mask:
    return {(f"{n}.weight" if n else "weight"): (m.weight.detach() != 0).cpu() for n, m in layers.items()}


def _report(
    model: nn.Module,
    method: str,
    ratio: float,
    layers: Mapping[str, nn.Module],
    structured: bool,
) -> PruneReport:
    from prunecheck.nn.models import prunable_weights

    weights = prunable_weights(model)
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    per_layer = {n: (int((m.weight == 0).sum()), m.weight.numel()) for n, m in layers.items()}
    pruned_filters = total_filters = None
    if structured:
        pruned_filters = sum(int(_zero_filters(m.weight).sum()) for m in layers.values())
        total_filters = sum(m.weight.shape[0] for m in layers.values())
    return PruneReport(
        method=method, ratio=ratio, structured=structured, zero_weights=zeros,
        prunable_weights=total, pruned_filters=pruned_filters, total_filters=total_filters,
        layers=per_layer,
    )


def _need_layers(layers: Mapping[str, nn.Module], method: str, what: str) -> None:
    if not layers:
        raise ValueError(f"{method}: expected at least one {what} to prune, found none")


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _run_batches(model: nn.Module, batches: Iterable[Any], max_batches: int | None, what: str) -> int:
    """Forward the batches in eval mode without gradients; returns how many ran."""
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches: expected a positive integer or None, found {max_batches!r}")
    device = _device(model)
    was_training = model.training
    model.eval()
    n = 0
    try:
        with torch.no_grad():
            for x in iter_inputs(batches, what):
                model(x.to(device))
                n += 1
                if max_batches is not None and n >= max_batches:
                    break
    finally:
        model.train(was_training)
    return n


def _means(
    sums: Mapping[str, torch.Tensor], counts: Mapping[str, int], layers: Mapping[str, nn.Module], method: str
) -> dict[str, torch.Tensor]:
    silent = [n for n in layers if n not in sums]
    if silent:
        raise ValueError(
            f"{method}: layers {silent[:5]} produced no output on the batches (not used in forward?); "
            "exclude them"
        )
    return {n: sums[n] / counts[n] for n in layers}


# --------------------------------------------------------------------------- unstructured


def _global_magnitude(model: nn.Module, ratio: float, *, exclude: Sequence[str] = ()) -> PruneResult:
    ratio = check_ratio(ratio)
    model = _prepare(model)
    layers = prunable_layers(model, exclude)
    _need_layers(layers, "global_magnitude", "Conv/Linear layer")
    params = [(m, "weight") for m in layers.values()]
    k = _count(ratio, sum(m.weight.numel() for m in layers.values()))
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=k)
    for m, name in params:
        torch_prune.remove(m, name)
    return PruneResult(model, _weight_mask(layers), _report(model, "global_magnitude", ratio, layers, False))


def _random_unstructured(
    model: nn.Module, ratio: float, *, seed: int, exclude: Sequence[str] = ()
) -> PruneResult:
    ratio = check_ratio(ratio)
    model = _prepare(model)
    layers = prunable_layers(model, exclude)
    _need_layers(layers, "random_unstructured", "Conv/Linear layer")
    gen = torch.Generator().manual_seed(int(seed))
    scores = {}
    for m in layers.values():
        w = m.weight.detach()
        # uniform scores in [1, 2); existing zeros score 0 so they go first
        s = 1.0 + torch.rand(w.shape, generator=gen, dtype=torch.float64)
        s[(w == 0).cpu()] = 0.0
        scores[(m, "weight")] = s.to(w.device)
    params = list(scores)
    k = _count(ratio, sum(m.weight.numel() for m in layers.values()))
    torch_prune.global_unstructured(
        params, pruning_method=torch_prune.L1Unstructured, importance_scores=scores, amount=k
    )
    for m, name in params:
        torch_prune.remove(m, name)
    return PruneResult(model, _weight_mask(layers), _report(model, "random_unstructured", ratio, layers, False))


# --------------------------------------------------------------------------- structured


def _structured(
    method: str,
    model: nn.Module,
    ratio: float,
    exclude: Sequence[str],
    score: Callable[[nn.Module, dict[str, nn.Module]], dict[str, torch.Tensor]],
    scope: str,
    need_bn: bool = False,
) -> PruneResult:
    ratio = check_ratio(ratio)
    model = _prepare(model)
    layers = filter_layers(model, exclude)
    if need_bn:
        pairs = conv_bn_pairs(model)
        layers = {n: m for n, m in layers.items() if n in pairs and pairs[n][1].affine}
        _need_layers(layers, method, "convolution followed by an affine BatchNorm")
    else:
        _need_layers(layers, method, "convolution (the final classifier is never filter-pruned)")
    scores = _mark_zero_filters(score(model, layers), layers)
    keeps = _select(scores, ratio, scope)
    mask = _apply_channels(model, layers, keeps)
    return PruneResult(model, mask, _report(model, method, ratio, layers, True))


def _l1_filter(model: nn.Module, ratio: float, *, exclude: Sequence[str] = ()) -> PruneResult:
    def score(_: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        return {n: m.weight.detach().abs().reshape(m.weight.shape[0], -1).sum(1) for n, m in layers.items()}

    return _structured("l1_filter", model, ratio, exclude, score, "layer")


def _random_channels(
    model: nn.Module, ratio: float, *, seed: int, exclude: Sequence[str] = ()
) -> PruneResult:
    gen = torch.Generator().manual_seed(int(seed))

    def score(_: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        return {n: torch.rand(m.weight.shape[0], generator=gen, dtype=torch.float64) for n, m in layers.items()}

    return _structured("random_channels", model, ratio, exclude, score, "layer")


def _bn_scale(
    model: nn.Module, ratio: float, *, scope: Literal["global", "layer"] = "global", exclude: Sequence[str] = ()
) -> PruneResult:
    def score(m: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        pairs = conv_bn_pairs(m)
        return {n: pairs[n][1].weight.detach().abs() for n in layers}

    return _structured("bn_scale", model, ratio, exclude, score, scope, need_bn=True)


def ebn_expected_relu(gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """E[ReLU(gamma * z + beta)] for z ~ N(0, 1), elementwise (seed 004, App. A.1).

    The BN output of a channel is approximated as N(beta, gamma^2); after the
    ReLU it is 0 or a normal truncated at 0, so its expectation is
    ``beta * Phi(beta / s) + s * phi(beta / s)`` with ``s = |gamma|``
    (``max(beta, 0)`` when ``gamma == 0``).

    Args:
        gamma: BN scale, any shape.
        beta: BN shift, same shape.

    Returns:
        float64 tensor of that shape, >= 0.

    Example:
        >>> float(ebn_expected_relu(torch.tensor([1.0]), torch.tensor([0.0]))[0])  # 1/sqrt(2 pi)
        0.3989422804014327
    """
    g = gamma.detach().double().abs()
    b = beta.detach().double()
    safe = torch.where(g > 0, g, torch.ones_like(g))
    t = b / safe
    normal = torch.distributions.Normal(torch.zeros_like(t), torch.ones_like(t))
    value = b * normal.cdf(t) + g * torch.exp(normal.log_prob(t))
    return torch.where(g > 0, value, b.clamp(min=0.0))


def _ebn_magnitude(
    model: nn.Module,
    ratio: float,
    batches: Iterable[Any] | None = None,
    *,
    estimate: Literal["closed_form", "empirical"] | None = None,
    scope: Literal["global", "layer"] = "global",
    exclude: Sequence[str] = (),
    max_batches: int | None = None,
) -> PruneResult:
    if estimate is None:
        estimate = "closed_form" if batches is None else "empirical"
    _check_choice("estimate", estimate, ("closed_form", "empirical"))
    if estimate == "empirical" and batches is None:
        raise ValueError("ebn_magnitude: estimate='empirical' needs input batches, found batches=None")
    if estimate == "closed_form" and batches is not None:
        raise ValueError(
            "ebn_magnitude: estimate='closed_form' uses only the BN parameters; "
            "pass batches=None, or estimate='empirical' to measure on the batches"
        )

    def score(m: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        pairs = conv_bn_pairs(m)
        if estimate == "closed_form":
            return {n: ebn_expected_relu(pairs[n][1].weight, pairs[n][1].bias) for n in layers}
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}

        def hook_for(name: str) -> Callable[..., None]:
            def hook(_module: nn.Module, _inp: Any, out: torch.Tensor) -> None:
                a = torch.relu(out.detach()).double().transpose(0, 1).reshape(out.shape[1], -1)
                sums[name] = sums.get(name, 0) + a.sum(1).cpu()
                counts[name] = counts.get(name, 0) + a.shape[1]
            return hook

        handles = [pairs[n][1].register_forward_hook(hook_for(n)) for n in layers]
        try:
            _run_batches(m, batches, max_batches, "ebn_magnitude batches")  # type: ignore[arg-type]
        finally:
            for h in handles:
                h.remove()
        return _means(sums, counts, layers, "ebn_magnitude")

    return _structured("ebn_magnitude", model, ratio, exclude, score, scope, need_bn=True)


def _hrank(
    model: nn.Module,
    ratio: float,
    batches: Iterable[Any],
    *,
    exclude: Sequence[str] = (),
    max_batches: int | None = None,
) -> PruneResult:
    if batches is None:
        raise ValueError("hrank: expected input batches to measure feature-map ranks on, found None")

    def score(m: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        from prunecheck.pruning.activations import activation_maps, conv_activations

        bad = [n for n, conv in layers.items() if not isinstance(conv, nn.Conv2d)]
        if bad:
            raise ValueError(f"hrank: expected Conv2d layers (2D feature maps), found others: {bad[:5]}; exclude them")
        targets = conv_activations(m, layers)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}

        def on_output(name: str, out: torch.Tensor) -> None:
            ranks = torch.linalg.matrix_rank(out.detach().float())  # [N, C], per map [H, W]
            sums[name] = sums.get(name, 0) + ranks.double().sum(0).cpu()
            counts[name] = counts.get(name, 0) + out.shape[0]

        activation_maps(m, targets, lambda net: _run_batches(net, batches, max_batches, "hrank batches"), on_output)
        means = _means(sums, counts, layers, "hrank")
        return {n: _rank_then_l1(means[n], layers[n].weight) for n in layers}

    return _structured("hrank", model, ratio, exclude, score, "layer")


def _rank_then_l1(mean_rank: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Position of each filter in the order (mean rank, then filter L1 norm, then index), as float64 [C].

    Equal mean ranks are common (maps of small spatial size, dead channels), so
    ties go to the filter with the smaller L1 norm, and only then to position.
    """
    l1 = weight.detach().abs().reshape(weight.shape[0], -1).sum(1).double().cpu()
    order = sorted(range(mean_rank.numel()), key=lambda c: (float(mean_rank[c]), float(l1[c]), c))
    position = torch.empty(mean_rank.numel(), dtype=torch.float64)
    position[torch.tensor(order)] = torch.arange(mean_rank.numel(), dtype=torch.float64)
    return position


# --------------------------------------------------------------------------- public API

_IMPL: dict[str, Callable[..., PruneResult]] = {
    "global_magnitude": _global_magnitude,
    "random_unstructured": _random_unstructured,
    "l1_filter": _l1_filter,
    "random_channels": _random_channels,
    "bn_scale": _bn_scale,
    "ebn_magnitude": _ebn_magnitude,
    "hrank": _hrank,
}


def prune_with_report(model: nn.Module, method: str, ratio: float, **kwargs: Any) -> PruneResult:
    """Prune a copy of ``model`` with a named method; return it with mask and report.

    Args:
        model: The network (not modified).
        method: One of :data:`METHODS`.
        ratio: Fraction in [0, 1): of weights (unstructured) or filters (structured).
        **kwargs: The method's options (``seed``, ``exclude``, ``batches``,
            ``scope``, ``estimate``, ``max_batches``).

    Raises:
        ValueError: Unknown method, ratio outside [0, 1), an option the method
            does not take, or a model without layers the method can prune.
    """
    if method not in _IMPL:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, found {method!r}")
    impl = _IMPL[method]
    check_ratio(ratio)
    try:
        inspect.signature(impl).bind(model, ratio, **kwargs)
    except TypeError as exc:
        options = [p for p in inspect.signature(impl).parameters if p not in ("model", "ratio")]
        raise ValueError(f"{method}: {exc}; its options are {options}") from None
    return impl(model, ratio, **kwargs)


def prune(model: nn.Module, method: str, ratio: float, **kwargs: Any) -> nn.Module:
    """Prune a copy of ``model`` with a named method (see :func:`prune_with_report`).

    Example:
        >>> pruned = prune(net, "global_magnitude", 0.8)  # doctest: +SKIP
    """
    return prune_with_report(model, method, ratio, **kwargs).module


def global_magnitude(model: nn.Module, ratio: float, *, exclude: Sequence[str] = ()) -> nn.Module:
    """WT: zero the ``round(ratio * n)`` smallest-|w| weights over all Conv/Linear weights.

    Args:
        model: The network (not modified).
        ratio: Fraction in [0, 1) of the considered weights to zero.
        exclude: Module names to leave alone.

    Returns:
        The pruned copy.
    """
    return _global_magnitude(model, ratio, exclude=exclude).module


def random_unstructured(model: nn.Module, ratio: float, *, seed: int, exclude: Sequence[str] = ()) -> nn.Module:
    """Zero ``round(ratio * n)`` uniformly drawn weights over all Conv/Linear weights (seeded)."""
    return _random_unstructured(model, ratio, seed=seed, exclude=exclude).module


def l1_filter(model: nn.Module, ratio: float, *, exclude: Sequence[str] = ()) -> nn.Module:
    """FT: in every conv layer zero the ``round(ratio * C_out)`` filters of smallest L1 norm."""
    return _l1_filter(model, ratio, exclude=exclude).module


def random_channels(model: nn.Module, ratio: float, *, seed: int, exclude: Sequence[str] = ()) -> nn.Module:
    """In every conv layer zero ``round(ratio * C_out)`` random output filters (seeded)."""
    return _random_channels(model, ratio, seed=seed, exclude=exclude).module


def bn_scale(
    model: nn.Module, ratio: float, *, scope: Literal["global", "layer"] = "global", exclude: Sequence[str] = ()
) -> nn.Module:
    """Network slimming: zero the channels with the smallest |gamma| of the following BN.

    Only convolutions followed by an affine BatchNorm are considered; the
    pruned channels' conv filter, conv bias and BN gamma/beta are zeroed.
    """
    return _bn_scale(model, ratio, scope=scope, exclude=exclude).module


def ebn_magnitude(
    model: nn.Module,
    ratio: float,
    batches: Iterable[Any] | None = None,
    *,
    estimate: Literal["closed_form", "empirical"] | None = None,
    scope: Literal["global", "layer"] = "global",
    exclude: Sequence[str] = (),
    max_batches: int | None = None,
) -> nn.Module:
    """E[BN] pruning (seed 004): zero the channels of smallest expected post-ReLU BN output.

    Args:
        model: The network (not modified).
        ratio: Fraction in [0, 1) of the considered channels (conv + BN pairs).
        batches: Input batches (tensors [B, C, H, W] or (x, y) pairs); only for
            ``estimate="empirical"``.
        estimate: ``"closed_form"`` (the paper's: :func:`ebn_expected_relu` from
            gamma and beta) or ``"empirical"`` (mean of ReLU(BN output) per channel
            over the batches). Default: empirical when batches are given, else closed form.
        scope: Rank channels over the whole network (default) or per layer.
        exclude: Module names to leave alone.
        max_batches: Use at most this many batches.
    """
    return _ebn_magnitude(
        model, ratio, batches, estimate=estimate, scope=scope, exclude=exclude, max_batches=max_batches
    ).module


def hrank(
    model: nn.Module,
    ratio: float,
    batches: Iterable[Any],
    *,
    exclude: Sequence[str] = (),
    max_batches: int | None = None,
) -> nn.Module:
    """HRank: per conv layer zero the filters whose activation maps have the lowest mean rank.

    The rank of each feature map [H, W] after the activation that follows the
    conv (through its BatchNorm or a residual add; found with ``torch.fx``) is
    ``torch.linalg.matrix_rank``, averaged over all images of the batches. Equal
    mean ranks: the filter with the smaller L1 norm goes first, then position.

    Raises:
        ValueError: a considered conv has no activation after it (exclude it).
    """
    return _hrank(model, ratio, batches, exclude=exclude, max_batches=max_batches).module
