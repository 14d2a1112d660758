"""prunecheck.metrics against plain-loop references, hand-worked cases and properties.

The reference functions below are deliberately naive (Python loops over
samples and bins, numpy's own quantile) and share no code with the library.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunecheck import metrics as M
from prunecheck.strategies import member_stacks, probs_and_labels, prune_accuracy_curves

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- references (loops)
def first_argmax(row):
    best = 0
    for c in range(1, len(row)):
        if row[c] > row[best]:
            best = c
    return best


def ref_accuracy(p, y):
    return sum(first_argmax(p[i]) == y[i] for i in range(len(y))) / len(y)


def ref_nll(p, y):
    return sum(-math.log(max(float(p[i][y[i]]), 1e-12)) for i in range(len(y))) / len(y)


def ref_brier(p, y):
    total = 0.0
    for i in range(len(y)):
        for c in range(len(p[i])):
            target = 1.0 if c == y[i] else 0.0
            total += (float(p[i][c]) - target) ** 2
    return total / len(y)


def ref_ece(p, y, n_bins=15):
    n = len(y)
    conf = [float(max(row)) for row in p]
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(n) if lo <= conf[i] < hi or (b == n_bins - 1 and conf[i] >= hi)]
        if not members:
            continue
        acc = sum(first_argmax(p[i]) == y[i] for i in members) / len(members)
        avg_conf = sum(conf[i] for i in members) / len(members)
        total += len(members) / n * abs(acc - avg_conf)
    return total


def ref_sparsification(p, y, u=None, steps=50):
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    correct = np.array([first_argmax(row) == y[i] for i, row in enumerate(p)])
    u_pred = 1.0 - p.max(axis=1) if u is None else np.asarray(u, dtype=np.float64)
    u_true = np.array([1.0 - p[i, y[i]] for i in range(len(y))])
    curves = []
    for unc in (u_pred, u_true):
        errs = []
        for k in range(steps):
            t = np.quantile(unc, 1 - k / steps)
            keep = unc <= t
            errs.append(1.0 - correct[keep].mean())
        curves.append(errs)
    return [k / steps for k in range(steps)], curves[0], curves[1]


def ref_ause(p, y, u=None, steps=50):
    f, pred, oracle = ref_sparsification(p, y, u, steps)
    area = 0.0
    for k in range(steps - 1):
        g0, g1 = pred[k] - oracle[k], pred[k + 1] - oracle[k + 1]
        area += (g0 + g1) / 2 * (f[k + 1] - f[k])
    return area


def ref_entropy(p):
    total = 0.0
    for row in p:
        total += -sum(float(v) * math.log(float(v)) for v in row if v > 0)
    return total / len(p)


def ref_disagreement(mp):
    m, n, c = mp.shape
    total = 0.0
    for i in range(n):
        mean = [sum(float(mp[k, i, j]) for k in range(m)) / m for j in range(c)]
        for k in range(m):
            total += sum(float(mp[k, i, j]) * math.log(float(mp[k, i, j]) / mean[j]) for j in range(c) if mp[k, i, j] > 0)
    return total / (m * n)


def ref_agreement(a, b):
    return sum(first_argmax(a[i]) == first_argmax(b[i]) for i in range(len(a))) / len(a)


def ref_softmax_distance(a, b):
    return sum(math.sqrt(sum((float(a[i][c]) - float(b[i][c])) ** 2 for c in range(len(a[i])))) for i in range(len(a))) / len(a)


def ref_confidence_curve(p, y, taus):
    coverage, accs = [], []
    for tau in taus:
        sel = [i for i in range(len(y)) if max(p[i]) >= tau]
        coverage.append(len(sel) / len(y))
        accs.append(sum(first_argmax(p[i]) == y[i] for i in sel) / len(sel) if sel else float("nan"))
    return coverage, accs


def close(expected):
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- vs references
@SETTINGS
@given(probs_and_labels())
def test_simple_metrics_match_references(data):
    p, y = data
    assert M.accuracy(p, y) == close(ref_accuracy(p, y))
    assert M.nll(p, y) == close(ref_nll(p, y))
    assert M.brier(p, y) == close(ref_brier(p, y))
    assert M.predictive_entropy(p) == close(ref_entropy(p))


@SETTINGS
@given(probs_and_labels(), st.sampled_from([1, 2, 5, 10, 15]))
def test_ece_matches_reference_and_is_a_fraction(data, n_bins):
    p, y = data
    value = M.ece(p, y, n_bins=n_bins)
    assert value == close(ref_ece(p, y, n_bins))
    assert 0.0 <= value <= 1.0


@SETTINGS
@given(probs_and_labels(), st.sampled_from([2, 5, 10, 15]))
def test_calibration_bins_counts_match_reference(data, n_bins):
    # bin membership itself (ECE alone hides a misplaced sample when its neighbour bin is empty)
    p, y = data
    conf = [float(max(row)) for row in p]
    counts = [0] * n_bins
    for c in conf:
        b = 0
        while b < n_bins - 1 and c >= (b + 1) / n_bins:
            b += 1
        counts[b] += 1
    bins = M.calibration_bins(p, y, n_bins=n_bins)
    np.testing.assert_array_equal(bins.counts, counts)
    np.testing.assert_allclose(bins.edges, [b / n_bins for b in range(n_bins + 1)])


@SETTINGS
@given(probs_and_labels(), st.sampled_from([2, 7, 50]))
def test_sparsification_and_ause_match_reference(data, steps):
    p, y = data
    f, pred, oracle = ref_sparsification(p, y, steps=steps)
    curves = M.sparsification_curves(p, y, steps=steps)
    np.testing.assert_allclose(curves.fractions, f, rtol=0, atol=0)
    np.testing.assert_allclose(curves.pred_errors, pred, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(curves.oracle_errors, oracle, rtol=1e-12, atol=1e-12)
    assert M.ause(p, y, steps=steps) == close(ref_ause(p, y, steps=steps))


@SETTINGS
@given(probs_and_labels(), st.data())
def test_ause_with_given_uncertainty_matches_reference(data, draw):
    p, y = data
    # few distinct values -> many ties between samples
    u = np.asarray(draw.draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]), min_size=len(y), max_size=len(y))))
    assert M.ause(p, y, uncertainty=u, steps=10) == close(ref_ause(p, y, u, steps=10))


@SETTINGS
@given(member_stacks())
def test_disagreement_matches_reference(mp):
    assert M.disagreement(mp) == pytest.approx(ref_disagreement(mp), rel=1e-9, abs=1e-12)
    assert M.disagreement(mp) >= 0.0


@SETTINGS
@given(member_stacks(n_members=2))
def test_pair_metrics_match_references_and_are_symmetric(mp):
    a, b = mp[0], mp[1]
    assert M.agreement(a, b) == close(ref_agreement(a, b))
    assert M.agreement(a, b) == M.agreement(b, a)
    assert M.agreement(a, a) == 1.0
    assert M.softmax_distance(a, b) == close(ref_softmax_distance(a, b))
    assert M.softmax_distance(a, a) == 0.0


@SETTINGS
@given(probs_and_labels(), st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0, 1.5]), min_size=1, max_size=5))
def test_confidence_curve_matches_reference(data, taus):
    p, y = data
    cov, acc = ref_confidence_curve(p, y, taus)
    curve = M.confidence_curve(p, y, taus)
    np.testing.assert_allclose(curve.coverage, cov, rtol=1e-12)
    np.testing.assert_allclose(curve.accuracy, acc, rtol=1e-12)  # NaN == NaN here
    np.testing.assert_array_equal(curve.thresholds, taus)


@SETTINGS
@given(prune_accuracy_curves(), st.sampled_from([0, 1, 5, 20]))
def test_prune_potential_matches_exact_reference(curve, delta_count):
    # exact rational arithmetic: errors are counts / 1000, delta = delta_count / 1000
    parent = Fraction(round(curve.parent_error * 1000), 1000)
    delta = Fraction(delta_count, 1000)
    ok = [r for r, e in zip(curve.prune_ratios, curve.errors) if Fraction(round(e * 1000), 1000) - parent <= delta]
    expected = max(ok) if ok else 0.0
    assert M.prune_potential(curve.prune_ratios, curve.errors, curve.parent_error, delta=delta_count / 1000) == expected


# ---------------------------------------------------------------- properties
@SETTINGS
@given(probs_and_labels(min_size=2), st.randoms(use_true_random=False))
def test_ece_and_ause_invariant_to_sample_order(data, rnd):
    p, y = data
    perm = list(range(len(y)))
    rnd.shuffle(perm)
    assert M.ece(p[perm], y[perm]) == pytest.approx(M.ece(p, y), abs=1e-12)
    assert M.ause(p[perm], y[perm]) == pytest.approx(M.ause(p, y), abs=1e-12)


@SETTINGS
@given(probs_and_labels())
def test_ause_is_zero_with_oracle_uncertainty(data):
    p, y = data
    oracle = 1.0 - p[np.arange(len(y)), y]
    assert M.ause(p, y, uncertainty=oracle) == 0.0


@SETTINGS
@given(prune_accuracy_curves(), st.lists(st.floats(0.0, 0.2), min_size=2, max_size=5))
def test_prune_potential_non_decreasing_in_delta(curve, deltas):
    values = [M.prune_potential(curve.prune_ratios, curve.errors, curve.parent_error, delta=d) for d in sorted(deltas)]
    assert values == sorted(values)
    assert values[0] >= 0.0  # the parent (ratio 0) always qualifies


@given(st.floats(1e-6, 1.0))
@settings(max_examples=30, deadline=None)
def test_instability_zero_when_nothing_changed(acc):
    assert M.instability(acc, acc) == 0.0


# ---------------------------------------------------------------- hand-worked cases
def test_hand_worked_basic_metrics():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    y = np.array([0, 2, 2, 1])
    # argmax: 0, 1, 2, 0 (tie -> first) ; correct: yes, no, yes, no -> 2/4
    assert M.accuracy(p, y) == 0.5
    # -(log .7 + log .3 + log .4 + log .5) / 4
    assert M.nll(p, y) == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.4) + math.log(0.5)) / 4)
    # row0 .09+.04+.01=.14; row1 .01+.36+.49=.86; row2 .09+.09+.36=.54; row3 .25+.25+0=.5 -> 2.04/4
    assert M.brier(p, y) == pytest.approx(0.51)


def test_nll_clamps_zero_probability():
    # p[y] = 0 -> -log(1e-12) = 27.631...
    assert M.nll([[1.0, 0.0]], [1]) == pytest.approx(-math.log(1e-12))


def test_hand_worked_ece():
    p = np.array([[0.95, 0.05], [0.75, 0.25], [0.75, 0.25], [1.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    # bins of width 1/15: 0.75 -> bin 11 (0.7333..0.8): acc 1/2, conf .75 -> 2/4 * .25 = .125
    # 0.95 and 1.0 -> bin 14 (last, holds 1.0): acc 1/2, conf .975 -> 2/4 * .475 = .2375
    assert M.ece(p, y) == pytest.approx(0.125 + 0.2375)


def test_ece_bin_edges_are_inclusive_below():
    # conf 0.2 = 3/15 exactly is in bin 3 [0.2, 0.2667), not bin 2: both samples share it
    p = np.array([[0.2, 0.2, 0.2, 0.2, 0.2], [0.25, 0.2, 0.2, 0.2, 0.15]])
    y = np.array([0, 1])
    # bin 3: acc 1/2, mean conf 0.225 -> |0.5 - 0.225| = 0.275
    assert M.ece(p, y) == pytest.approx(0.275)


def test_hand_worked_ause_and_removal_direction():
    # u = 1 - max p = [0.1, 0.2, 0.3, 0.4]; the two most uncertain are the errors.
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    y = np.array([0, 0, 1, 1])
    c = M.sparsification_curves(p, y, steps=4)
    # k=0 keep all: err 2/4; k=1 t=q(0.75)=0.325 keep 3: 1/3; k=2 t=0.25 keep 2: 0; k=3 t=0.175 keep 1: 0
    np.testing.assert_allclose(c.pred_errors, [0.5, 1 / 3, 0.0, 0.0])
    # oracle u* = 1 - p[y] = [.1, .2, .7, .6]: k=1 t=q(.75)=.625 keeps .1,.2,.6 -> 1/3; then 0, 0
    np.testing.assert_allclose(c.oracle_errors, [0.5, 1 / 3, 0.0, 0.0])
    assert M.ause(p, y, steps=4) == 0.0
    # Reversed uncertainty (confident on the errors): removing by it keeps errors longer
    bad = np.array([0.4, 0.3, 0.2, 0.1])
    # pred errs: k=0 .5; k=1 keeps u<=.325 -> samples 1,2,3 -> errs 2/3; k=2 t=.25 -> 2,3 -> 1; k=3 -> 3 -> 1
    # gaps: 0, 1/3, 1, 1 -> area = .25*(0+1/3)/2 + .25*(1/3+1)/2 + .25*(1+1)/2 = 0.4166...
    assert M.ause(p, y, uncertainty=bad, steps=4) == pytest.approx(0.25 * (1 / 6 + 2 / 3 + 1))


def test_ause_keeps_ties_together():
    # all u equal: every threshold equals it, every sample is always kept -> both curves flat at 1/2
    p = np.array([[0.5, 0.5]] * 4)
    y = np.array([0, 1, 0, 1])
    c = M.sparsification_curves(p, y, steps=5)
    np.testing.assert_array_equal(c.pred_errors, [0.5] * 5)


def test_hand_worked_entropy_disagreement_pairs():
    assert M.predictive_entropy([[0.25] * 4]) == pytest.approx(math.log(4))
    # members [1,0] and [.5,.5]: mean [.75,.25]; KL1 = log(1/.75); KL2 = .5 log(.5/.75) + .5 log(.5/.25)
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)
    assert M.disagreement([[[1.0, 0.0]], [[0.5, 0.5]]]) == pytest.approx((kl1 + kl2) / 2)
    a, b = [[0.6, 0.4], [0.3, 0.7]], [[0.5, 0.5], [0.8, 0.2]]
    # argmax a: 0, 1; argmax b: 0 (tie -> first class), 0 -> one of two equal
    assert M.agreement(a, b) == 0.5
    # differences [.1, -.1] and [-.5, .5]: norms sqrt(.02) and sqrt(.5)
    assert M.softmax_distance(a, b) == pytest.approx((math.sqrt(0.02) + math.sqrt(0.5)) / 2)


def test_hand_worked_confidence_curve():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    y = np.array([0, 1, 0, 1])
    c = M.confidence_curve(p, y, [0.0, 0.6, 0.85, 0.95])
    # tau .6 -> .9 (ok), .8 (wrong), .6 (ok): coverage 3/4, acc 2/3; tau .85 -> 1/4, 1; tau .95 -> none
    np.testing.assert_allclose(c.coverage, [1.0, 0.75, 0.25, 0.0])
    np.testing.assert_allclose(c.accuracy[:3], [0.5, 2 / 3, 1.0])
    assert math.isnan(c.accuracy[3])


def test_hand_worked_pruning_metrics():
    ratios, errors = [0.0, 0.5, 0.7, 0.9], [0.080, 0.084, 0.090, 0.085]
    # excess over parent: 0, .004, .010, .005 -> with delta .005: 0.9 qualifies (inclusive, not monotone)
    assert M.prune_potential(ratios, errors, 0.080) == 0.9
    assert M.prune_potential(ratios, errors, 0.080, delta=0.004) == 0.5
    assert M.prune_potential([0.5], [0.2], 0.1) == 0.0  # none qualifies
    assert M.excess_error(0.3, 0.1) == pytest.approx(0.2)
    assert M.instability(0.8, 0.2) == pytest.approx(0.75)  # .6 / .8
    assert M.instability(0.5, 0.6) == pytest.approx(-0.2)  # improvement -> negative


# ---------------------------------------------------------------- torch inputs
@settings(max_examples=25, deadline=None)
@given(probs_and_labels(dtype=np.float32))
def test_torch_inputs_give_numpy_numbers(data):
    p, y = data
    tp, ty = torch.from_numpy(p), torch.from_numpy(y)
    for name in ("accuracy", "nll", "brier", "ece", "ause"):
        fn = M.METRICS[name].fn
        assert fn(tp, ty) == fn(p, y), name
    assert M.predictive_entropy(tp) == M.predictive_entropy(p)
    assert M.agreement(tp, tp.flip(0)) == M.agreement(p, p[::-1].copy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_match_cpu():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(2000, 10, generator=gen) * 3, dim=1)
    p[:50] = torch.nn.functional.one_hot(torch.arange(50) % 10, 10).float()
    y = torch.randint(0, 10, (2000,), generator=gen)
    for name in ("accuracy", "nll", "brier", "ece", "ause"):
        fn = M.METRICS[name].fn
        assert fn(p.cuda(), y.cuda()) == pytest.approx(fn(p, y), abs=1e-12), name
    cpu = M.paired_bootstrap("ece", p, p.flip(1).roll(1, 0).softmax(1), y, n_resamples=50)
    gpu = M.paired_bootstrap("ece", p.cuda(), p.flip(1).roll(1, 0).softmax(1).cuda(), y.cuda(), n_resamples=50)
    assert gpu.low == pytest.approx(cpu.low, abs=1e-12) and gpu.high == pytest.approx(cpu.high, abs=1e-12)


# ---------------------------------------------------------------- torchmetrics
def test_ece_matches_torchmetrics_without_saturated_confidences():
    tm = pytest.importorskip("torchmetrics.classification")
    gen = torch.Generator().manual_seed(1)
    for c in (2, 10):
        p = torch.softmax(torch.randn(3000, c, generator=gen) * 2.0, dim=1)
        y = torch.randint(0, c, (3000,), generator=gen)
        assert float(p.max()) < 1.0
        expected = tm.MulticlassCalibrationError(num_classes=c, n_bins=15, norm="l1")(p, y).item()
        assert M.ece(p, y) == pytest.approx(expected, abs=1e-6)


def test_ece_differs_from_torchmetrics_on_confidence_one():
    """SPEC 3: conf == 1.0 belongs to the last bin here; torchmetrics gives it a bin of its own."""
    tm = pytest.importorskip("torchmetrics.classification")
    p = torch.tensor([[1.0, 0.0], [0.95, 0.05]])
    y = torch.tensor([1, 0])  # the saturated one is wrong
    # ours: one bin {1.0 wrong, .95 right}: acc .5, conf .975 -> .475
    assert M.ece(p, y) == pytest.approx(0.475)
    # torchmetrics: {1.0}: |0 - 1| * 1/2 = .5 ; {.95}: |1 - .95| * 1/2 = .025 -> .525
    expected_tm = tm.MulticlassCalibrationError(num_classes=2, n_bins=15, norm="l1")(p, y).item()
    assert expected_tm == pytest.approx(0.525, abs=1e-6)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "probs, labels, fragment",
    [
        ([[0.5, 0.5]], [0, 1], "expected shape [1]"),
        ([[0.5, float("nan")]], [0], "expected finite values, found nan at index (0, 1)"),
        ([[0.5, float("inf")]], [0], "finite"),
        ([[0.5, 0.5]], [2], "expected values in [0, 1] (C = 2 classes), found 2 at index 0"),
        ([[0.5, 0.5]], [-1], "found -1"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "at least one sample"),
        ([[0.5, 0.5], [0.6, 0.6], [0.3, 0.3]], [0, 0, 0], "found 0.6 in row 2"),
        ([[0.5, 0.5]], [0.0], "integer"),
        ([0.5, 0.5], [0], "expected shape [N, C]"),
        ([[1, 0]], [0], "floating-point"),
        ([[1.5, -0.5]], [0], "expected probabilities in [0, 1]"),
    ],
)
def test_invalid_inputs_raise_clear_value_errors(probs, labels, fragment):
    with pytest.raises(ValueError) as info:
        M.ece(np.asarray(probs) if isinstance(probs, np.ndarray) else probs, labels)
    assert fragment in str(info.value)


def test_worst_row_is_named():
    p = np.full((5, 2), 0.5)
    p[1] = [0.5, 0.5005]  # within tolerance
    p[3] = [0.5, 0.52]
    with pytest.raises(M.MetricInputError, match=r"1.02 in row 3 \(the worst of 1 rows"):
        M.validate_probs(p)


def test_other_validation_errors():
    with pytest.raises(ValueError, match="probs_b: expected the shape of probs_a"):
        M.agreement(np.full((2, 2), 0.5), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="member_probs: expected shape"):
        M.disagreement(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="uncertainty: expected shape"):
        M.ause(np.full((2, 2), 0.5), [0, 1], uncertainty=[0.1])
    with pytest.raises(ValueError, match="steps"):
        M.ause(np.full((2, 2), 0.5), [0, 1], steps=1)
    with pytest.raises(ValueError, match="n_bins"):
        M.ece(np.full((2, 2), 0.5), [0, 1], n_bins=0)
    with pytest.raises(ValueError, match="one error per prune ratio"):
        M.prune_potential([0.0, 0.5], [0.1], 0.1)
    with pytest.raises(ValueError, match="acc_before"):
        M.instability(0.0, 0.0)
    with pytest.raises(ValueError, match="error_shifted"):
        M.excess_error(float("nan"), 0.1)


# ---------------------------------------------------------------- registry
def test_registry_and_degradation():
    assert set(M.METRICS) >= {"accuracy", "nll", "brier", "ece", "ause", "agreement", "prune_potential"}
    for name, info in M.METRICS.items():
        assert info.name == name and callable(info.fn)
        assert info.range[0] < info.range[1]
    assert M.degradation("accuracy", 0.92, 0.90) == pytest.approx(0.02)  # higher is better: parent - pruned
    assert M.degradation("ece", 0.02, 0.05) == pytest.approx(0.03)  # lower is better: pruned - parent
    assert M.degradation("accuracy", 0.90, 0.92) == pytest.approx(-0.02)
    with pytest.raises(ValueError, match="expected one of"):
        M.degradation("acuracy", 0.9, 0.9)
