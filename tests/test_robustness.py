"""prunecheck.gates.robustness: shifted views, prune-accuracy curves, prune potential, excess error.

References are written here independently: plain loops over the curves and small
families worked out by hand.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunecheck.report import markdown
from prunecheck.config.options import CorruptionsOptions
from prunecheck.config.settings import FamilyMember, FamilySpec
from prunecheck.core.views import corruption, noise
from prunecheck.gates import robustness as R
from prunecheck.gates.decide import Outcome, Unavailable
from prunecheck.session import families
from prunecheck.report.tables import corruptions as corruption_table
from prunecheck.report.tables import prune_potential as potential_table
from prunecheck.session.pairs import Family

# -- configured shifts --------------------------------------------------------------------


def _opts(table):
    """Corruption options at their defaults, with ``table`` on top (partial tables in tests)."""
    return {**CorruptionsOptions(), **table}


def test_shifts_are_corruption_major_then_noise_levels():
    shifts = R.configured_shifts(
        {"corruptions": ["fog", "gaussian_noise"], "severities": [3, 1], "noise_levels": [0.0, 0.1, 0.25]}
    )
    assert [s.id for s in shifts] == ["fog-3", "fog-1", "gaussian_noise-3", "gaussian_noise-1", "noise0.1", "noise0.25"]
    assert shifts[0].view == corruption("fog", 3)
    assert shifts[-1].view == noise(0.25, 0)


def test_group_words_expand_to_the_benchmark():
    shifts = R.configured_shifts({"corruptions": "benchmark", "severities": [3], "noise_levels": [0.0]})
    assert len(shifts) == 15 and shifts[0].id == "gaussian_noise-3" and shifts[-1].id == "jpeg_compression-3"
    extra = R.configured_shifts({"corruptions": ["extra"], "severities": [2, 2], "noise_levels": []})
    assert [s.id for s in extra] == ["speckle_noise-2", "gaussian_blur-2", "spatter-2", "saturate-2"]


def test_noise_only_is_allowed():
    shifts = R.configured_shifts({"corruptions": [], "severities": [3], "noise_levels": [0.1]})
    assert [s.id for s in shifts] == ["noise0.1"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"corruptions": ["fogg"]}, "corruptions: unknown corruption 'fogg'"),
        ({"corruptions": ["fog"], "severities": [6]}, "severities: corruption severity: expected an integer in 1..5, found 6"),
        ({"corruptions": ["fog"], "severities": []}, "severities: expected at least one severity"),
        ({"corruptions": ["fog"], "noise_levels": [-0.1]}, "noise_levels: expected finite numbers >= 0"),
        ({"corruptions": [], "noise_levels": [0.0]}, "expected at least one corruption or a noise level > 0"),
        ({"corruptions": ["fog"], "severities": 3}, "severities: expected a list, found int 3"),
    ],
)
def test_bad_options_say_what_is_wrong(options, expected):
    with pytest.raises(ValueError, match="^" + _escape(expected)):
        R.configured_shifts({"severities": [3], "noise_levels": [0.0], **options})


def _escape(text: str) -> str:
    return re.escape(text)


# -- curves and the pure computations ------------------------------------------------------


def _curves(**overrides):
    # The hand-worked family of tests/test_corruption_suite.py, members given out of order.
    values = dict(
        family="fam", parent="p",
        members=["noisy", "clean", "dropped", "mild"],
        ratios=[0.5, 0.1, 0.7, 0.4],
        parent_accuracy={"nominal": 1.0, "noise0.1": 1.0, "noise0.2": 1.0},
        accuracy={
            "nominal": [1.0, 1.0, 0.9, 1.0],
            "noise0.1": [0.8, 1.0, 0.9, 1.0],
            "noise0.2": [0.7, 1.0, 0.9, 0.9],
        },
        deployed="mild",
    )
    values.update(overrides)
    return R.curves_from_accuracies(**values)


def test_curves_are_sorted_by_ratio():
    curves = _curves()
    assert curves.members == ("clean", "mild", "noisy", "dropped")
    assert curves.ratios == (0.1, 0.4, 0.5, 0.7)
    assert curves.accuracy[2] == (1.0, 0.9, 0.7, 0.9)
    assert curves.shift_views == ("noise0.1", "noise0.2")
    assert curves.errors("noise0.1") == pytest.approx((0.0, 0.0, 0.2, 0.1))


def test_hand_worked_potentials_and_excess_errors():
    curves = _curves()
    potentials = R.prune_potentials(curves, 0.005)
    assert potentials == {"nominal": 0.5, "noise0.1": 0.4, "noise0.2": 0.1}
    assert R.policy_potential(potentials, "mean") == pytest.approx(0.25)
    assert R.policy_potential(potentials, "min") == pytest.approx(0.1)
    assert R.potential_summary(potentials) == {
        "train": {"average": 0.5, "minimum": 0.5},
        "test": {"average": pytest.approx(0.25), "minimum": 0.1},
    }
    parent, members = R.excess_errors(curves)
    # clean 0; mild (0 + 0.1)/2; noisy (0.2 + 0.3)/2; dropped (0.1 + 0.1)/2 - 0.1
    assert parent == 0.0
    assert members == pytest.approx((0.0, 0.05, 0.25, 0.0))


def test_potential_uses_the_parents_error_on_the_same_view():
    # Under noise the parent drops to 0.80; a member at 0.796 is within delta of *that*.
    curves = _curves(
        parent_accuracy={"nominal": 1.0, "noise0.1": 0.8, "noise0.2": 0.8},
        accuracy={"nominal": [1.0] * 4, "noise0.1": [0.796, 0.9, 0.7, 0.5], "noise0.2": [0.5] * 4},
    )
    assert R.prune_potentials(curves, 0.005) == {"nominal": 0.7, "noise0.1": 0.5, "noise0.2": 0.0}


def test_delta_is_inclusive():
    curves = _curves(
        parent_accuracy={"nominal": 0.9, "noise0.1": 0.9, "noise0.2": 0.9},
        accuracy={"nominal": [0.895] * 4, "noise0.1": [0.8949] * 4, "noise0.2": [0.9] * 4},
    )
    assert R.prune_potentials(curves, 0.005) == {"nominal": 0.7, "noise0.1": 0.0, "noise0.2": 0.7}


def _reference_potentials(ratios, parent_acc, acc, delta):
    out = {}
    for view in parent_acc:
        best = 0.0
        for k, ratio in enumerate(ratios):
            if (1 - acc[view][k]) - (1 - parent_acc[view]) <= delta + 1e-12:
                best = max(best, ratio)
        out[view] = best
    return out


accuracies = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    k=st.integers(1, 6),
    n_shift=st.integers(1, 4),
    delta=st.sampled_from([0.0, 0.005, 0.05]),
)
def test_potentials_and_excess_errors_match_plain_loops(data, k, n_shift, delta):
    views = ["nominal"] + [f"v{i}" for i in range(n_shift)]
    ratios = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=k, max_size=k))
    parent_acc = {v: data.draw(accuracies) for v in views}
    acc = {v: data.draw(st.lists(accuracies, min_size=k, max_size=k)) for v in views}
    curves = R.curves_from_accuracies(
        family="f", parent="p", members=[f"m{i}" for i in range(k)], ratios=ratios,
        parent_accuracy=parent_acc, accuracy=acc,
    )
    potentials = R.prune_potentials(curves, delta)
    assert potentials == pytest.approx(_reference_potentials(ratios, parent_acc, acc, delta))
    shifted = [potentials[v] for v in views[1:]]
    assert R.policy_potential(potentials, "mean") == pytest.approx(sum(shifted) / len(shifted))
    assert R.policy_potential(potentials, "min") == min(shifted)
    parent, members = R.excess_errors(curves)
    assert parent == pytest.approx(np.mean([1 - parent_acc[v] for v in views[1:]]) - (1 - parent_acc["nominal"]))
    by_member = dict(zip(curves.members, members))
    for i in range(k):
        expected = np.mean([1 - acc[v][i] for v in views[1:]]) - (1 - acc["nominal"][i])
        assert by_member[f"m{i}"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ratios": [0.5, 0.1, 0.7]}, "expected one ratio per member"),
        ({"ratios": [0.5, 0.1, 1.7, 0.4]}, "prune ratio of 'dropped': expected a fraction in [0, 1], found 1.7"),
        ({"parent_accuracy": {"noise0.1": 1.0, "nominal": 1.0, "noise0.2": 1.0}}, "expected 'nominal' as the first view"),
        ({"parent_accuracy": {"nominal": 1.0}, "accuracy": {"nominal": [1.0] * 4}}, "at least one shifted view"),
        ({"deployed": "other"}, "deployed: expected one of"),
        ({"parent_accuracy": {"nominal": 1.0, "noise0.1": math.nan, "noise0.2": 1.0}}, "expected accuracies in [0, 1], found nan"),
    ],
)
def test_bad_curves_are_rejected(overrides, expected):
    with pytest.raises(ValueError, match=_escape(expected)):
        _curves(**overrides)


# -- gate results ---------------------------------------------------------------------------


def test_gate_results_for_the_hand_worked_family():
    curves = _curves()
    options = _opts({"delta": 0.005, "policy": "mean", "max_excess_error_diff": 0.01})
    potential = R.prune_potential_result(curves, options)
    assert not potential.passed and potential.value == 0.4 and potential.threshold == pytest.approx(0.25)
    assert "0.4000 > mean prune potential over 2 corruptions (delta 0.005) 0.25" in potential.message
    assert potential.details["potentials"]["noise0.2"] == 0.1
    excess = R.excess_error_result(curves, options)
    assert not excess.passed and excess.value == pytest.approx(0.05)
    assert excess.parent == 0.0 and excess.pruned == pytest.approx(0.05)
    safe = _curves(deployed="clean")
    assert R.prune_potential_result(safe, {**options, "policy": "min"}).passed
    assert R.excess_error_result(safe, options).passed


def test_mean_and_min_policies_can_disagree():
    # Potentials: noise0.1 0.4 (mild perfect), noise0.2 0.1; deployed at 0.2 passes mean (0.25), fails min (0.1).
    curves = _curves(members=["noisy", "clean", "dropped", "mild", "mid"], ratios=[0.5, 0.1, 0.7, 0.4, 0.2],
                     accuracy={
                         "nominal": [1.0, 1.0, 0.9, 1.0, 1.0],
                         "noise0.1": [0.8, 1.0, 0.9, 1.0, 0.9],
                         "noise0.2": [0.7, 1.0, 0.9, 0.9, 0.9],
                     }, deployed="mid")
    assert R.prune_potential_result(curves, CorruptionsOptions(policy="mean")).passed
    result = R.prune_potential_result(curves, CorruptionsOptions(policy="min"))
    assert not result.passed and result.threshold == 0.1


# -- measuring a family through a workspace -----------------------------------------------


def fake_predictions(model, accuracy, n=10, nan=False):
    """Real rows-stored predictions of a two-class model that is right on the first ``accuracy`` x n images."""
    from prunecheck.core.views import NOMINAL
    from prunecheck.engine.predictions import Predictions

    labels = torch.arange(n) % 2
    right = int(round(accuracy * n))
    preds = torch.where(torch.arange(n) < right, labels, 1 - labels)
    probs = torch.nn.functional.one_hot(preds, 2).float()
    if nan:
        probs[0, 0] = math.nan
    return Predictions(model=model, dataset="fake", view=NOMINAL, log_probs=probs.log().unsqueeze(0), labels=labels)


def fake_facts(ratio):
    """Facts of a masked model with ``ratio`` of its 1000 prunable entries zero (the parent: 0)."""
    from prunecheck.nn.efficiency import EfficiencyFacts

    nonzero = round(1000 * (1 - ratio))
    return EfficiencyFacts(1000, nonzero, 1000, nonzero, ratio, 0, 0.0, 1, 1)


class FakeWorkspace:
    """Accuracy table per (model, view id); records every predict_many call."""

    def __init__(self, table, zeros, nan_model=None):
        self.table = table
        self.zeros = zeros
        self.nan_model = nan_model
        self.calls = []

    def predict_many(self, names, dataset, view):
        self.calls.append((tuple(names), dataset, view))
        label = "nominal" if view.kind == "nominal" else (f"noise{view.eps:g}" if view.kind == "noise" else view.id)
        return [fake_predictions(n, self.table[n][label], nan=(n == self.nan_model)) for n in names]

    def facts(self, model, dataset):
        return fake_facts(self.zeros.get(model, 0.0))


def _family(workspace, deployed="b"):
    spec = FamilySpec(
        name="fam", parent="p", dataset="d",
        members=(FamilyMember("a", 0.8), FamilyMember("b", None)), deployed=deployed,
    )
    return Family(spec, workspace)


TABLE = {
    "p": {"nominal": 0.9, "fog-3": 0.8, "noise0.1": 0.7},
    "a": {"nominal": 0.9, "fog-3": 0.5, "noise0.1": 0.7},
    "b": {"nominal": 0.9, "fog-3": 0.8, "noise0.1": 0.6},
}
SHIFTS = R.configured_shifts({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1]})


def test_family_is_predicted_with_one_call_per_view_and_measured_ratios():
    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3, "a": 0.99})
    curves = families.family_curves(workspace, _family(workspace).spec, SHIFTS)
    assert [(names, view.id) for names, _, view in workspace.calls] == [
        (("p", "a", "b"), "nominal"), (("p", "a", "b"), "fog-3"), (("p", "a", "b"), "noise0.1-r0"),
    ]
    # "a" has a configured ratio (its zeros are not used); "b" is measured.
    assert curves.members == ("b", "a") and curves.ratios == (0.3, 0.8)
    assert curves.accuracy == ((0.9, 0.9), (0.8, 0.5), (0.6, 0.7))
    assert R.prune_potentials(curves, 0.005) == {"nominal": 0.8, "fog-3": 0.3, "noise0.1": 0.8}
    # a second request in the same session is served from memory, as is the Family's own request
    families.family_curves(workspace, _family(workspace).spec, SHIFTS)
    options = CorruptionsOptions.from_table({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1]})
    assert _family(workspace).curves(options) is curves
    assert len(workspace.calls) == 3
    families.forget()  # e.g. the demo's margin probe: the next request predicts again
    families.family_curves(workspace, _family(workspace).spec, SHIFTS)
    assert len(workspace.calls) == 6


def test_family_gate_fails_closed_on_nan_predictions():
    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3}, nan_model="a")
    options = {"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1]}
    curves = _family(workspace).curves(options)
    assert isinstance(curves, Unavailable)  # the session hands the reason over instead of raising
    result = R.prune_potential_gate(curves, options, subject="fam")
    assert not result.passed and "cannot be computed" in result.message and "accuracy of a on d/nominal" in result.message


def test_family_gate_without_deployed_member_fails_closed():
    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3})
    options = CorruptionsOptions.from_table({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1]})
    result = R.excess_error_gate(_family(workspace, deployed=None).curves(options), options, subject="fam")
    assert not result.passed and "expected a deployed member" in result.message
    assert result.threshold == 0.01


def test_family_gates_on_a_fake_workspace():
    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3})
    options = _opts({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1], "delta": 0.005,
               "policy": "mean", "max_excess_error_diff": 0.01})
    # b (0.3): potentials fog 0.3, noise 0.8 -> mean 0.55 -> pass.
    curves = _family(workspace).curves(options)
    assert R.prune_potential_gate(curves, options, subject="fam").passed
    # excess: parent (0.2 + 0.3)/2 - 0.1 = 0.15; b (0.2 + 0.4)/2 - 0.1 = 0.2 -> diff 0.05 > 0.01
    result = R.excess_error_gate(curves, options, subject="fam")
    assert not result.passed and result.value == pytest.approx(0.05)
    assert result.parent == pytest.approx(0.15) and result.pruned == pytest.approx(0.2)


# -- report payload and tables --------------------------------------------------------------


def test_payload_and_tables():
    curves = _curves()
    payload = R.curves_payload(curves, _opts({"delta": 0.005, "policy": "min"}))
    assert payload["policy_potential"] == 0.1 and payload["deployed_ratio"] == 0.4
    assert payload["delta_band"] == pytest.approx([0.995, 0.995, 0.995])
    text = markdown.blocks(potential_table.build([{"subject": "fam", "payload": payload}]))
    row = next(line for line in text.splitlines() if line.startswith("| fam ") and "mild (40.0)" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == ["fam", "p", "50.0", "25.0", "50.0", "10.0", "mild (40.0)", "10.0 (min)"]
    mild_row = next(line for line in text.splitlines() if "mild (deployed)" in line)
    assert [c.strip() for c in mild_row.strip("|").split("|")] == ["fam", "mild (deployed)", "40.0", "+5.00", "+5.00"]
    curves_entry = {"subject": "fam", "payload": {"kind": "family", **payload}}
    pair_entries = [
        {"subject": "pair", "payload": {"kind": "pair", "view": "fog-3", "parent_accuracy": 0.9, "pruned_accuracy": 0.85}},
        {"subject": "pair", "payload": {"kind": "pair", "view": "noise0.1", "parent_accuracy": None, "pruned_accuracy": None}},
    ]
    text = markdown.blocks(corruption_table.build(pair_entries + [curves_entry]))
    assert "| pair   | 85.0 (-5.0) | n/a" in text
    noisy_row = next(line for line in text.splitlines() if line.startswith("| noisy"))
    assert [c.strip() for c in noisy_row.strip("|").split("|")] == ["noisy", "50.0", "100.0 (+0.0)", "80.0 (-20.0)", "70.0 (-30.0)"]


def test_curves_report_raises_a_gate_error_with_the_reason():
    from prunecheck.core.errors import GateError

    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3}, nan_model="b")
    options = {"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1]}
    with pytest.raises(GateError, match="prune-accuracy curves of family 'fam' cannot be computed: accuracy of b"):
        R.curves_report(_family(workspace).curves(options), options, subject="fam")


# -- the suite's nodes, on hand-made curves and predictions (no workspace) ------------------
def test_curves_report_records_the_raw_curves_and_the_prune_potential_payload():
    curves, options = _curves(), _opts({"delta": 0.005, "policy": "min"})
    outcome = R.curves_report(curves, options, subject="fam")
    assert isinstance(outcome, Outcome) and outcome.results == ()  # a report, not a gate
    (section, subject, raw), potential = outcome.records
    assert (section, subject) == ("corruptions", "fam") and potential == ("prune_potential", "fam", R.curves_payload(curves, options))
    assert raw == {"kind": "family", "parent": "p", "members": ["clean", "mild", "noisy", "dropped"],
                   "ratios": [0.1, 0.4, 0.5, 0.7], "views": ["nominal", "noise0.1", "noise0.2"],
                   "parent_accuracy": [1.0, 1.0, 1.0], "accuracy": [[1.0, 1.0, 1.0, 0.9], [1.0, 1.0, 0.8, 0.9],
                                                                    [1.0, 0.9, 0.7, 0.9]], "delta": 0.005}


def test_family_gates_on_hand_made_curves_and_on_unavailable_ones():
    options = _opts({"delta": 0.005, "policy": "min", "max_excess_error_diff": 0.06})
    # mild (0.4): prune potentials noise0.1 0.4 and noise0.2 0.1 -> min 0.1 < 0.4: fails
    potential = R.prune_potential_gate(_curves(), options, subject="fam")
    assert not potential.passed and potential.value == 0.4 and potential.threshold == pytest.approx(0.1)
    # excess error: parent 0; mild (0 + 0.1) / 2 - 0 = 0.05 <= 0.06
    excess = R.excess_error_gate(_curves(), options, subject="fam")
    assert excess.passed and excess.value == pytest.approx(0.05) and excess.subject == "fam"
    lost = Unavailable(ValueError("accuracy of b on d/fog-3: not finite"))
    for gate in (R.prune_potential_gate, R.excess_error_gate):
        result = gate(lost, options, subject="fam")
        assert not result.passed and result.view == "corruptions"
        assert result.reason == "cannot be computed (accuracy of b on d/fog-3: not finite); the gate fails closed"


def test_corruption_margin_is_the_accuracy_drop_on_the_view_with_its_report_row():
    from prunecheck.engine.predictor import Predictions

    def predictions(model, n_correct, n=200):
        labels = torch.zeros(n, dtype=torch.int64)
        probs = torch.full((n, 2), 0.2)
        probs[:n_correct, 0], probs[n_correct:, 0] = 0.8, 0.1
        probs[:, 1] = 1 - probs[:, 0]
        return Predictions(model=model, dataset="d", view=corruption("fog", 3), log_probs=probs.log()[None], labels=labels)

    options = CorruptionsOptions(max_drop=0.04)
    outcome = R.corruption_margin(predictions("p", 180), predictions("q", 170), options, shift="fog-3",
                                  source="generated, cifar profile", subject="pair")
    (result,) = outcome.results
    assert result.value == pytest.approx(10 / 200) and not result.passed and result.view == "fog-3"
    assert result.name == "corruptions" and result.threshold_name == "max_drop"
    assert outcome.records == (("corruptions", "pair", {
        "kind": "pair", "view": "fog-3", "parent_accuracy": 0.9, "pruned_accuracy": 0.85,
        "source": "generated, cifar profile"}),)


# -- bootstrap modes of the family gates ------------------------------------------------------
def _hits_family(flips_deployed: int, n: int = 200, seed: int = 0):
    """Parent ~90% right on every view; 'mild' (0.5) equals it; 'deployed' (0.9) gets
    ``flips_deployed`` more images wrong on each shifted view (different images per view)."""
    rng = np.random.default_rng(seed)
    views = ["nominal", "fog-3", "noise0.1"]
    correct, parent_acc, acc = {}, {}, {}
    for v, view in enumerate(views):
        parent = rng.random(n) < 0.9
        deployed = parent.copy()
        if v > 0:
            deployed[np.flatnonzero(parent)[v * 10: v * 10 + flips_deployed]] = False
        correct[view] = np.stack([parent, parent, deployed])
        parent_acc[view] = parent.mean()
        acc[view] = [parent.mean(), deployed.mean()]
    return R.curves_from_accuracies(family="fam", parent="p", members=["mild", "dep"], ratios=[0.5, 0.9],
                                    parent_accuracy=parent_acc, accuracy=acc, deployed="dep", correct=correct)


def _naive_intervals(curves, delta, n_resamples, seed):
    """Plain loop: resample rows, recompute every accuracy, prune potential and excess error."""
    from prunecheck import metrics
    from prunecheck.metrics.bootstrap import bootstrap_indices

    hits = curves.correct
    potentials, diffs = [], []
    for idx in bootstrap_indices(hits.shape[2], n_resamples=n_resamples, seed=seed):
        err = 1.0 - hits[:, :, idx].mean(axis=2)  # [V, 1 + K]
        per_view = [metrics.prune_potential(curves.ratios, err[v, 1:], err[v, 0], delta) for v in (1, 2)]
        potentials.append(sum(per_view) / 2)
        excess = err[1:].mean(axis=0) - err[0]
        diffs.append(excess[2] - excess[0])
    return [np.percentile(x, [2.5, 97.5]) for x in (potentials, diffs)]


def test_confident_prune_potential_uses_the_lower_bound_of_a_paired_bootstrap():
    curves = _hits_family(flips_deployed=1)  # 1/200 = delta: qualifies on the full test set
    options = _opts({"policy": "mean", "delta": 0.005})
    assert R.prune_potential_result(curves, _opts({**options, "mode": "point"})).passed
    result = R.prune_potential_result(curves, _opts({**options, "mode": "confident"}), n_resamples=300, seed=4)
    (p_low, p_high), (d_low, d_high) = _naive_intervals(curves, 0.005, 300, 4)
    assert result.details["potential_ci"] == pytest.approx([min(p_low, 0.9), max(p_high, 0.9)])
    assert result.threshold == pytest.approx(min(p_low, 0.9)) and result.threshold < 0.9 and not result.passed
    assert result.mode == "confident" and "95% CI" in result.metric and "lower 95% bound" in result.message
    excess = R.excess_error_result(curves, _opts({"mode": "lenient"}), n_resamples=300, seed=4)
    value = excess.value
    assert excess.ci == pytest.approx((min(d_low, value), max(d_high, value)))


def test_lenient_prune_potential_passes_what_only_sampling_error_fails():
    curves = _hits_family(flips_deployed=2)  # 2/200 > delta on the full test set
    options = _opts({"policy": "mean", "delta": 0.005})
    assert not R.prune_potential_result(curves, options).passed
    assert R.prune_potential_result(curves, _opts({**options, "mode": "lenient"}), n_resamples=300).passed
    with pytest.raises(ValueError, match="per-image predictions"):  # curves from plain accuracies
        R.prune_potential_result(_curves(), _opts({"mode": "confident", "policy": "mean"}))


def test_family_gate_reads_the_mode_from_the_options_and_takes_the_bootstrap_settings():
    workspace = FakeWorkspace(TABLE, zeros={"b": 0.3})
    options = _opts({"corruptions": ["fog"], "severities": [3], "noise_levels": [0.1], "mode": "confident"})
    result = R.excess_error_gate(_family(workspace).curves(options), options, subject="fam", n_resamples=200, seed=0)
    assert result.mode == "confident" and result.ci is not None and result.details["n_resamples"] == 200


def test_payload_and_table_report_the_intervals_in_bootstrap_modes():
    curves = _hits_family(flips_deployed=1)
    point = R.curves_payload(curves, _opts({"policy": "mean", "delta": 0.005}))
    assert point["mode"] == "point" and "intervals" not in point
    payload = R.curves_payload(curves, _opts({"policy": "mean", "delta": 0.005, "mode": "confident"}), n_resamples=300, seed=4)
    low, high = payload["intervals"]["policy_potential"]
    assert low <= payload["policy_potential"] <= high and low < high
    text = markdown.blocks(potential_table.build([{"subject": "fam", "payload": payload}]))
    assert f"95% CI [{100 * low:.1f}, {100 * high:.1f}]" in text and text.count("95% CI") == 2
