"""prunecheck.gates.uncertainty: method rules, uncertainties, gates, and MC dropout through the workspace.

References are written here independently: plain Python loops for the variance,
disagreement and bootstrap interval, scipy for Spearman, hand-worked examples for
the blur rule.
"""

from __future__ import annotations

import math
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from prunecheck.report import markdown
from prunecheck import metrics
from prunecheck.config.options import UncertaintyOptions
from prunecheck.config.settings import ModelSpec
from prunecheck.engine.predictor import Predictions
from prunecheck.gates.decide import Outcome, Unavailable
from prunecheck.gates import uncertainty
from prunecheck.session import uncertainty as session_uncertainty
from prunecheck.session.pairs import Pair
from prunecheck.nn.models import ensemble_from_members, model_from_module
from prunecheck.report.tables import uncertainty as table
from prunecheck.strategies import member_stacks
from prunecheck.testing import (
    DropoutRedChannelNet,
    RedChannelNet,
    class_colour_images,
    dropout_red_channel_weights,
    write_cifar10,
)
from prunecheck.core.views import NOMINAL, blur


# --------------------------------------------------------------------------- helpers
def preds(member_probs, labels, *, model="m", view=NOMINAL, average="probs") -> Predictions:
    p = torch.as_tensor(np.asarray(member_probs), dtype=torch.float32)
    if p.ndim == 2:
        p = p[None]
    return Predictions(model=model, dataset="d", view=view, log_probs=p.clamp_min(1e-30).log(),
                       labels=torch.as_tensor(np.asarray(labels), dtype=torch.int64), average=average)


def options_of(**options) -> UncertaintyOptions:
    """``[gates.uncertainty]`` with these options (validated as when a config is loaded)."""
    return UncertaintyOptions.from_table(options)


BOOTSTRAP = {"n_resamples": 200, "seed": 0}


def softmax_rows(n=400, c=4, *, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 1.5
    probs = torch.softmax(logits, 1)
    labels = torch.multinomial(probs, 1, generator=g)[:, 0]  # drawn from the parent: calibrated in expectation
    return probs, torch.softmax(logits * scale, 1), labels


# --------------------------------------------------------------------------- uncertainties
@settings(max_examples=50, deadline=None)
@given(member_stacks(min_members=1, max_members=4, max_size=10))
def test_predicted_class_variance_matches_a_loop(stack):
    stack = torch.as_tensor(stack)
    probs = stack.mean(0)
    got = uncertainty.predicted_class_variance(stack, probs)
    m, n, _ = stack.shape
    for i in range(n):
        k = int(probs[i].argmax())
        values = [float(stack[j, i, k]) for j in range(m)]
        mean = sum(values) / m
        assert float(got[i]) == pytest.approx(sum((v - mean) ** 2 for v in values) / m, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(member_stacks(min_members=1, max_members=4, max_size=10))
def test_per_sample_disagreement_matches_a_loop_and_the_metric(stack):
    t = torch.as_tensor(stack)
    got = uncertainty.per_sample_disagreement(t)
    m, n, c = stack.shape
    for i in range(n):
        mean = [sum(stack[j, i, k] for j in range(m)) / m for k in range(c)]
        kl = [sum(stack[j, i, k] * math.log(stack[j, i, k] / mean[k]) for k in range(c) if stack[j, i, k] > 0)
              for j in range(m)]
        assert float(got[i]) == pytest.approx(max(0.0, sum(kl) / m) if m else 0.0, abs=1e-9)
    assert float(got.mean()) == pytest.approx(metrics.disagreement(t), abs=1e-9)


def test_uncertainty_kinds():
    p = preds([[[0.6, 0.4], [0.2, 0.8]], [[1.0, 0.0], [0.4, 0.6]]], [0, 1])
    # combined probs: (0.8, 0.2), (0.3, 0.7) -> msp 0.2, 0.3; class-0 probs 0.6/1.0 var 0.04, class-1 0.8/0.6 var 0.01
    assert uncertainty.per_sample_uncertainty(p, "msp").tolist() == pytest.approx([0.2, 0.3], abs=1e-6)
    assert uncertainty.per_sample_uncertainty(p, "variance").tolist() == pytest.approx([0.04, 0.01], abs=1e-6)
    with pytest.raises(uncertainty.GateError, match="several members or MC passes, found 1"):
        uncertainty.per_sample_uncertainty(preds([[0.5, 0.5]], [0]), "variance")
    assert uncertainty.uncertainty_kind("msp", "variance") == "msp"
    assert uncertainty.uncertainty_kind("ensemble", "variance") == "variance"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.integers(-3, 3)), min_size=2, max_size=8))
def test_spearman_matches_scipy(points):
    x, y = [float(a) for a, _ in points], [float(b) for _, b in points]
    got = uncertainty.spearman(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_hand_example():
    # ranks of y: 1, 3, 2, 4 -> d = 0, 1, 1, 0 -> 1 - 6 * 2 / (4 * 15) = 0.8
    assert uncertainty.spearman([0, 1, 2, 3], [0.1, 0.2, 0.15, 0.4]) == pytest.approx(0.8)


# --------------------------------------------------------------------------- methods
def test_method_problems_say_what_is_wrong():
    plain = model_from_module("plain", RedChannelNet())
    dropped = model_from_module("dropped", DropoutRedChannelNet())
    ens = ensemble_from_members("ens", [plain, model_from_module("other", RedChannelNet(scale=2))],
                                ModelSpec(name="ens", members=("plain", "other")))
    assert uncertainty.method_problem("msp", plain, plain, mc_passes=5) is None
    assert uncertainty.method_problem("mc_dropout", dropped, dropped, mc_passes=5) is None
    message = uncertainty.method_problem("mc_dropout", dropped, plain, mc_passes=5)
    assert "model 'plain' contains no dropout module" in message
    assert "mc_passes >= 2, found 1" in uncertainty.method_problem("mc_dropout", dropped, dropped, mc_passes=1)
    assert "found single model 'plain'" in uncertainty.method_problem("ensemble", ens, plain, mc_passes=5)
    assert uncertainty.method_problem("ensemble", ens, ens, mc_passes=5) is None
    assert "unknown uncertainty method 'bayes'" in uncertainty.method_problem("bayes", plain, plain, mc_passes=5)


# --------------------------------------------------------------------------- gates
def test_identical_predictions_pass_every_drift_gate_with_zero_drift():
    parent, _, labels = softmax_rows()
    results, payload = uncertainty.drift_gates(preds(parent, labels), preds(parent, labels), options_of(),
                                               method="msp", subject="pair", **BOOTSTRAP)
    assert [r.metric for r in results] == ["AUSE increase [msp]", "ECE increase [msp]", "NLL increase [msp]"]
    assert all(r.passed and r.value == 0.0 for r in results)
    assert payload["parent"] == payload["pruned"]
    assert payload["parent"]["accuracy"] == pytest.approx(float((parent.argmax(1) == labels).float().mean()))
    assert len(payload["parent"]["reliability"]["counts"]) == 15 and sum(payload["parent"]["reliability"]["counts"]) == 400


def test_overconfident_logits_fail_ece_with_the_same_accuracy():
    parent, sharp, labels = softmax_rows(scale=3.0)
    results, _ = uncertainty.drift_gates(preds(parent, labels), preds(sharp, labels), options_of(),
                                         method="msp", subject="pair", **BOOTSTRAP)
    ece = results[1]
    assert not ece.passed and ece.value > 0.02
    assert ece.message.startswith("ECE increase [msp] ") and "> max_ece_increase 0.02 (parent" in ece.message
    assert metrics.accuracy(parent, labels) == metrics.accuracy(sharp, labels)


def test_variance_ause_uses_each_models_own_variance_and_bootstraps_in_confident_mode():
    g = torch.Generator().manual_seed(3)
    parent_members = torch.softmax(torch.randn(3, 80, 4, generator=g), -1)
    pruned_members = torch.softmax(torch.randn(3, 80, 4, generator=g) * 2, -1)
    labels = torch.randint(0, 4, (80,), generator=g)
    options = options_of(ause_uncertainty="variance", mode="confident", max_ause_increase=1.0)
    parent, pruned = preds(parent_members, labels), preds(pruned_members, labels)
    results, payload = uncertainty.drift_gates(parent, pruned, options,
                                               method="ensemble", subject="pair", **BOOTSTRAP)
    ause = results[0]
    assert ause.metric == "AUSE increase [ensemble] (variance)" and payload["uncertainty"] == "variance"

    def loop_variance(members):  # population variance of the predicted class, by hand
        probs = members.double().mean(0)
        out = []
        for i in range(members.shape[1]):
            values = members[:, i, int(probs[i].argmax())].double()
            out.append(float(((values - values.mean()) ** 2).mean()))
        return torch.tensor(out)

    expected = (metrics.ause(pruned.probs, labels, uncertainty=loop_variance(pruned_members))
                - metrics.ause(parent.probs, labels, uncertainty=loop_variance(parent_members)))
    assert ause.value == pytest.approx(expected, abs=1e-9)
    assert ause.ci is not None and ause.ci[0] <= ause.value <= ause.ci[1] and ause.ci[0] < ause.ci[1]
    assert ause.passed  # threshold 1.0: the whole interval is within it


def test_paired_interval_matches_a_naive_bootstrap_loop():
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(40, generator=g, dtype=torch.float64), torch.rand(40, generator=g, dtype=torch.float64)
    estimate = float(b.mean() - a.mean())
    low, high = uncertainty.paired_interval(uncertainty._mean_of(a), uncertainty._mean_of(b), 40, estimate,
                                            n_resamples=300, seed=7)
    idx = metrics.bootstrap_indices(40, n_resamples=300, seed=7)
    diffs = [float(b.numpy()[row].mean() - a.numpy()[row].mean()) for row in idx]
    want = np.percentile(diffs, [2.5, 97.5])
    assert (low, high) == pytest.approx((min(want[0], estimate), max(want[1], estimate)), abs=1e-12)


def test_ood_gates_catch_lost_entropy_and_disagreement():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 50, 5, generator=g)
    labels = torch.zeros(50, dtype=torch.int64)
    calm, sharp = torch.softmax(logits, -1), torch.softmax(logits * 4, -1)
    options = options_of()
    results, payload = uncertainty.ood_gates(preds(calm, labels), preds(sharp, labels), options,
                                             method="mc_dropout", subject="pair", **BOOTSTRAP)
    assert [r.metric for r in results] == ["OOD entropy drop [mc_dropout]", "OOD disagreement drop [mc_dropout]"]
    entropy = results[0]
    assert not entropy.passed
    assert entropy.parent == pytest.approx(metrics.predictive_entropy(calm.mean(0)), abs=1e-5)
    assert entropy.value == pytest.approx(entropy.parent - entropy.pruned)
    assert payload["disagreement"]["parent"] == pytest.approx(metrics.disagreement(calm), abs=1e-5)
    confident, _ = uncertainty.ood_gates(preds(calm, labels), preds(sharp, labels), options_of(mode="confident"),
                                         method="ensemble", subject="pair", **BOOTSTRAP)
    for r in confident:  # the paired bootstrap interval brackets the estimate
        assert r.ci is not None and r.ci[0] <= r.value <= r.ci[1]
    # sharper members lose entropy but disagree MORE with each other: only the entropy gate fails
    assert [r.passed for r in confident] == [False, True]
    single, _ = uncertainty.ood_gates(preds(calm[0], labels), preds(calm[0], labels), options,
                                      method="msp", subject="pair", **BOOTSTRAP)
    assert [r.passed for r in single] == [True]  # MSP: entropy only


def _blur_preds(uncertainties):
    """Two-class predictions whose mean 1 - max p is the given value at each radius."""
    out = []
    for u in uncertainties:
        out.append(preds([[1 - u, u]] * 4, [0] * 4))
    return out


@pytest.mark.parametrize(
    "parent_u, pruned_u, passed, threshold",
    [
        ([0.1, 0.2, 0.3, 0.4], [0.1, 0.15, 0.2, 0.3], True, 0.8),  # both rise
        ([0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.2, 0.1], False, 0.8),  # parent rises, pruned falls
        ([0.1, 0.2, 0.3, 0.4], [0.2, 0.2, 0.2, 0.2], False, 0.8),  # constant pruned: correlation 0
        ([0.4, 0.1, 0.3, 0.2], [0.4, 0.3, 0.2, 0.1], True, -math.inf),  # parent does not rise: not enforced
    ],
)
def test_blur_rule(parent_u, pruned_u, passed, threshold):
    result, payload = uncertainty.blur_gate([0, 1, 2, 3], _blur_preds(parent_u), _blur_preds(pruned_u), options_of(),
                                            method="msp", subject="pair")
    assert result.passed is passed and result.threshold == threshold
    assert payload["parent"]["mean_uncertainty"] == pytest.approx(parent_u, abs=1e-6)
    if threshold == -math.inf:
        assert "not enforced" in result.metric and "does not rise" in result.details["note"]
        assert result.details["parent_rises"] is False
    if not passed:
        assert "< min_blur_spearman 0.8" in result.message


def test_blur_with_nan_uncertainty_fails_closed():
    bad = _blur_preds([0.1, 0.2, 0.3, 0.4])
    bad[2] = Predictions(model="m", dataset="d", view=NOMINAL, log_probs=torch.full((1, 4, 2), float("nan")),
                         labels=torch.zeros(4, dtype=torch.int64))
    result, _ = uncertainty.blur_gate([0, 1, 2, 3], _blur_preds([0.1, 0.2, 0.3, 0.4]), bad, options_of(),
                                      method="msp", subject="pair")
    assert not result.passed and "fails closed" in result.message


def test_blur_views_share_the_nominal_view_at_radius_zero():
    assert session_uncertainty.blur_views([0, 1.5]) == [NOMINAL, blur(1.5)]


# --------------------------------------------------------------------------- one test node each (pure)
def test_drift_node_returns_the_gates_and_one_report_entry_from_hand_made_predictions():
    parent, sharp, labels = softmax_rows(scale=3.0)
    p, q = preds(parent, labels, model="par"), preds(sharp, labels, model="pru")
    outcome = uncertainty.drift((p, q), options_of(), method="msp", subject="pair", **BOOTSTRAP)
    results, payload = uncertainty.drift_gates(p, q, options_of(), method="msp", subject="pair", **BOOTSTRAP)
    assert isinstance(outcome, Outcome)
    assert [r.to_dict() for r in outcome.results] == [r.to_dict() for r in results]
    assert outcome.records == (("uncertainty", "pair", payload),)
    assert not outcome.results[1].passed  # sharper logits: the ECE gate fails (see above)


def test_drift_node_combines_members_as_the_seed000_protocol_says():
    g = torch.Generator().manual_seed(11)
    log_sm = torch.log_softmax(torch.randn(3, 120, 4, generator=g) * 2.0, -1)
    labels = torch.randint(0, 4, (120,), generator=g)
    p = Predictions(model="m", dataset="d", view=NOMINAL, log_probs=log_sm, labels=labels)  # average="probs"
    outcome = uncertainty.drift((p, p), options_of(protocol="seed000"), method="ensemble", subject="pair")
    nll = [r for r in outcome.results if r.metric.startswith("NLL")][0]
    assert nll.metric == "NLL increase [ensemble] (softmax of mean logits)"
    mean = log_sm.double().numpy().mean(0)  # Eq. 6 by hand: softmax of the mean log-softmax outputs
    probs = np.exp(mean) / np.exp(mean).sum(-1, keepdims=True)
    want = float(np.mean([-np.log(probs[i, labels[i]]) for i in range(120)]))
    assert nll.parent == pytest.approx(want, abs=1e-5)
    assert outcome.records[0][2]["protocol"] == "seed000"


def test_unavailable_predictions_fail_every_gate_of_the_node_closed_with_the_reason():
    missing = Unavailable(uncertainty.GateError("model 'b' could not be loaded"))
    drift = uncertainty.drift(missing, options_of(), method="mc_dropout", subject="pair")
    assert [r.metric for r in drift.results] == [
        "AUSE increase [mc_dropout]", "ECE increase [mc_dropout]", "NLL increase [mc_dropout]"]
    assert all(not r.passed and r.reason == "model 'b' could not be loaded; the gate fails closed"
               for r in drift.results)
    assert drift.records == ()  # nothing was measured: no report entry
    assert [r.threshold for r in drift.results] == [0.01, 0.02, 0.1]
    ood = uncertainty.ood(missing, options_of(), method="ensemble", subject="pair")
    assert [r.threshold_name for r in ood.results] == ["ood_max_entropy_drop", "ood_max_disagreement_drop"]
    assert all(not r.passed and r.view == "ood" for r in ood.results)
    blurred = uncertainty.blur(missing, options_of(), method="msp", subject="pair")
    (result,) = blurred.results
    assert not result.passed and result.direction == "min" and "could not be loaded" in result.message


def test_a_value_that_cannot_be_computed_fails_its_gate_closed_and_adds_no_number():
    labels = torch.zeros(6, dtype=torch.int64)
    good = preds(torch.softmax(torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(2)), -1), labels)
    nan = Predictions(model="nan", dataset="svhn", view=NOMINAL, log_probs=torch.full((3, 6, 4), float("nan")),
                      labels=labels)
    results, payload = uncertainty.ood_gates(nan, good, options_of(mode="confident"), method="ensemble",
                                             subject="pair", **BOOTSTRAP)
    assert [r.passed for r in results] == [False, False] and all(math.isnan(r.value) for r in results)
    assert all(r.reason.startswith("cannot be computed (") and r.view == "ood:svhn" for r in results)
    assert "entropy" not in payload and "disagreement" not in payload
    variance = options_of(ause_uncertainty="variance")  # a single-member model has no variance
    results, _ = uncertainty.drift_gates(preds(good.probs, labels), good, variance, method="ensemble",
                                         subject="pair", **BOOTSTRAP)
    assert not results[0].passed and "several members or MC passes, found 1" in results[0].reason


def test_blur_node_takes_one_pair_per_radius_in_option_order():
    radii = [0.0, 1.0, 2.0, 3.0]
    parents, pruneds = _blur_preds([0.1, 0.2, 0.3, 0.4]), _blur_preds([0.3, 0.2, 0.2, 0.1])
    outcome = uncertainty.blur(list(zip(parents, pruneds)), options_of(blur_radii=radii), method="msp", subject="s")
    (result,) = outcome.results
    assert not result.passed and result.view == "blur0,1,2,3"
    assert result.parent == pytest.approx(1.0) and result.pruned == pytest.approx(stats.spearmanr(radii, [0.3, 0.2, 0.2, 0.1])[0])
    assert outcome.records[0][:2] == ("uncertainty", "s") and outcome.records[0][2]["kind"] == "blur"
    with pytest.raises(ValueError, match=r"one \(parent, pruned\) per radius \(4\), found 3"):
        uncertainty.blur(list(zip(parents, pruneds))[:3], options_of(blur_radii=radii), method="msp")


def test_the_session_hands_over_why_a_method_does_not_apply():
    plain = model_from_module("plain", RedChannelNet())
    workspace = SimpleNamespace(model=lambda name: plain)
    pair = Pair(SimpleNamespace(name="p", parent="x", pruned="y", ood_dataset=None), workspace)
    got = pair.uncertainty_predictions("mc_dropout", {"mc_passes": 5})
    assert isinstance(got, Unavailable) and "method 'mc_dropout' is configured, but model 'plain'" in got.reason
    assert pair.ood_predictions("msp", {"mc_passes": 5}).reason == "the pair has no ood_dataset"
    assert isinstance(pair.blur_predictions("mc_dropout", {"mc_passes": 5, "blur_radii": [0, 1]}), Unavailable)


# --------------------------------------------------------------------------- MC dropout through the workspace
def _workspace(tmp_path, cache):
    from prunecheck.config.loader import load_settings
    from prunecheck.session.workspace import Workspace

    images, labels = class_colour_images(64)
    write_cifar10(tmp_path / "data", images, labels)
    torch.save(dropout_red_channel_weights(sharpness=30.0, running_mean=0.25, running_var=2.0), tmp_path / "do.pt")
    (tmp_path / "prunecheck.toml").write_text(textwrap.dedent(f"""
        [run]
        device = "cpu"
        batch_size = 16
        cache_dir = "{cache}"
        [datasets.colours]
        kind = "cifar10"
        root = "data"
        mean = [0.0, 0.0, 0.0]
        std = [1.0, 1.0, 1.0]
        [models.a]
        factory = "prunecheck.testing:DropoutRedChannelNet"
        weights = "do.pt"
        [models.b]
        factory = "prunecheck.testing:DropoutRedChannelNet"
        kwargs = {{ scale = 2.0 }}
        weights = "do.pt"
        [[pairs]]
        name = "p"
        parent = "a"
        pruned = "b"
        dataset = "colours"
        methods = ["mc_dropout"]
    """))
    s = load_settings(tmp_path / "prunecheck.toml")
    ws = Workspace(s)
    return ws, Pair(s.pairs[0], ws), s.gates["uncertainty"]


def test_mc_dropout_is_deterministic_and_leaves_batchnorm_statistics_alone(tmp_path):
    ws, pair, options = _workspace(tmp_path, tmp_path / "cache1")
    bn = ws.model("a").module.bn
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    parent, pruned = session_uncertainty.method_predictions(pair.workspace, pair.spec, "mc_dropout", options)
    assert parent.num_members == options["mc_passes"] == 5
    assert not torch.equal(parent.member_probs[0], parent.member_probs[1])  # dropout really on
    after = (bn.running_mean, bn.running_var, int(bn.num_batches_tracked))
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1]) and before[2] == after[2] == 0
    assert torch.equal(bn.running_mean, torch.tensor([0.25])) and torch.equal(bn.running_var, torch.tensor([2.0]))
    assert not ws.model("a").module.training and not bn.training
    # A second, independent run (fresh workspace, empty cache) gives identical passes.
    ws2, pair2, _ = _workspace(tmp_path, tmp_path / "cache2")
    parent2, pruned2 = session_uncertainty.method_predictions(pair2.workspace, pair2.spec, "mc_dropout", options)
    assert torch.equal(parent.log_probs, parent2.log_probs) and torch.equal(pruned.log_probs, pruned2.log_probs)
    assert ws2.engine.forward_passes > 0


def _scripted_pair(tmp_path, how: str):
    """A pair of TorchScript DropoutRedChannelNets (``torch.jit.script`` or ``torch.jit.trace``)."""
    from prunecheck.config.loader import load_settings
    from prunecheck.session.workspace import Workspace

    images, labels = class_colour_images(64)
    write_cifar10(tmp_path / "data", images, labels)
    for name, scale in (("a", 1.0), ("b", 2.0)):
        net = DropoutRedChannelNet(scale=scale)
        net.load_state_dict(dropout_red_channel_weights(sharpness=30.0, running_mean=0.25, running_var=2.0))
        net.eval()
        compiled = torch.jit.script(net) if how == "script" else torch.jit.trace(net, torch.rand(2, 3, 32, 32))
        torch.jit.save(compiled, str(tmp_path / f"{name}.pt"))
    (tmp_path / "prunecheck.toml").write_text(textwrap.dedent(f"""
        [run]
        device = "cpu"
        cache_dir = "{tmp_path / 'cache'}"
        [datasets.colours]
        kind = "cifar10"
        root = "data"
        mean = [0.0, 0.0, 0.0]
        std = [1.0, 1.0, 1.0]
        [models.a]
        format = "torchscript"
        weights = "a.pt"
        [models.b]
        format = "torchscript"
        weights = "b.pt"
        [[pairs]]
        name = "p"
        parent = "a"
        pruned = "b"
        dataset = "colours"
        methods = ["mc_dropout"]
    """))
    s = load_settings(tmp_path / "prunecheck.toml")
    return Pair(s.pairs[0], Workspace(s)), s.gates["uncertainty"]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_mc_dropout_passes_differ_on_a_scripted_model(tmp_path):
    pair, options = _scripted_pair(tmp_path, "script")
    parent, pruned = session_uncertainty.method_predictions(pair.workspace, pair.spec, "mc_dropout", options)
    for p in (parent, pruned):  # every pair of passes differs somewhere (p = 0.3 dropout on the logits)
        m = p.member_probs
        assert all(float((m[i] - m[j]).abs().max()) > 0.01 for i in range(5) for j in range(i))
    assert float(uncertainty.predicted_class_variance(parent.member_probs, parent.probs).mean()) > 1e-4


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_mc_dropout_on_a_traced_model_fails_closed(tmp_path):
    pair, options = _scripted_pair(tmp_path, "trace")  # tracing in eval mode compiles dropout out
    with pytest.raises(uncertainty.GateError, match="MC dropout passes are identical.*torch.jit.trace"):
        session_uncertainty.method_predictions(pair.workspace, pair.spec, "mc_dropout", options)


def test_mc_dropout_on_a_model_without_dropout_raises_a_gate_error():
    plain = model_from_module("plain", RedChannelNet())
    workspace = SimpleNamespace(model=lambda name: plain)
    spec = SimpleNamespace(name="p", parent="x", pruned="y")
    with pytest.raises(uncertainty.GateError, match="pair 'p': method 'mc_dropout' is configured, but model"):
        session_uncertainty.method_predictions(workspace, spec, "mc_dropout", {"mc_passes": 5})


# --------------------------------------------------------------------------- report table
def test_table_renders_drift_ood_and_blur_rows():
    parent, sharp, labels = softmax_rows(scale=3.0)
    _, drift = uncertainty.drift_gates(preds(parent, labels, model="par"), preds(sharp, labels, model="pru"), options_of(),
                                       method="msp", subject="pair", **BOOTSTRAP)
    entries = [
        {"section": "uncertainty", "subject": "pair", "payload": drift},
        {"section": "uncertainty", "subject": "pair", "payload": {
            "kind": "ood", "method": "msp", "dataset": "svhn", "n": 3, "entropy": {"parent": 1.25, "pruned": 0.5}}},
        {"section": "uncertainty", "subject": "pair", "payload": {
            "kind": "blur", "method": "msp", "uncertainty": "msp", "radii": [0.0, 1.0],
            "parent": {"mean_uncertainty": [0.1, 0.2], "spearman": 1.0},
            "pruned": {"mean_uncertainty": [0.1, 0.1], "spearman": 0.0}, "parent_rises": True, "threshold": 0.8}},
    ]
    text = markdown.blocks(table.build(entries))
    assert f"| {drift['parent']['ece']:.4f} |".replace(" |", "") in text
    assert "parent: par" in text and "pruned: pru" in text
    assert "1.2500" in text and "0.5000" in text and "0.1000, 0.2000" in text
    assert text.index("AUSE") < text.index("Out-of-distribution") < text.index("Gaussian blur")


# --------------------------------------------------------------------------- seed 000's protocol
def _numpy_seed000(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15):
    """Seed 000 Eq. 6 by hand: softmax of mean logits, predicted class's variance over members,
    min-max normalised to [0, 1] for the ECE (Sec. 6.1); logits here are log-softmax outputs."""
    log_sm = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    mean = log_sm.mean(0)
    probs = np.exp(mean) / np.exp(mean).sum(-1, keepdims=True)
    k = probs.argmax(1)
    var = np.array([np.var([log_sm[m, i, k[i]] for m in range(len(logits))]) for i in range(len(labels))])
    conf = 1.0 - (var - var.min()) / (var.max() - var.min())
    total = 0.0
    for b in range(n_bins):
        inside = [i for i in range(len(labels)) if b / n_bins <= conf[i] < (b + 1) / n_bins or (b == n_bins - 1 and conf[i] >= 1)]
        if inside:
            acc = np.mean([k[i] == labels[i] for i in inside])
            total += len(inside) / len(labels) * abs(acc - np.mean(conf[inside]))
    return probs, var, total


def test_seed000_protocol_matches_eq6_and_the_normalised_variance_ece():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 300, 5, generator=g) * 2.0 + torch.randn(1, 300, 5, generator=g) * 2.0
    labels = torch.randint(0, 5, (300,), generator=g)
    p = Predictions(model="m", dataset="d", view=NOMINAL, log_probs=torch.log_softmax(logits, -1), labels=labels)
    options = {"protocol": "seed000"}
    seeded = uncertainty.with_protocol(p, "ensemble", options)
    probs, var, ece = _numpy_seed000(logits.double().numpy(), labels.numpy())
    np.testing.assert_allclose(seeded.probs.numpy(), probs, atol=1e-5)
    kind = uncertainty.uncertainty_kind("ensemble", "msp", "seed000")
    np.testing.assert_allclose(uncertainty.per_sample_uncertainty(seeded, kind).numpy(), var, rtol=1e-4, atol=1e-6)
    _, payload = uncertainty.drift_gates(seeded, seeded, options_of(protocol="seed000"),
                                         method="ensemble", subject="pair", **BOOTSTRAP)
    assert payload["protocol"] == "seed000" and payload["uncertainty"] == "logit_variance"
    assert payload["parent"]["ece"] == pytest.approx(ece, abs=1e-5)
    assert abs(payload["parent"]["ece"] - metrics.ece(seeded.probs, labels)) > 0.05  # not the max-p ECE
    # MSP keeps 1 - max p and the max-p ECE under either protocol
    assert uncertainty.uncertainty_kind("msp", "msp", "seed000") == "msp"
    assert uncertainty.with_protocol(p, "msp", options).average == "probs"


def test_seed000_ece_gate_bootstraps_in_confident_mode_and_bad_protocol_fails_closed():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 200, 4, generator=g) * 2.0
    labels = torch.randint(0, 4, (200,), generator=g)
    p = Predictions(model="m", dataset="d", view=NOMINAL, log_probs=torch.log_softmax(logits, -1), labels=labels)
    results, _ = uncertainty.drift_gates(p, p, options_of(protocol="seed000", mode="confident"),
                                         method="mc_dropout", subject="pair", **BOOTSTRAP)
    ece_gate = [r for r in results if r.metric.startswith("ECE increase")][0]
    assert "normalised logit variance" in ece_gate.metric and ece_gate.value == 0.0 and ece_gate.ci == (0.0, 0.0)
    from prunecheck.config.options import OptionError, UncertaintyOptions

    with pytest.raises(OptionError, match="expected one of 'prunecheck', 'seed000', found string 'paper'"):
        UncertaintyOptions.from_table({"protocol": "paper"})  # refused when the config is loaded
