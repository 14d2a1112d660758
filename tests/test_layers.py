"""The one definition of a prunable layer (nn.layers.is_prunable) and every place that uses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunecheck.gates.stability import channel_mask
from prunecheck.nn.layers import filter_layers, is_dropout, is_prunable, prunable_layers
from prunecheck.nn.models import prunable_weights, zero_mask


class Mixed(nn.Module):
    """conv -> BN -> depthwise conv -> BN -> upsampling (transposed) conv -> pool -> linear -> head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.depthwise_bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.drop = nn.Dropout(0.1)
        self.hidden = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.depthwise_bn(self.depthwise(self.stem_bn(self.stem(x))))
        x = self.up(x).mean(dim=(2, 3))
        return self.head(self.hidden(self.drop(x)))


# What counts, written out by hand: conv, depthwise conv, linear and head are pruned; the
# transposed conv is only measured (its weight[c] is an input channel); BN never counts.
PRUNED = ["stem", "depthwise", "hidden", "head"]
MEASURED = ["stem", "depthwise", "up", "hidden", "head"]


def test_pruned_and_measured_sets_of_a_mixed_model():
    model = Mixed()
    assert list(prunable_layers(model)) == PRUNED
    assert [name for name, m in model.named_modules() if is_prunable(m, measured=True)] == MEASURED
    assert list(prunable_weights(model)) == [f"{name}.weight" for name in MEASURED]
    assert list(zero_mask(model)) == [f"{name}.weight" for name in MEASURED]
    assert not any(is_prunable(m, measured=measured) for m in (model.stem_bn, model.drop) for measured in (False, True))


def test_structured_methods_skip_linear_layers_and_the_classifier():
    assert list(filter_layers(Mixed())) == ["stem", "depthwise"]
    conv_head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 10, 1))  # a 1x1 conv classifier
    assert list(filter_layers(conv_head)) == ["0"]


def test_stability_channel_masks_cover_exactly_the_pruned_set():
    model = Mixed()
    with torch.no_grad():
        model.depthwise.weight[2] = 0
    keep = channel_mask(model)
    assert list(keep) == PRUNED
    assert keep["depthwise"].tolist() == [True, True, False] + [True] * 5


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_scripted_layers_are_measured_by_their_original_class_name():
    scripted = torch.jit.script(Mixed())
    assert [f"{name}.weight" for name in MEASURED] == list(prunable_weights(scripted))
    assert not any(is_prunable(m) for m in scripted.modules())  # prune hooks cannot attach to them
    assert is_dropout(scripted.drop) and is_dropout(nn.AlphaDropout()) and not is_dropout(scripted.stem_bn)


def test_a_shared_layer_counts_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert list(prunable_layers(model)) == ["0"]
    assert list(prunable_weights(model)) == ["0.weight"]
