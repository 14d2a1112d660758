"""Tests of prunecheck.nn.efficiency against hand-computed counts."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunecheck.nn.efficiency import EfficiencyFacts, compression_ratio, efficiency_facts
from prunecheck.nn.models import ensemble_from_members, model_from_module

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices


def tiny() -> nn.Module:
    """Conv2d(2->3, k=3, no padding) on 2x6x6 -> 3x4x4, ReLU, Flatten(48), Linear(48->5)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5)).eval()


SHAPE = (2, 6, 6)
# Hand arithmetic (multiply-add = 2 FLOPs; bias adds and ReLU are not counted):
#   conv:   output 3 channels x 4 x 4 positions = 48 outputs, each 2 in-ch x 3 x 3 = 18 MACs
#           -> 48 * 18 = 864 MACs = 1728 FLOPs
#   linear: 5 outputs x 48 inputs = 240 MACs = 480 FLOPs
CONV_FLOPS = 2 * (3 * 4 * 4) * (2 * 3 * 3)
LINEAR_FLOPS = 2 * 5 * 48
# parameters: conv 3*2*3*3 = 54 weights + 3 biases, linear 5*48 = 240 weights + 5 biases
CONV_W, LINEAR_W = 54, 240
PARAMS = CONV_W + 3 + LINEAR_W + 5


def test_hand_computed_dense_facts():
    facts = efficiency_facts(tiny(), SHAPE)
    assert CONV_FLOPS == 1728 and LINEAR_FLOPS == 480
    assert facts.flops == CONV_FLOPS + LINEAR_FLOPS == 2208
    assert facts.effective_flops == facts.flops
    assert facts.parameters == facts.nonzero_parameters == PARAMS == 302
    assert facts.prunable_parameters == facts.prunable_nonzero == CONV_W + LINEAR_W
    assert facts.prune_ratio == 0.0
    assert facts.flops_reduction == 0.0


def test_zeros_scale_effective_flops_per_layer():
    model = tiny()
    with torch.no_grad():
        model[0].weight[:, 0] = 0  # one of two input channels: half the conv weights (27 of 54)
        model[3].weight[:, :12] = 0  # a quarter of the linear weights (60 of 240)
        model[3].bias.zero_()  # biases count as parameters, never as prunable weights
    facts = efficiency_facts(model, SHAPE)
    assert facts.flops == CONV_FLOPS + LINEAR_FLOPS  # dense count unchanged
    assert facts.effective_flops == pytest.approx(CONV_FLOPS * 0.5 + LINEAR_FLOPS * 0.75)  # 864 + 360
    assert facts.prunable_nonzero == 27 + 180
    assert facts.nonzero_parameters == 27 + 3 + 180 + 0
    assert facts.prune_ratio == pytest.approx((27 + 60) / (CONV_W + LINEAR_W))


def test_half_zeroed_layer_halves_its_effective_flops():
    layer = nn.Linear(8, 6, bias=False)
    dense = efficiency_facts(layer, (8,))
    assert dense.flops == 2 * 8 * 6
    with torch.no_grad():
        layer.weight.view(-1)[::2] = 0
    assert efficiency_facts(layer, (8,)).effective_flops == pytest.approx(dense.flops / 2)


def test_non_weight_matmuls_are_not_scaled():
    class Gram(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x):  # x [1, 3, 4]: the x @ x^T product uses no weight
            h = torch.relu(self.fc(x))
            return torch.bmm(h, h.transpose(1, 2)).flatten(1)

    model = Gram()
    with torch.no_grad():
        model.fc.weight.zero_()  # relu(0) = 0 activations: still counted densely in bmm
    facts = efficiency_facts(model, (3, 4))
    fc_flops = 2 * 3 * 4 * 4  # 3 rows x 4 outputs x 4 inputs
    bmm_flops = 2 * 3 * 3 * 4  # [3,4] @ [4,3]
    assert facts.flops == fc_flops + bmm_flops
    assert facts.effective_flops == pytest.approx(bmm_flops)


def test_shared_layer_counts_each_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    model = Twice()
    with torch.no_grad():
        model.fc.weight[:2] = 0  # density 15/25
    facts = efficiency_facts(model, (5,))
    assert facts.flops == 2 * (2 * 5 * 5)
    assert facts.effective_flops == pytest.approx(facts.flops * 15 / 25)
    assert facts.prunable_parameters == 25  # the shared weight once


@settings(max_examples=15, deadline=None)
@given(
    cin_groups=st.sampled_from([(1, 1), (2, 1), (4, 2), (4, 4)]),
    cout_mult=st.integers(1, 3),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    size=st.integers(3, 7),
    zero_every=st.integers(1, 5),
)
def test_conv_flops_match_formula(cin_groups, cout_mult, kernel, stride, padding, size, zero_every):
    cin, groups = cin_groups
    cout = groups * cout_mult
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups)
    with torch.no_grad():
        conv.weight.add_(1.0)  # no accidental zeros
        conv.weight.view(-1)[::zero_every] = 0
    out = (size + 2 * padding - kernel) // stride + 1
    macs = cout * out * out * (cin // groups) * kernel * kernel
    nonzero = sum(1 for v in conv.weight.detach().view(-1).tolist() if v != 0)
    facts = efficiency_facts(conv, (cin, size, size))
    assert facts.flops == 2 * macs
    assert facts.effective_flops == pytest.approx(2 * macs * nonzero / conv.weight.numel())
    assert facts.prunable_nonzero == nonzero


def test_torchscript_and_eager_agree():
    model = tiny()
    with torch.no_grad():
        model[0].weight[0] = 0
    eager = efficiency_facts(model, SHAPE)
    for scripted in (torch.jit.script(model), torch.jit.trace(model, torch.zeros(1, *SHAPE))):
        facts = efficiency_facts(scripted, SHAPE)
        assert (facts.flops, facts.effective_flops) == (eager.flops, eager.effective_flops)
        assert facts.prunable_nonzero == eager.prunable_nonzero


def test_pruned_model_compresses_better():
    torch.manual_seed(0)
    parent = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    pruned = copy.deepcopy(parent)
    with torch.no_grad():
        for layer in (pruned[0], pruned[2]):
            threshold = layer.weight.abs().flatten().kthvalue(int(0.8 * layer.weight.numel())).values
            layer.weight[layer.weight.abs() <= threshold] = 0
    p, q = efficiency_facts(parent, (128,)), efficiency_facts(pruned, (128,))
    assert p.raw_bytes == q.raw_bytes  # same tensors, same serialised size
    assert p.zipped_bytes > 0.85 * p.raw_bytes  # dense random floats barely deflate
    assert q.zipped_bytes < 0.5 * q.raw_bytes
    assert compression_ratio(p, q) == p.zipped_bytes / q.zipped_bytes > 2.0
    assert compression_ratio(p, p) == 1.0
    assert q.prune_ratio == pytest.approx(0.8, abs=0.01)
    assert efficiency_facts(pruned, (128,)) == q  # deterministic


def test_ensemble_sums_members():
    a, b = tiny(), tiny()
    with torch.no_grad():
        b[3].weight.zero_()
    fa, fb = efficiency_facts(a, SHAPE), efficiency_facts(b, SHAPE)
    ensemble = ensemble_from_members("e", [model_from_module("a", a), model_from_module("b", b)])
    facts = efficiency_facts(ensemble, SHAPE)
    assert facts.parameters == fa.parameters + fb.parameters
    assert facts.flops == fa.flops + fb.flops
    assert facts.effective_flops == pytest.approx(fa.effective_flops + fb.effective_flops)
    assert facts.zipped_bytes == fa.zipped_bytes + fb.zipped_bytes
    assert facts.prune_ratio == pytest.approx(LINEAR_W / (2 * (CONV_W + LINEAR_W)))
    assert efficiency_facts(model_from_module("a", a), SHAPE) == fa


def test_training_mode_is_restored_and_weights_untouched():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4)).train()
    before = copy.deepcopy(model.state_dict())
    efficiency_facts(model, (4,))
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm stats not updated


def test_compression_ratio_rejects_empty():
    facts = EfficiencyFacts(0, 0, 0, 0, 0.0, 0, 0.0, 0, 0)
    with pytest.raises(ValueError, match="zipped_bytes > 0"):
        compression_ratio(facts, facts)


def test_facts_sum_recomputes_prune_ratio():
    a = EfficiencyFacts(10, 8, 8, 6, 0.25, 100, 75.0, 50, 40)
    b = EfficiencyFacts(30, 10, 24, 6, 0.75, 300, 100.0, 150, 60)
    total = EfficiencyFacts.sum([a, b])
    assert total == EfficiencyFacts(40, 18, 32, 12, 1 - 12 / 32, 400, 175.0, 200, 100, kept_nonzero=12)
    assert total.prune_ratio != (a.prune_ratio + b.prune_ratio) / 2  # weighted, not averaged
    with pytest.raises(ValueError, match="at least one"):
        EfficiencyFacts.sum([])
