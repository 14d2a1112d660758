"""Gate decisions and messages, worked by hand."""

import math

import pytest

from prunecheck.gates.decide import decide, failed_closed


def make(value, threshold=0.005, **kw):
    return decide(name="accuracy_margin", metric="accuracy drop", value=value, threshold=threshold,
                  threshold_name="max_drop", **kw)


def test_point_mode_inclusive_threshold():
    assert make(0.005).passed
    assert not make(0.0051).passed


def test_failure_message_names_metric_values_threshold_and_direction():
    result = make(0.0132, parent=0.9210, pruned=0.9078)
    assert result.message == "accuracy drop 0.0132 > max_drop 0.005 (parent 0.9210, pruned 0.9078)"
    assert math.isclose(result.margin, 0.005 - 0.0132)


@pytest.mark.parametrize(
    "mode, ci, passed",
    [
        ("confident", (0.001, 0.004), True),   # whole interval within
        ("confident", (0.001, 0.006), False),  # upper bound outside
        ("lenient", (0.004, 0.009), True),     # lower bound within: not proven worse
        ("lenient", (0.006, 0.009), False),    # whole interval outside
    ],
)
def test_bootstrap_modes(mode, ci, passed):
    result = make(0.003, mode=mode, ci=ci)
    assert result.passed is passed
    assert mode in result.message and "95% CI" in result.message


def test_min_direction():
    ok = decide(name="f", metric="agreement", value=0.95, threshold=0.9, threshold_name="min_agreement", direction="min")
    bad = decide(name="f", metric="agreement", value=0.85, threshold=0.9, threshold_name="min_agreement", direction="min")
    assert ok.passed and not bad.passed
    assert "0.8500 < min_agreement 0.9" in bad.message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_fails_closed(value):
    result = make(value)
    assert not result.passed and "fails closed" in result.message


def test_mode_without_interval_fails_closed():
    result = make(0.0, mode="confident")
    assert not result.passed and "bootstrap" in result.reason


def test_failed_closed_helper():
    result = failed_closed(name="g", metric="ECE increase", reason="predictions contain NaN", threshold=0.02, threshold_name="max_ece_increase")
    assert not result.passed and result.message == "ECE increase: predictions contain NaN"


# -- what the session hands a gate that it could not gather --------------------------------
def test_gathered_turns_compute_errors_into_unavailable_and_lets_bugs_through():
    from prunecheck.core.errors import DataError
    from prunecheck.gates.decide import Unavailable, available, fail_closed, gathered

    assert gathered(lambda: 3) == 3 and available(3) == 3
    lost = gathered(lambda: (_ for _ in ()).throw(DataError("cifar10: \x1b[31mbatch 3 is truncated\x1b[0m")))
    assert isinstance(lost, Unavailable) and lost.reason == "cifar10: batch 3 is truncated"  # plain text
    with pytest.raises(TypeError):  # not a "cannot compute": a bug stays a traceback
        gathered(lambda: None + 1)
    result = fail_closed(lambda: make(available(lost)), name="g", metric="accuracy drop", threshold=0.005,
                         threshold_name="max_drop", subject="pair")
    assert not result.passed and math.isnan(result.value)
    assert result.reason == "cannot be computed (cifar10: batch 3 is truncated); the gate fails closed"


# -- the accuracy margin as a pure function ---------------------------------------------------
def _predictions(n_correct: int, n: int = 400):
    import torch

    from prunecheck.core.views import NOMINAL
    from prunecheck.engine.predictor import Predictions

    probs = torch.tensor([[0.7, 0.3]] * n_correct + [[0.4, 0.6]] * (n - n_correct))
    return Predictions(model="m", dataset="d", view=NOMINAL, log_probs=probs.log()[None],
                       labels=torch.zeros(n, dtype=torch.int64))


def test_accuracy_margin_on_hand_made_predictions_with_both_criteria():
    from prunecheck.config.options import AccuracyMarginOptions
    from prunecheck.gates import accuracy

    parent, pruned = _predictions(360), _predictions(356)  # 0.90 -> 0.89: drop 0.01 = 4 images
    result = accuracy.margin(parent, pruned, AccuracyMarginOptions(max_drop=0.01), subject="p")
    assert result.passed and result.value == pytest.approx(0.01) and (result.parent, result.pruned) == (0.9, 0.89)
    assert result.name == "accuracy_margin" and result.metric == "accuracy drop" and result.subject == "p"
    # relative: 0.01 / 0.9 = 0.0111 > 0.011, the absolute margin holds: the relative one decides
    both = accuracy.margin(parent, pruned, AccuracyMarginOptions(max_drop=0.01, max_relative_drop=0.011))
    assert not both.passed and both.threshold_name == "max_relative_drop" and both.details["also"]["passed"]
    confident = accuracy.margin(parent, pruned, AccuracyMarginOptions(max_drop=0.05, mode="confident"),
                                n_resamples=200, seed=1)
    assert confident.ci is not None and confident.ci[0] <= 0.01 <= confident.ci[1] and confident.passed


def test_the_recorder_hands_degradation_to_the_pure_function_with_the_runs_bootstrap():
    from types import SimpleNamespace

    from prunecheck.config.options import default_gate_options
    from prunecheck.config.settings import RunSettings, Settings
    from prunecheck.gates import accuracy
    from prunecheck.plugin.recorder import GateRecorder

    gates = default_gate_options()
    settings = Settings(source="t", run=RunSettings(bootstrap_resamples=150, seed=9), datasets={}, models={},
                        pairs=(), gates=gates)
    recorder = GateRecorder(settings, SimpleNamespace(user_properties=[]))
    assert recorder.bootstrap == {"n_resamples": 150, "seed": 9}
    parent, pruned = _predictions(360), _predictions(350)
    got = recorder.degradation("uncertainty", "nll", parent, pruned, threshold_key="max_nll_increase")
    want = accuracy.degradation("nll", parent, pruned, gates["uncertainty"], threshold_key="max_nll_increase",
                                n_resamples=150, seed=9)
    assert got.to_dict() == want.to_dict() and got.name == "uncertainty"
