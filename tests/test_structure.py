"""Structural counting against hand-built nets whose removable entries are counted by hand,
and against physically shrunk twins built independently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunecheck.nn.efficiency import efficiency_facts, pair_ratios
from prunecheck.nn.models import prunable_weights
from prunecheck.nn.structure import structural_keep

SHAPE = (3, 8, 8)


class Chain(nn.Module):
    """conv(3->c1) -> BN -> ReLU -> conv(c1->c2) -> BN -> ReLU -> pool -> flatten -> fc(c2->10)."""

    def __init__(self, c1: int = 4, c2: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _randomise_bn(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


def _kill_filters(conv: nn.Conv2d, bn: nn.BatchNorm2d, channels) -> None:
    with torch.no_grad():
        conv.weight[list(channels)] = 0
        if conv.bias is not None:
            conv.bias[list(channels)] = 0
        bn.weight[list(channels)] = 0
        bn.bias[list(channels)] = 0


@pytest.fixture
def masked_chain() -> Chain:
    torch.manual_seed(0)
    model = Chain().eval()
    _randomise_bn(model)
    _kill_filters(model.conv1, model.bn1, [0])
    _kill_filters(model.conv2, model.bn2, [1, 2])
    return model


def test_hand_counted_chain(masked_chain):
    # conv1 row 0: 3*9 = 27; conv2 column 0 (reads the dead channel): 6*9 = 54;
    # conv2 rows 1, 2 without the column already counted: 2*3*9 = 54; fc columns 1, 2: 2*10 = 20.
    weights = prunable_weights(masked_chain)
    keep = structural_keep(masked_chain, weights, SHAPE)
    assert keep.traced
    removed = {name: int((~mask).sum()) for name, mask in keep.keep.items()}
    assert removed == {"conv1.weight": 27, "conv2.weight": 108, "fc.weight": 20}
    facts = efficiency_facts(masked_chain, SHAPE)
    assert facts.prunable_parameters == 108 + 216 + 60
    assert facts.removable_parameters == 155
    zeros = 27 + 2 * 4 * 9  # only the zeroed filters are exact zeros
    assert facts.prune_ratio == pytest.approx(zeros / 384)
    assert facts.removable_ratio == pytest.approx(155 / 384)


def test_masked_and_shrunk_twins_give_the_same_figures(masked_chain):
    parent = Chain().eval()
    shrunk = Chain(c1=3, c2=4).eval()  # what removing the dead channels leaves
    parent_facts = efficiency_facts(parent, SHAPE)
    masked = pair_ratios(parent_facts, efficiency_facts(masked_chain, SHAPE))
    physical = pair_ratios(parent_facts, efficiency_facts(shrunk, SHAPE))
    assert physical.physically_smaller and not masked.physically_smaller
    assert masked.structural == pytest.approx(physical.structural) == pytest.approx(155 / 384)
    assert physical.prune_ratio == masked.prune_ratio == pytest.approx(155 / 384)  # what families use
    # FLOPs by hand (multiply-add = 2): parent conv1 2*64*4*27, conv2 2*64*6*36, fc 2*6*10.
    assert parent_facts.flops == 13824 + 27648 + 120
    shrunk_flops = 2 * 64 * 3 * 27 + 2 * 64 * 4 * 27 + 2 * 4 * 10
    assert efficiency_facts(shrunk, SHAPE).flops == shrunk_flops
    assert efficiency_facts(masked_chain, SHAPE).structural_flops == pytest.approx(shrunk_flops)
    assert masked.flops_reduction_structural == pytest.approx(physical.flops_reduction_structural)
    assert masked.flops_reduction_zeros < masked.flops_reduction_structural  # zeros under-count


def test_masking_does_not_change_what_the_shrunk_twin_computes(masked_chain):
    # The removable entries really compute nothing: zeroing them leaves the output unchanged.
    keep = structural_keep(masked_chain, prunable_weights(masked_chain), SHAPE).keep
    stripped = copy.deepcopy(masked_chain)
    with torch.no_grad():
        for name, w in prunable_weights(stripped).items():
            w.mul_(keep[name])
    x = torch.randn(5, *SHAPE)
    torch.testing.assert_close(stripped(x), masked_chain(x))


class Residual(nn.Module):
    """a = relu(bnA(convA(x))); b = bnB(convB(a)); convC(relu(a + b))."""

    def __init__(self) -> None:
        super().__init__()
        self.convA, self.bnA = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.convB, self.bnB = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.convC = nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x):
        a = torch.relu(self.bnA(self.convA(x)))
        b = self.bnB(self.convB(a))
        out = a + b
        return self.convC(torch.relu(out)).mean((2, 3))


def test_residual_channel_dead_only_when_both_branches_are():
    model = Residual().eval()
    _randomise_bn(model)
    _kill_filters(model.convA, model.bnA, [1])
    removed = lambda m: {k: int((~v).sum()) for k, v in structural_keep(m, prunable_weights(m), SHAPE).keep.items()}  # noqa: E731
    # Only one branch is zero: the sum still carries convB's channel 1, so convC keeps its input 1.
    assert removed(model) == {"convA.weight": 27, "convB.weight": 36, "convC.weight": 0}
    _kill_filters(model.convB, model.bnB, [1])
    # Both branches zero: convC's input slice 1 (5*9) goes too; convB loses row 1 (4*9) and column 1.
    assert removed(model) == {"convA.weight": 27, "convB.weight": 36 + 27, "convC.weight": 45}


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 2, 1, bias=False)
        self.right = nn.Conv2d(3, 3, 1, bias=False)
        self.head = nn.Conv2d(5, 4, 1)

    def forward(self, x):
        return self.head(torch.cat([self.left(x), self.right(x)], dim=1)).flatten(1)


def test_concatenation_maps_channels_to_their_offsets():
    model = Concat().eval()
    with torch.no_grad():
        model.right.weight[0] = 0  # concatenated channel 2
    keep = structural_keep(model, prunable_weights(model), (3, 4, 4)).keep
    assert int((~keep["right.weight"]).sum()) == 3
    assert (~keep["head.weight"]).nonzero()[:, 1].unique().tolist() == [2]
    assert int((~keep["head.weight"]).sum()) == 4


def test_unused_input_slice_makes_the_producer_filter_removable():
    # Backward direction: the consumer's column 0 is all zero, so the producer's filter 0
    # (non-zero, with a non-zero BN channel) computes something nobody reads.
    model = Chain().eval()
    _randomise_bn(model)
    with torch.no_grad():
        model.conv2.weight[:, 0] = 0
    keep = structural_keep(model, prunable_weights(model), SHAPE).keep
    assert int((~keep["conv1.weight"]).sum()) == 27
    assert int((~keep["conv2.weight"]).sum()) == 54


def test_unknown_op_is_conservative():
    class Sigmoid(Chain):
        def forward(self, x):
            x = torch.sigmoid(self.bn1(self.conv1(x)))  # sigmoid(0) = 0.5: a zero channel is not dead
            x = torch.relu(self.bn2(self.conv2(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    model = Sigmoid().eval()
    _kill_filters(model.conv1, model.bn1, [0])
    keep = structural_keep(model, prunable_weights(model), SHAPE).keep
    assert int((~keep["conv1.weight"]).sum()) == 27  # its own zero filter
    assert int((~keep["conv2.weight"]).sum()) == 0  # the constant 0.5 channel is still read


def test_untraceable_model_falls_back_to_layer_by_layer():
    class Branchy(Chain):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
                x = x * 1
            return super().forward(x)

    model = Branchy().eval()
    _kill_filters(model.conv1, model.bn1, [0])
    result = structural_keep(model, prunable_weights(model), SHAPE)
    assert not result.traced and "not traceable" in result.note
    assert result.removable == 27  # only conv1's own zero row; the dependency is not followed
    assert efficiency_facts(model, SHAPE).structure_traced is False


def test_family_ratio_is_the_zero_ratio_for_unstructured_pruning():
    # Scattered zeros leave no channel dead: removable 0, the family ratio is the zero ratio.
    parent = Chain().eval()
    pruned = copy.deepcopy(parent)
    zeros = 0
    with torch.no_grad():
        for w in prunable_weights(pruned).values():
            o, i = torch.meshgrid(torch.arange(w.shape[0]), torch.arange(w.shape[1]), indexing="ij")
            checker = (o + i) % 2 == 0  # a checkerboard over (filter, input slice): none all zero
            w[checker] = 0
            zeros += int(checker.sum()) * (w[0, 0].numel())
    ratios = pair_ratios(efficiency_facts(parent, SHAPE), efficiency_facts(pruned, SHAPE))
    assert ratios.removable == 0.0 and ratios.structural == 0.0
    zeros /= 384
    assert ratios.zeros == pytest.approx(zeros) and ratios.prune_ratio == pytest.approx(zeros)


def test_mean_over_channels_is_not_mistaken_for_pooling():
    class ChannelMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1, bias=False)
            self.head = nn.Conv1d(8, 2, 1)  # reads [N, H=8, W]: "channels" here are rows, not conv filters

        def forward(self, x):
            return self.head(self.conv(x).mean(1)).flatten(1)

    model = ChannelMean().eval()
    with torch.no_grad():
        model.conv.weight[0] = 0  # filter 0 is zero, yet row 0 of the channel mean is not
        model.head.weight[:, 1] = 0  # row 1 of the image is ignored, which says nothing about filter 1
    keep = structural_keep(model, prunable_weights(model), (3, 8, 8)).keep
    assert int((~keep["conv.weight"]).sum()) == 3  # its own zero filter only (not filter 1 too)
    assert int((~keep["head.weight"]).sum()) == 2  # its own zero column only (not column 0 too)
