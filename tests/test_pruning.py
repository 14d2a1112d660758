"""Tests of prunecheck.pruning: methods, keep_mask, iterative prune-retrain, family, command.

References are written here independently: numpy sorts for the selections,
numerical integration for the E[BN] closed form, hand-built feature maps of
known rank for HRank.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from torch import nn

from prunecheck.config.loader import parse_settings
from prunecheck.nn.models import apply_mask, load_model, zero_mask
from prunecheck.pruning import (
    METHODS,
    STRUCTURED_METHODS,
    UNSTRUCTURED_METHODS,
    apply_keep_mask,
    build_family,
    check_ratios,
    ebn_expected_relu,
    global_magnitude,
    hrank,
    iterative_prune,
    keep_mask,
    mask_violations,
    prune,
    prune_with_report,
    weight_mask,
)
from prunecheck.config.settings import ModelSpec
from prunecheck.pruning import command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TinyNet(nn.Module):
    """Conv(+bias)-BN-ReLU, Conv-BN-ReLU, pool, Linear head. Input [B, 3, 8, 8]."""

    def __init__(self, c1: int = 6, c2: int = 8, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


CONVS = ("conv1", "conv2")
BNS = {"conv1": "bn1", "conv2": "bn2"}


def _randomise(net: nn.Module, gen: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                sign = torch.where(torch.rand(m.num_features, generator=gen) < 0.2, -1.0, 1.0)
                m.weight.copy_(sign * (0.1 + 1.4 * torch.rand(m.num_features, generator=gen)))
                m.bias.copy_(2 * torch.rand(m.num_features, generator=gen) - 1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return net.eval()


@pytest.fixture
def net() -> TinyNet:
    torch.manual_seed(0)
    return _randomise(TinyNet(), torch.Generator().manual_seed(1))


@pytest.fixture
def batches() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return [torch.randn(4, 3, 8, 8, generator=gen) for _ in range(2)]


def _kwargs(method: str, batches: list[torch.Tensor]) -> dict:
    if method.startswith("random"):
        return {"seed": 3}
    if method == "hrank":
        return {"batches": batches}
    return {}


def _weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every Conv/Linear weight, by an independent walk."""
    return {n: m.weight.detach() for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _zero_filters(w: torch.Tensor) -> np.ndarray:
    return np.array([bool((w[c] == 0).all()) for c in range(w.shape[0])])


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- API surface


def test_method_tables_agree():
    assert set(METHODS) == set(UNSTRUCTURED_METHODS) | set(STRUCTURED_METHODS)
    assert len(METHODS) == 7
    assert command._METHODS == METHODS  # the CLI keeps a torch-free copy


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_bad_ratio_is_rejected(net, ratio):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune(net, "global_magnitude", ratio)


def test_unknown_method_and_option(net):
    with pytest.raises(ValueError, match="expected one of global_magnitude"):
        prune(net, "magnitude", 0.5)
    with pytest.raises(ValueError, match="options are"):
        prune(net, "l1_filter", 0.5, seed=1)
    with pytest.raises(ValueError, match="seed"):
        prune(net, "random_unstructured", 0.5)  # seed is required
    with pytest.raises(ValueError, match="unknown"):
        prune(net, "global_magnitude", 0.5, exclude=["nope"])
    with pytest.raises(ValueError, match="batches"):
        prune(net, "hrank", 0.5, batches=None)


# --------------------------------------------------------------------------- unstructured


@pytest.mark.parametrize("method", UNSTRUCTURED_METHODS)
@pytest.mark.parametrize("ratio", [0.1, 0.33, 0.5, 0.9])
def test_unstructured_target_sparsity(net, batches, method, ratio):
    pruned = prune(net, method, ratio, **_kwargs(method, batches))
    weights = _weights(pruned)
    n = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert zeros == round(ratio * n)


def test_global_magnitude_removes_exactly_the_smallest(net):
    ratio = 0.6
    ref = {n: w.numpy().copy() for n, w in _weights(net).items()}
    flat = np.concatenate([np.abs(w).ravel() for w in ref.values()])
    k = round(ratio * flat.size)
    doomed = np.zeros(flat.size, dtype=bool)
    doomed[np.argsort(flat, kind="stable")[:k]] = True
    pruned = global_magnitude(net, ratio)
    got = np.concatenate([(w.numpy() == 0).ravel() for w in _weights(pruned).values()])
    np.testing.assert_array_equal(got, doomed)
    # the survivors keep their exact values
    kept = np.concatenate([w.numpy().ravel() for w in _weights(pruned).values()])
    orig = np.concatenate([w.ravel() for w in ref.values()])
    np.testing.assert_array_equal(kept[~doomed], orig[~doomed])


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=3),
    ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_global_magnitude_property(shapes, ratio, seed):
    gen = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(i, o) for i, o in shapes]
    with torch.no_grad():
        for layer in layers:  # distinct magnitudes: a unique answer
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64).float())
    model = nn.ModuleList(layers)
    flat = np.concatenate([np.abs(l.weight.detach().numpy()).ravel() for l in layers])
    if len(np.unique(flat)) != flat.size:
        return
    k = round(ratio * flat.size)
    threshold_set = set(np.argsort(flat)[:k].tolist())
    pruned = global_magnitude(model, ratio)
    got = np.concatenate([(l.weight.detach().numpy() == 0).ravel() for l in pruned])
    assert set(np.flatnonzero(got).tolist()) == threshold_set


@pytest.mark.parametrize("method", UNSTRUCTURED_METHODS)
def test_zero_mask_reproduces_unstructured_pruning(net, batches, method):
    pruned = prune(net, method, 0.7, **_kwargs(method, batches))
    rebuilt = apply_mask(net, zero_mask(pruned))
    assert _state_equal(rebuilt.eval(), pruned.eval())


def test_random_unstructured_is_seeded(net):
    a = prune(net, "random_unstructured", 0.5, seed=1)
    b = prune(net, "random_unstructured", 0.5, seed=1)
    c = prune(net, "random_unstructured", 0.5, seed=2)
    assert _state_equal(a, b)
    assert not _state_equal(a, c)


# --------------------------------------------------------------------------- structured

PER_LAYER = ("l1_filter", "random_channels", "hrank")
GLOBAL = ("bn_scale", "ebn_magnitude")


def _check_whole_channels(parent: nn.Module, pruned: nn.Module) -> dict[str, np.ndarray]:
    """Every pruned filter entirely zero (conv, bias, BN), every other filter untouched."""
    out = {}
    for conv in CONVS:
        w0, w1 = getattr(parent, conv).weight.detach(), getattr(pruned, conv).weight.detach()
        dead = _zero_filters(w1)
        for c in range(w0.shape[0]):
            if dead[c]:
                assert (w1[c] == 0).all()
            else:
                assert torch.equal(w1[c], w0[c])
        bn0, bn1 = getattr(parent, BNS[conv]), getattr(pruned, BNS[conv])
        dead_t = torch.from_numpy(dead)
        assert (bn1.weight.detach()[dead_t] == 0).all() and (bn1.bias.detach()[dead_t] == 0).all()
        assert torch.equal(bn1.weight.detach()[~dead_t], bn0.weight.detach()[~dead_t])
        assert torch.equal(bn1.bias.detach()[~dead_t], bn0.bias.detach()[~dead_t])
        assert torch.equal(bn1.running_mean, bn0.running_mean)
        if getattr(parent, conv).bias is not None:
            b1 = getattr(pruned, conv).bias.detach()
            assert (b1[dead_t] == 0).all()
            assert torch.equal(b1[~dead_t], getattr(parent, conv).bias.detach()[~dead_t])
        out[conv] = dead
    assert torch.equal(pruned.fc.weight, parent.fc.weight)  # the classifier is never filter-pruned
    return out


@pytest.mark.parametrize("method", PER_LAYER)
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_per_layer_structured_target(net, batches, method, ratio):
    result = prune_with_report(net, method, ratio, **_kwargs(method, batches))
    dead = _check_whole_channels(net, result.module)
    for conv in CONVS:
        c = getattr(net, conv).out_channels
        assert dead[conv].sum() == min(round(ratio * c), c - 1)
    total = sum(getattr(net, c).out_channels for c in CONVS)
    assert result.report.pruned_filters == sum(d.sum() for d in dead.values())
    assert result.report.total_filters == total
    w = _weights(result.module)
    assert result.report.zero_weights == sum(int((x == 0).sum()) for x in w.values())
    assert result.report.prunable_weights == sum(x.numel() for x in w.values())


@pytest.mark.parametrize("method", GLOBAL)
@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_global_structured_target(net, method, ratio):
    pruned = prune(net, method, ratio)
    dead = _check_whole_channels(net, pruned)
    total = sum(getattr(net, c).out_channels for c in CONVS)
    assert sum(d.sum() for d in dead.values()) == round(ratio * total)


def test_pruned_channel_outputs_zero(net, batches):
    pruned = prune(net, "l1_filter", 0.5)
    dead = torch.from_numpy(_zero_filters(pruned.conv1.weight.detach()))
    with torch.no_grad():
        act = torch.relu(pruned.bn1(pruned.conv1(batches[0])))
    assert (act[:, dead] == 0).all()  # BN's offset is gone too


def test_l1_filter_matches_numpy_reference(net):
    pruned = prune(net, "l1_filter", 0.5)
    for conv in CONVS:
        w = getattr(net, conv).weight.detach().numpy()
        norms = np.abs(w.reshape(w.shape[0], -1)).sum(1)
        k = round(0.5 * w.shape[0])
        expect = np.zeros(w.shape[0], dtype=bool)
        expect[np.argsort(norms, kind="stable")[:k]] = True
        np.testing.assert_array_equal(_zero_filters(getattr(pruned, conv).weight.detach()), expect)


def test_bn_scale_ranks_abs_gamma_globally(net):
    gammas = np.concatenate([np.abs(getattr(net, BNS[c]).weight.detach().numpy()) for c in CONVS])
    k = round(0.5 * gammas.size)
    expect = np.zeros(gammas.size, dtype=bool)
    expect[np.argsort(gammas, kind="stable")[:k]] = True
    pruned = prune(net, "bn_scale", 0.5)
    got = np.concatenate([_zero_filters(getattr(pruned, c).weight.detach()) for c in CONVS])
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("gamma,beta", [(1.0, 0.0), (0.5, 1.0), (-2.0, -1.0), (0.3, -0.2), (1e-3, 0.7), (0.0, 0.4), (0.0, -0.4)])
def test_ebn_closed_form_against_integration(gamma, beta):
    def integrand(z: float) -> float:
        return max(gamma * z + beta, 0.0) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    expect = integrate.quad(integrand, -12, 12, points=[-beta / gamma] if gamma else None, limit=200)[0]
    got = float(ebn_expected_relu(torch.tensor([gamma]), torch.tensor([beta]))[0])
    assert got == pytest.approx(expect, abs=1e-7)


def test_ebn_magnitude_ranks_by_expected_relu(net):
    values = []
    for c in CONVS:
        bn = getattr(net, BNS[c])
        for g, b in zip(bn.weight.tolist(), bn.bias.tolist()):
            values.append(integrate.quad(lambda z: max(g * z + b, 0.0) * math.exp(-z * z / 2), -12, 12)[0])
    values = np.array(values)
    k = round(0.5 * values.size)
    expect = np.zeros(values.size, dtype=bool)
    expect[np.argsort(values, kind="stable")[:k]] = True
    pruned = prune(net, "ebn_magnitude", 0.5)
    got = np.concatenate([_zero_filters(getattr(pruned, c).weight.detach()) for c in CONVS])
    np.testing.assert_array_equal(got, expect)


def test_ebn_empirical_uses_measured_post_relu_means(net, batches):
    # reference: mean of relu(bn(conv(x))) per channel, computed by hand
    with torch.no_grad():
        x = torch.cat(batches)
        a1 = torch.relu(net.bn1(net.conv1(x)))
        a2 = torch.relu(net.bn2(net.conv2(a1)))
    means = np.concatenate([a1.mean((0, 2, 3)).numpy(), a2.mean((0, 2, 3)).numpy()])
    k = round(0.5 * means.size)
    expect = np.zeros(means.size, dtype=bool)
    expect[np.argsort(means, kind="stable")[:k]] = True
    pruned = prune(net, "ebn_magnitude", 0.5, batches=batches)  # empirical when batches are given
    got = np.concatenate([_zero_filters(getattr(pruned, c).weight.detach()) for c in CONVS])
    np.testing.assert_array_equal(got, expect)
    with pytest.raises(ValueError, match="closed_form"):
        prune(net, "ebn_magnitude", 0.5, batches=batches, estimate="closed_form")


def _numpy_rank_order(maps: np.ndarray, weight: torch.Tensor, ratio: float) -> np.ndarray:
    """Reference: mean np.linalg.matrix_rank per channel, ties by filter L1 norm, then index."""
    ranks = np.array([[np.linalg.matrix_rank(maps[n, c]) for c in range(maps.shape[1])] for n in range(maps.shape[0])])
    mean = ranks.mean(0)
    l1 = weight.detach().abs().reshape(weight.shape[0], -1).sum(1).numpy()
    order = np.lexsort((np.arange(mean.size), l1, mean))
    dead = np.zeros(mean.size, dtype=bool)
    dead[order[: round(ratio * mean.size)]] = True
    return dead


def test_hrank_ranks_post_relu_maps_not_conv_outputs(net, batches):
    """Conv outputs are all full rank (so ranking them falls back to index order); BN shifts
    of -1000 make the ReLU output of channels 0, 2 and 5 exactly zero (rank 0)."""
    with torch.no_grad():
        net.bn1.running_mean.zero_()
        net.bn1.running_var.fill_(1.0)
        net.bn1.weight.fill_(1.0)
        net.bn1.bias.copy_(torch.tensor([-1000.0, 0.0, -1000.0, 0.0, 0.0, -1000.0]))
        conv_out = net.conv1(torch.cat(batches)).numpy()
    assert {np.linalg.matrix_rank(m) for m in conv_out.reshape(-1, 8, 8)} == {8}  # all tie on the conv output
    pruned = hrank(net, 0.5, batches, exclude=["conv2"])
    dead = _zero_filters(pruned.conv1.weight.detach())
    np.testing.assert_array_equal(dead, [True, False, True, False, False, True])
    assert not np.array_equal(dead, [True, True, True, False, False, False])  # not index order


def test_hrank_matches_numpy_ranks_on_conv2(net, batches):
    with torch.no_grad():
        x = torch.cat(batches)
        out = torch.relu(net.bn2(net.conv2(torch.relu(net.bn1(net.conv1(x)))))).numpy()
    pruned = hrank(net, 0.5, batches, exclude=["conv1"])
    np.testing.assert_array_equal(_zero_filters(pruned.conv2.weight.detach()), _numpy_rank_order(out, net.conv2.weight, 0.5))


def test_hrank_ties_go_to_the_smaller_filter_l1_norm(net, batches):
    """Every post-ReLU map of conv1 is zero (rank 0): the filters with the smallest L1 norms go."""
    with torch.no_grad():
        net.bn1.bias.fill_(-1000.0)
        net.bn1.weight.fill_(1.0)
        net.conv1.weight.copy_(torch.tensor([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]).view(6, 1, 1, 1) / 27)
    dead = _zero_filters(hrank(net, 0.5, batches, exclude=["conv2"]).conv1.weight.detach())
    np.testing.assert_array_equal(dead, [False, True, False, True, False, True])


class ResidualNet(nn.Module):
    """conv -> bn -> (+ x) -> relu, conv -> relu via a module, conv -> nothing."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv3 = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)) + x)
        return self.head(self.conv3(self.act(self.conv2(x)))).mean((2, 3))


def test_hrank_follows_residual_adds_and_names_convs_without_activation(batches):
    from prunecheck.pruning.activations import conv_activations

    net = ResidualNet().eval()
    assert set(conv_activations(net, ["conv1", "conv2"])) == {"conv1", "conv2"}
    with pytest.raises(ValueError, match=r"found none after \['conv3'\].*exclude"):
        hrank(net, 0.5, batches)
    hrank(net, 0.5, batches, exclude=["conv3"])  # works without it


def test_structured_keeps_one_filter_per_layer(net):
    for method in ("l1_filter", "bn_scale"):
        pruned = prune(net, method, 0.99)
        for conv in CONVS:
            assert (~_zero_filters(getattr(pruned, conv).weight.detach())).sum() == 1


def test_structured_without_candidates_is_an_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="at least one convolution"):
        prune(model, "l1_filter", 0.5)
    with pytest.raises(ValueError, match="BatchNorm"):
        prune(model, "bn_scale", 0.5)


def test_conv_bn_pairs_fallback_for_untraceable_models(net):
    class Untraceable(TinyNet):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
                x = x * 1.0
            return super().forward(x)

    model = _randomise(Untraceable(), torch.Generator().manual_seed(1))
    model.load_state_dict(net.state_dict())
    a = prune(model, "bn_scale", 0.5)
    b = prune(net, "bn_scale", 0.5)
    assert _state_equal(a, b)


# --------------------------------------------------------------------------- shared rules


@pytest.mark.parametrize("method", METHODS)
def test_ratio_zero_changes_nothing_and_parent_is_untouched(net, batches, method):
    before = copy.deepcopy(net)
    kwargs = _kwargs(method, batches)
    same = prune(net, method, 0.0, **kwargs)
    assert _state_equal(same, net)
    prune(net, method, 0.5, **kwargs)
    assert _state_equal(net, before)  # the input model is never modified


@pytest.mark.parametrize("method", METHODS)
def test_pruning_further_only_adds_zeros(net, batches, method):
    kwargs = _kwargs(method, batches)
    first = prune(net, method, 0.4, **kwargs)
    second = prune(first, method, 0.7, **kwargs)
    for name, w in _weights(first).items():
        assert (_weights(second)[name][w == 0] == 0).all()


def test_exclude_leaves_modules_alone(net):
    pruned = prune(net, "global_magnitude", 0.8, exclude=["fc", "conv1"])
    assert torch.equal(pruned.fc.weight, net.fc.weight)
    assert torch.equal(pruned.conv1.weight, net.conv1.weight)
    assert (pruned.conv2.weight == 0).float().mean() == pytest.approx(round(0.8 * 432) / 432)


def test_weight_mask_fits_models_apply_mask(net):
    result = prune_with_report(net, "l1_filter", 0.5)
    mask = weight_mask(result.mask, result.module)
    assert set(mask) == {"conv1.weight", "conv2.weight"}
    rebuilt = apply_mask(net, mask)
    assert torch.equal(rebuilt.conv1.weight, result.module.conv1.weight)


# --------------------------------------------------------------------------- keep_mask


def _sgd_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 4) -> None:
    gen = torch.Generator().manual_seed(7)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 3, 8, 8, generator=gen)
        y = torch.randint(0, 4, (8,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("method", ["global_magnitude", "l1_filter"])
@pytest.mark.parametrize("optimiser", ["sgd", "adamw"])
def test_keep_mask_keeps_zeros_through_training(net, method, optimiser):
    result = prune_with_report(net, method, 0.6)
    model = copy.deepcopy(result.module)
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=1e-2),
    }[optimiser]
    with keep_mask(model, result.mask):
        _sgd_steps(model, make(model.parameters()))
    assert mask_violations(model, result.mask) == {}
    assert not _state_equal(model, result.module)  # training did change the kept weights
    if method in UNSTRUCTURED_METHODS:
        # the same loop without keep_mask revives pruned weights (so this test can fail);
        # a whole dead channel (conv, BN gamma and beta 0, then ReLU) gets no gradient anyway
        free = copy.deepcopy(result.module)
        _sgd_steps(free, make(free.parameters()))
        assert mask_violations(free, result.mask) != {}


def test_apply_keep_mask_checks_names_and_shapes(net):
    with pytest.raises(ValueError, match="not parameters"):
        apply_keep_mask(net, {"nope.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="expected shape"):
        apply_keep_mask(net, {"fc.weight": torch.ones(3, dtype=torch.bool)})


# --------------------------------------------------------------------------- iterative


def _finetune(model: nn.Module, mask: dict) -> nn.Module:
    _sgd_steps(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), steps=3)
    return model


@pytest.mark.parametrize("method", ["global_magnitude", "random_unstructured", "l1_filter", "bn_scale"])
def test_iterative_prune_nested_masks(net, batches, method):
    ratios = [0.3, 0.5, 0.7]
    steps = iterative_prune(net, method, ratios, _finetune, **_kwargs(method, batches))
    assert [s.ratio for s in steps] == ratios
    for step in steps:
        assert not _state_equal(step.pre_finetune, step.finetuned)
        assert mask_violations(step.finetuned, step.mask) == {}
        assert mask_violations(step.pre_finetune, step.mask) == {}
    for a, b in zip(steps, steps[1:]):
        for name, keep in a.mask.items():
            assert not (b.mask[name] & ~keep).any()  # every pruned entry stays pruned
        for name, w in _weights(a.finetuned).items():
            assert (_weights(b.pre_finetune)[name][w == 0] == 0).all()
            assert (_weights(b.finetuned)[name][w == 0] == 0).all()
    # sparsity of each step reaches its target on the pruned weights
    if method in UNSTRUCTURED_METHODS:
        n = sum(w.numel() for w in _weights(net).values())
        for step in steps:
            zeros = sum(int((w == 0).sum()) for w in _weights(step.finetuned).values())
            assert zeros == round(step.ratio * n)
    assert _state_equal(net, net)  # parent usable


def test_iterative_without_finetune_and_ratio_checks(net):
    steps = iterative_prune(net, "global_magnitude", [0.2, 0.6])
    assert all(s.pre_finetune is s.finetuned for s in steps)
    with pytest.raises(ValueError, match="increasing"):
        check_ratios([0.5, 0.5])
    with pytest.raises(ValueError, match=r"ratios\[1\]"):
        iterative_prune(net, "global_magnitude", [0.5, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        check_ratios([])


def test_iterative_detects_revived_weights(net):
    def cheat(model: nn.Module, mask: dict) -> nn.Module:
        other = copy.deepcopy(model)  # trained outside keep_mask's hooks
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.01)
        return other

    with pytest.raises(ValueError, match="became non-zero"):
        iterative_prune(net, "global_magnitude", [0.5], cheat)
    steps = iterative_prune(net, "global_magnitude", [0.5], cheat, strict=False)
    assert mask_violations(steps[0].finetuned, steps[0].mask) == {}


# --------------------------------------------------------------------------- family and command


@pytest.fixture
def project(tmp_path, monkeypatch, net):
    """A project dir with an importable factory module, parent weights and a config."""
    (tmp_path / "tiny_factory_mod.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class TinyNet(nn.Module):
            def __init__(self, c1=6, c2=8, classes=4):
                super().__init__()
                self.conv1 = nn.Conv2d(3, c1, 3, padding=1, bias=True)
                self.bn1 = nn.BatchNorm2d(c1)
                self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(c2)
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(c2, classes)

            def forward(self, x):
                x = torch.relu(self.bn1(self.conv1(x)))
                x = torch.relu(self.bn2(self.conv2(x)))
                return self.fc(self.pool(x).flatten(1))

        def finetune(model, mask):
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            gen = torch.Generator().manual_seed(0)
            model.train()
            for _ in range(2):
                opt.zero_grad()
                x = torch.randn(4, 3, 8, 8, generator=gen)
                nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
                opt.step()
            return model
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.save(net.state_dict(), tmp_path / "parent.pt")
    torch.save(net.state_dict(), tmp_path / "other.pt")
    base = textwrap.dedent("""
        [datasets.d]
        kind = "demo"

        [models.parent]
        factory = "tiny_factory_mod:TinyNet"
        kwargs = { classes = 4 }
        weights = "parent.pt"

        [models.other]
        factory = "tiny_factory_mod:TinyNet"
        weights = "other.pt"

        [[pairs]]
        parent = "parent"
        pruned = "other"
        dataset = "d"
        """)
    (tmp_path / "prunecheck.toml").write_text(base)
    yield tmp_path
    sys.modules.pop("tiny_factory_mod", None)


def _merged_settings(project: Path, snippet: Path):
    text = (project / "prunecheck.toml").read_text() + "\n" + snippet.read_text()
    return parse_settings(tomllib.loads(text), source="merged.toml", base_dir=project)


def test_build_family_writes_loadable_models_and_snippet(project, net):
    import tiny_factory_mod

    spec = ModelSpec(name="parent", factory="tiny_factory_mod:TinyNet", kwargs={"classes": 4},
                     weights=project / "parent.pt")
    snippet = build_family(spec, "l1_filter", [0.25, 0.5], project / "out", tiny_factory_mod.finetune,
                           dataset="d", relative_to=project)
    assert snippet.name == "prunecheck-snippet.toml"
    settings = _merged_settings(project, snippet)
    names = ["parent-l1_filter-25", "parent-l1_filter-50"]
    for name in names + [n + "-pre" for n in names]:
        assert settings.models[name].weights == project / "out" / f"{name}.pt"
    family = next(f for f in settings.families if f.parent == "parent")
    assert [m.model for m in family.members] == names
    pairs = {p.pruned: p for p in settings.pairs}
    assert pairs[names[1]].pre_finetune == names[1] + "-pre"
    assert pairs[names[1]].schedule == (names[0] + "-pre", names[1] + "-pre")
    assert pairs[names[0]].mask_mode == "channels"
    loaded = {n: load_model(settings.models[n], settings.models).module for n in names + [n + "-pre" for n in names]}
    for name in names:  # fine-tuning changed the weights, kept the zeros
        pre, tuned = loaded[name + "-pre"], loaded[name]
        assert not _state_equal(pre, tuned)
        assert (tuned.conv1.weight[pre.conv1.weight == 0] == 0).all()
    dead = _zero_filters(loaded[names[1]].conv2.weight.detach())
    assert dead.sum() == 4
    member = family.members[1]
    w = _weights(loaded[names[1]])
    assert member.ratio == pytest.approx(sum(int((x == 0).sum()) for x in w.values()) / sum(x.numel() for x in w.values()), abs=1e-6)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunecheck prune")
    command.add_prune_arguments(parser)
    return parser


def test_prune_command_without_finetune(project, capsys):
    args = _parser().parse_args(["--model", "parent", "--method", "global_magnitude",
                                 "--ratios", "0.5,0.8", "--out", "fam"])
    assert command.run_prune(args) == 0
    captured = capsys.readouterr()
    assert "without fine-tuning" in captured.err
    snippet = project / "fam" / "prunecheck-snippet.toml"
    assert str(snippet) in captured.out
    settings = _merged_settings(project, snippet)
    assert "parent-global_magnitude-80" in settings.models
    assert "parent-global_magnitude-80-pre" not in settings.models
    model = load_model(settings.models["parent-global_magnitude-80"]).module
    w = _weights(model)
    n = sum(x.numel() for x in w.values())
    assert sum(int((x == 0).sum()) for x in w.values()) == round(0.8 * n)
    # running it again would overwrite entries the user has pasted: refused
    (project / "prunecheck.toml").write_text((project / "prunecheck.toml").read_text() + "\n" + snippet.read_text())
    with pytest.raises(Exception, match="already model entries"):
        command.run_prune(args)


def test_prune_command_with_finetune_and_errors(project, capsys):
    args = _parser().parse_args(["--model", "parent", "--method", "random_channels", "--ratios", "0.5",
                                 "--out", "fam", "--finetune", "tiny_factory_mod:finetune", "--seed", "4"])
    assert command.run_prune(args) == 0
    settings = _merged_settings(project, project / "fam" / "prunecheck-snippet.toml")
    assert settings.pairs[-1].pre_finetune == "parent-random_channels-50-pre"
    from prunecheck.core.errors import PrunecheckError

    bad = _parser().parse_args(["--model", "nope", "--method", "l1_filter", "--ratios", "0.5", "--out", "x"])
    with pytest.raises(PrunecheckError, match="known models"):
        command.run_prune(bad)
    bad = _parser().parse_args(["--model", "parent", "--method", "l1_filter", "--ratios", "0.5", "--out", "x",
                                "--finetune", "tiny_factory_mod:missing"])
    with pytest.raises(PrunecheckError, match="no attribute"):
        command.run_prune(bad)
    bad = _parser().parse_args(["--model", "parent", "--method", "l1_filter", "--ratios", "0.5", "--out", "x",
                                "--exclude", "nope"])
    with pytest.raises(PrunecheckError, match="unknown"):
        command.run_prune(bad)


@pytest.mark.parametrize("text", ["", "0.5,abc", "0.5,1.0", "0.7,0.5", "-0.1"])
def test_parse_ratios_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        command.parse_ratios(text)


def test_parse_ratios_accepts():
    assert command.parse_ratios("0.5, 0.7,0.9") == (0.5, 0.7, 0.9)


def test_prune_command_hrank_samples_dataset_batches(project):
    args = _parser().parse_args(["--model", "parent", "--method", "hrank", "--ratios", "0.5", "--out", "fam",
                                 "--batches", "1", "--batch-size", "4"])
    assert command.run_prune(args) == 0
    settings = _merged_settings(project, project / "fam" / "prunecheck-snippet.toml")
    model = load_model(settings.models["parent-hrank-50"]).module
    for conv in CONVS:
        c = getattr(model, conv).out_channels
        assert _zero_filters(getattr(model, conv).weight.detach()).sum() == round(0.5 * c)
    assert settings.pairs[-1].mask_mode == "channels"


class UntraceableSharedReluNet(nn.Module):
    """Data-dependent control flow (fx cannot trace it) and one ReLU module used twice."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        if float(x.sum()) > 1e9:  # never true; breaks symbolic tracing
            x = -x
        return self.head(self.relu(self.conv2(self.relu(self.conv1(x))))).mean((2, 3))


def test_hrank_fallback_refuses_an_activation_module_shared_by_two_convs(batches):
    from prunecheck.pruning.activations import conv_activations

    net = UntraceableSharedReluNet().eval()
    assert conv_activations(net, ["conv1"]) == {"conv1": "module:relu"}  # registration order
    with pytest.raises(ValueError, match=r"found none after \['conv2'\]"):  # nothing registered after it
        hrank(net, 0.5, batches)
    with pytest.raises(ValueError, match=r"after \['conv1'\] ran \[4\] times in 2 forward passes"):
        hrank(net, 0.5, batches, exclude=["conv2"])
