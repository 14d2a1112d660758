"""Pruning instability: step planning, masked parents, the session's step accuracies, the pure gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunecheck.report import markdown
from prunecheck.config.settings import PairSpec
from prunecheck.core.errors import ModelError
from prunecheck.data.base import TensorDataset
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictor import PredictionEngine
from prunecheck.nn.models import ensemble_from_members, model_from_module
from prunecheck.gates.stability import (
    apply_channel_mask,
    channel_mask,
    masked_parent,
    masked_parent_model,
    plan_steps,
    score_steps,
)
from prunecheck.session.stability import step_accuracies
from prunecheck.testing import RedChannelNet, class_colour_images, red_channel_weights


# ------------------------------------------------------------------ step planning
def test_default_is_one_mask_step_from_the_parent():
    (step,) = plan_steps(PairSpec("p", "net", "net-90", "d"))
    assert (step.kind, step.before, step.after, step.acc_before_source) == ("mask", "net", None, "parent")


def test_pre_finetune_is_one_checkpoint_step_from_the_parent():
    (step,) = plan_steps(PairSpec("p", "net", "net-90", "d", pre_finetune="net-90-pre"))
    assert (step.kind, step.before, step.after) == ("checkpoint", "net", "net-90-pre")


def test_schedule_starts_each_step_from_the_previous_fine_tuned_model_or_falls_back_to_the_parent():
    pairs = [
        PairSpec("s1", "net", "net-50", "d", pre_finetune="net-50-pre"),
        # no pair names the fine-tuned model of net-70-pre
        PairSpec("s3", "net", "net-90", "d", pre_finetune="net-90-pre",
                 schedule=("net-50-pre", "net-70-pre", "net-90-pre")),
    ]
    steps = plan_steps(pairs[1], pairs)
    assert [(s.index, s.total, s.before, s.after, s.acc_before_source) for s in steps] == [
        (1, 3, "net", "net-50-pre", "parent"),
        (2, 3, "net-50", "net-70-pre", "finetuned"),
        (3, 3, "net", "net-90-pre", "parent-fallback"),
    ]


def test_schedule_wins_over_pre_finetune():
    spec = PairSpec("p", "net", "b", "d", pre_finetune="b-pre", schedule=("a-pre", "b-pre"))
    assert [s.kind for s in plan_steps(spec)] == ["schedule", "schedule"]


# ------------------------------------------------------------------ masks
class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 4)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _random_convbn(seed: int) -> ConvBN:
    torch.manual_seed(seed)
    net = ConvBN()
    with torch.no_grad():
        net.bn.weight.uniform_(0.5, 2.0)
        net.bn.bias.uniform_(0.5, 1.0)  # positive beta: a zeroed conv alone would still output beta
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    return net.eval()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.0, 1.0))
def test_unstructured_mask_zeroes_exactly_the_pruned_models_zeros(seed, density):
    parent, pruned = _random_convbn(seed), _random_convbn(seed + 1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (pruned.conv, pruned.head):
            layer.weight.mul_((torch.rand(layer.weight.shape, generator=gen) < density).float())
    masked = masked_parent(parent, pruned, "unstructured")
    for name in ("conv", "head"):
        p, q, m = (getattr(net, name).weight for net in (parent, pruned, masked))
        expected = torch.where(q == 0, torch.zeros_like(p), p)  # independent reference
        assert torch.equal(m, expected)
        assert torch.equal(getattr(masked, name).bias, getattr(parent, name).bias)  # untouched
    assert torch.equal(masked.bn.bias, parent.bn.bias)
    assert parent.conv.weight.count_nonzero() == parent.conv.weight.numel()  # parent not modified


def test_channel_mask_reads_all_zero_output_channels():
    net = _random_convbn(0)
    with torch.no_grad():
        net.conv.weight[1] = 0
        net.conv.weight[2, 0] = 0  # partly zero: kept
    keep = channel_mask(net)
    assert keep["conv"].tolist() == [True, False, True]
    assert keep["head"].tolist() == [True] * 4


def test_channels_mode_removes_the_channel_with_bias_and_batchnorm_affine():
    parent, pruned = _random_convbn(0), _random_convbn(1)
    with torch.no_grad():
        pruned.conv.weight[1] = 0
    masked = masked_parent(parent, pruned, "channels")
    assert torch.count_nonzero(masked.conv.weight[1]) == 0 and masked.conv.bias[1] == 0
    assert masked.bn.weight[1] == 0 and masked.bn.bias[1] == 0
    for t, ref in ((masked.conv.weight, parent.conv.weight), (masked.bn.weight, parent.bn.weight)):
        assert torch.equal(t[[0, 2]], ref[[0, 2]])
    # the removed channel outputs exactly 0 after BatchNorm, whatever the running statistics
    x = torch.randn(4, 2, 5, 5)
    with torch.no_grad():
        out = masked.bn(masked.conv(x))
    assert torch.count_nonzero(out[:, 1]) == 0 and torch.count_nonzero(out[:, 0]) > 0


def test_channel_mask_of_another_architecture_is_a_clear_error():
    with pytest.raises(ModelError, match="expected 3 output channels"):
        apply_channel_mask(_random_convbn(0), {"conv": torch.ones(5, dtype=torch.bool)})
    with pytest.raises(ModelError, match="mask_mode: expected one of unstructured, channels"):
        masked_parent(_random_convbn(0), _random_convbn(1), "filters")


def test_mask_instability_of_ensembles_is_refused_with_advice():
    member = model_from_module("m", _random_convbn(0))
    ensemble = ensemble_from_members("ens", [member])
    with pytest.raises(ModelError, match="pre_finetune"):
        masked_parent_model(ensemble, member)


# ------------------------------------------------------------------ evaluation
class FakeWorkspace:
    """The three things step_accuracies uses: model(name), engine, dataset(name)."""

    def __init__(self, tmp_path, models, n=100):
        images, labels = class_colour_images(n)
        self.data = TensorDataset("colours", torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                                  torch.from_numpy(labels), 10, (0, 0, 0), (1, 1, 1))
        self.engine = PredictionEngine(ArrayCache(tmp_path / "cache"), device="cpu", batch_size=32)
        self.models = {name: model_from_module(name, module) for name, module in models.items()}

    def model(self, name):
        return self.models[name]

    def dataset(self, name):
        return self.data


def evaluate_steps(workspace, spec):
    return score_steps(step_accuracies(workspace, spec))


def _red(drop_classes: int = 0) -> RedChannelNet:
    net = RedChannelNet()
    weights = red_channel_weights()
    if drop_classes:
        weights["fc.weight"][-drop_classes:] = 0
        weights["fc.bias"][-drop_classes:] = 0
    net.load_state_dict(weights)
    return net


def test_unchanged_model_has_instability_zero(tmp_path):
    ws = FakeWorkspace(tmp_path, {"parent": _red(), "pruned": _red()})
    (outcome,) = evaluate_steps(ws, PairSpec("p", "parent", "pruned", "colours"))
    assert outcome.instability == 0.0 and outcome.acc_before == 1.0 == outcome.acc_after


def test_pre_finetune_instability_matches_hand_computed_accuracies(tmp_path):
    # 8 of 10 rows zeroed: classes 2..9 all become class 1 (logit > 0 vs 0): accuracy 0.2
    ws = FakeWorkspace(tmp_path, {"parent": _red(), "pruned": _red(), "pre": _red(drop_classes=8)})
    (outcome,) = evaluate_steps(ws, PairSpec("p", "parent", "pruned", "colours", pre_finetune="pre"))
    labels = ws.data.labels.numpy()
    x = ws.data.images(np.arange(len(labels))).float() / 255.0
    with torch.no_grad():
        pred = _red(8)(x).argmax(1).numpy()
    expected_after = float(np.mean(pred == labels))
    assert expected_after == pytest.approx(0.2)
    assert outcome.acc_after == pytest.approx(expected_after)
    assert outcome.instability == pytest.approx((1.0 - expected_after) / 1.0)


def test_mask_step_zeroes_the_parent_like_the_pruned_model(tmp_path):
    # pruned model with the last class row's weight zeroed (bias kept): the parent with that
    # zero never predicts class 9 (its bias -200*s*81/2 is very negative): accuracy 0.9
    pruned = _red()
    with torch.no_grad():
        pruned.fc.weight[9] = 0
    ws = FakeWorkspace(tmp_path, {"parent": _red(), "pruned": pruned})
    (outcome,) = evaluate_steps(ws, PairSpec("p", "parent", "pruned", "colours"))
    assert outcome.after_name == "parent*mask(pruned)"
    assert outcome.acc_after == pytest.approx(0.9) and outcome.instability == pytest.approx(0.1)


def test_one_shot_mask_damage_is_its_own_quantity_with_its_own_threshold(tmp_path):
    """0.7 of the accuracy lost by the one-shot mask: fails max_instability 0.5 if it were a step, passes
    max_mask_damage 0.8, and is never called instability (hand count: 7 of 10 classes' rows zeroed)."""
    from prunecheck.config.options import InstabilityOptions
    from prunecheck.gates.stability import step_results
    from prunecheck.report.tables import instability as table

    pruned = _red()
    with torch.no_grad():
        pruned.fc.weight[3:] = 0  # classes 3..9 can no longer win: accuracy 0.3 (classes balanced)
    ws = FakeWorkspace(tmp_path, {"parent": _red(), "pruned": pruned})
    spec = PairSpec("p", "parent", "pruned", "colours")
    outcomes = evaluate_steps(ws, spec)
    assert outcomes[0].instability == pytest.approx(0.7)
    (result,) = step_results(outcomes, spec, InstabilityOptions(), name="instability")
    assert result.passed and result.threshold_name == "max_mask_damage" and result.threshold == 0.8
    assert result.metric.startswith("one-shot mask damage") and "not per-step instability" in result.metric
    (strict,) = step_results(outcomes, spec, {"max_instability": 0.9, "max_mask_damage": 0.6}, name="instability")
    assert not strict.passed and "0.7000 > max_mask_damage 0.6" in strict.message
    payload = {"mask_mode": "unstructured", "max_instability": 0.5, "max_mask_damage": 0.6,
               "steps": [o.to_dict() for o in outcomes]}
    text = markdown.blocks(table.build([{"subject": "p", "payload": payload}]))
    assert "| one-shot mask damage |" in text and "**0.7000 > 0.6**" in text and "per-step instability |" not in text


# ------------------------------------------------------------------ the pure gate on hand-made accuracies
def _schedule_accuracies():
    from prunecheck.gates.stability import Step, StepAccuracy

    return [
        StepAccuracy(Step(1, 2, "net", "net-50-pre", "schedule"), "net-50-pre", 0.9, 0.81),  # 0.1
        StepAccuracy(Step(2, 2, "net-50", "net-80-pre", "schedule", "finetuned"), "net-80-pre", 0.8, 0.2),  # 0.75
    ]


def test_instability_gate_scores_every_step_and_reports_the_series_without_a_workspace():
    from prunecheck.config.options import InstabilityOptions
    from prunecheck.gates.stability import pruning_instability

    spec = PairSpec("p", "net", "net-80", "d", schedule=("net-50-pre", "net-80-pre"))
    outcome = pruning_instability(_schedule_accuracies(), spec, InstabilityOptions(max_instability=0.5))
    first, second = outcome.results
    assert first.passed and first.value == pytest.approx(0.1) and first.parent == 0.9 and first.pruned == 0.81
    assert not second.passed and second.value == pytest.approx(0.75) and second.threshold_name == "max_instability"
    assert second.metric == "instability step 2/2: fine-tuned 'net-50' (accuracy 0.8000) -> 'net-80-pre' before fine-tuning"
    ((section, subject, payload),) = outcome.records
    assert (section, subject, payload["source"], payload["max_instability"]) == ("instability", "p", "schedule", 0.5)
    assert [(s["index"], s["before"], s["after"]) for s in payload["steps"]] == [
        (1, "net", "net-50-pre"), (2, "net-50", "net-80-pre")]
    assert [s["instability"] for s in payload["steps"]] == [pytest.approx(0.1), pytest.approx(0.75)]


def test_instability_gate_fails_closed_under_the_pairs_quantity():
    from prunecheck.config.options import InstabilityOptions
    from prunecheck.gates.decide import Unavailable
    from prunecheck.gates.stability import Step, StepAccuracy, pruning_instability

    # what Pair.step_accuracies hands over when the mask does not fit
    structurally_pruned = Unavailable(ModelError("one-shot zero mask of 'small' on 'parent' impossible: shapes differ"))

    outcome = pruning_instability(structurally_pruned, PairSpec("p", "parent", "small", "d"), InstabilityOptions())
    (result,) = outcome.results
    assert not outcome.records and not result.passed and result.threshold_name == "max_mask_damage"
    assert result.metric == "one-shot mask damage" and "shapes differ" in result.reason
    # a checkpoint step whose accuracy before is 0: the instability is undefined
    zero = [StepAccuracy(Step(1, 1, "parent", "pre", "checkpoint"), "pre", 0.0, 0.0)]
    spec = PairSpec("p", "parent", "pruned", "d", pre_finetune="pre")
    (undefined,) = pruning_instability(zero, spec, InstabilityOptions()).results
    assert not undefined.passed and undefined.threshold_name == "max_instability"
    assert undefined.reason.startswith("cannot be computed (")
