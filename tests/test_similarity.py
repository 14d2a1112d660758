"""Functional similarity: the session's noise measurement, batched BackSelect, and the pure gates.

The gates (prunecheck.gates.similarity) are checked on hand-made points and predictions,
without a workspace; the measurement (prunecheck.session.similarity) against a naive loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunecheck.data.base import Subset, TensorDataset
from prunecheck.engine.cache import ArrayCache
from prunecheck.data.views import apply_view
from prunecheck.engine.predictor import PredictionEngine
from prunecheck.nn.models import model_from_module
from prunecheck.nn.backselect import backselect_order, cross_confidence, informative_pixels, pixel_overlap
from prunecheck.session.similarity import noise_similarity, noise_views, sample_rows
from prunecheck.core.views import NOMINAL, noise


def _dataset(n=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 4, (n,), generator=gen)
    return TensorDataset("rand", images, labels, 4, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 4))


@pytest.fixture
def engine(tmp_path):
    return PredictionEngine(ArrayCache(tmp_path / "cache"), device="cpu", batch_size=16, seed=3)


def test_noise_views_use_one_nominal_pass_at_eps_zero():
    assert noise_views(0.0, 5) == [NOMINAL]
    assert noise_views(0.2, 3) == [noise(0.2, 0), noise(0.2, 1), noise(0.2, 2)]
    with pytest.raises(ValueError, match="repetitions"):
        noise_views(0.1, 0)
    with pytest.raises(ValueError, match="eps"):
        noise_views(float("nan"), 1)


def test_sample_rows_is_stratified_and_seeded():
    data = _dataset(10)
    assert sample_rows(data, 20) is data
    sorted_data = TensorDataset("sorted", torch.zeros(40, 3, 2, 2, dtype=torch.uint8),
                                torch.arange(4).repeat_interleave(10), 4, (0, 0, 0), (1, 1, 1))
    part = sample_rows(sorted_data, 8, seed=1)
    assert np.bincount(part.labels.numpy()).tolist() == [2, 2, 2, 2]  # first 8 rows: class 0 only
    assert part.indices.tolist() == sample_rows(sorted_data, 8, seed=1).indices.tolist()
    with pytest.raises(ValueError, match="max_images"):
        sample_rows(data, 0)


def test_model_compared_with_itself_has_agreement_one_and_distance_zero_at_every_eps(engine):
    parent = model_from_module("parent", _net(0))
    twin = model_from_module("twin", _net(0))  # same weights, other name
    for eps in (0.0, 0.1, 0.5, 2.0):
        (point,) = noise_similarity(engine, parent, [twin], _dataset(), eps, repetitions=3)
        assert point.agreement == (1.0,) * len(point.agreement)
        assert point.distance == (0.0,) * len(point.distance)
        assert len(point.agreement) == (1 if eps == 0 else 3)


def test_agreement_and_distance_match_a_naive_loop_over_separately_predicted_models(engine):
    data = _dataset()
    parent, other = model_from_module("a", _net(0)), model_from_module("b", _net(1))
    (point,) = noise_similarity(engine, parent, [other], data, 1.0, repetitions=2)
    for r in range(2):
        # each model predicted alone: the engine's noise must be the same as in the joint call
        pa = engine.predict(parent, apply_view(data, noise(1.0, r), seed=engine.seed)).probs.numpy()
        pb = engine.predict(other, apply_view(data, noise(1.0, r), seed=engine.seed)).probs.numpy()
        agree = sum(int(np.argmax(pa[i]) == np.argmax(pb[i])) for i in range(len(data))) / len(data)
        dist = sum(float(np.sqrt(((pa[i] - pb[i]) ** 2).sum())) for i in range(len(data))) / len(data)
        assert point.agreement[r] == pytest.approx(agree)
        assert point.distance[r] == pytest.approx(dist, rel=1e-5)
    nominal = engine.predict(parent, data).probs
    noisy = engine.predict(parent, apply_view(data, noise(1.0, 0), seed=engine.seed)).probs
    assert not torch.allclose(nominal, noisy)  # the noise is really applied


def test_noise_on_the_first_rows_is_the_noise_of_the_full_dataset(engine):
    data = _dataset(100)
    model = model_from_module("a", _net(0))
    full = engine.predict(model, apply_view(data, noise(0.5, 0))).probs
    head = engine.predict(model, apply_view(Subset(data, range(70)), noise(0.5, 0))).probs
    assert torch.allclose(full[:70], head)


# ------------------------------------------------------------------ BackSelect
def _linear_forward(weights: torch.Tensor):
    """Probability of class 0 = sigmoid(sum_p w_p * x_p(channel 0)); class 1 the rest."""

    def forward(x):
        z = (x[:, 0].flatten(1) * weights).sum(dim=1)
        return torch.stack([torch.sigmoid(z), 1 - torch.sigmoid(z)], dim=1)

    return forward


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([1, 3, 7, 16]))
def test_backselect_on_an_additive_model_removes_pixels_in_order_of_contribution(seed, per_round):
    # For an additive score, masking pixel p (to 0) lowers it by w_p*x_p regardless of the
    # others, so greedy backward selection removes pixels in increasing w_p*x_p: the
    # removal rank is the argsort of the contributions, whatever the pixels per round.
    # float64: in float32 the sigmoid saturates for large scores, and two pixels whose
    # contributions differ by ~1e-3 get the same confidence (a tie topk breaks arbitrarily)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((3, 1, 4, 4), generator=gen, dtype=torch.float64) + 0.1
    w = torch.randn(16, generator=gen, dtype=torch.float64)
    rank = backselect_order(_linear_forward(w), x, torch.zeros(3, dtype=torch.long), pixels_per_round=per_round)
    for b in range(3):
        contributions = (w * x[b, 0].flatten()).tolist()
        expected = sorted(range(16), key=lambda p: contributions[p])
        assert [int(p) for p in torch.argsort(rank[b])] == expected
    assert sorted(rank[0].tolist()) == list(range(16))


def test_informative_pixels_overlap_and_cross_confidence():
    rank = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    keep = informative_pixels(rank, 0.2)
    assert keep.tolist() == [[False] * 8 + [True, True]]
    other = informative_pixels(torch.tensor([[9, 1, 2, 3, 4, 5, 6, 7, 8, 0]]), 0.2)
    assert pixel_overlap(keep, keep).tolist() == [1.0]
    assert pixel_overlap(keep, other).tolist() == [0.5]
    with pytest.raises(ValueError, match="keep_fraction"):
        informative_pixels(rank, 0.0)
    # only pixel 0 has weight: showing it gives sigmoid(w*x), hiding it gives sigmoid(0)
    x = torch.full((1, 1, 1, 10), 2.0)
    w = torch.zeros(10)
    w[0] = 1.0
    forward = _linear_forward(w)
    assert cross_confidence(forward, x, other, torch.tensor([0])) == pytest.approx(float(torch.sigmoid(torch.tensor(2.0))))
    assert cross_confidence(forward, x, keep, torch.tensor([0])) == pytest.approx(0.5)


def test_a_model_has_full_pixel_overlap_with_itself():
    net = _net(0).eval()
    x = torch.randn(2, 3, 8, 8)

    def forward(inputs):
        return torch.softmax(net(inputs), dim=1)

    target = forward(x).argmax(1)
    a = informative_pixels(backselect_order(forward, x, target, pixels_per_round=8), 0.1)
    b = informative_pixels(backselect_order(forward, x, target, pixels_per_round=8, batch_size=100), 0.1)
    assert pixel_overlap(a, b).tolist() == [1.0, 1.0]


def test_backselect_rejects_bad_arguments():
    forward = _linear_forward(torch.ones(4))
    with pytest.raises(ValueError, match="pixels_per_round"):
        backselect_order(forward, torch.zeros(1, 1, 2, 2), torch.zeros(1, dtype=torch.long), pixels_per_round=0)
    with pytest.raises(ValueError, match="one target per image"):
        backselect_order(forward, torch.zeros(2, 1, 2, 2), torch.zeros(1, dtype=torch.long), pixels_per_round=1)


def test_agreement_modes_bootstrap_the_per_image_agreement_like_a_loop():
    from prunecheck.metrics.bootstrap import bootstrap_indices
    from prunecheck.gates.similarity import SimilarityPoint, similarity_result

    rng = np.random.default_rng(0)
    pruned_img = rng.choice([0.0, 0.5, 1.0], size=120, p=[0.06, 0.04, 0.9])
    reference_img = rng.choice([0.0, 1.0], size=120, p=[0.1, 0.9])
    pruned = SimilarityPoint("q", 0.1, (float(pruned_img.mean()),), (0.0,), pruned_img)
    reference = SimilarityPoint("r", 0.1, (float(reference_img.mean()),), (0.0,), reference_img)
    loop = [pruned_img[i].mean() - reference_img[i].mean() for i in bootstrap_indices(120, n_resamples=300, seed=2)]
    low, high = np.percentile(loop, [2.5, 97.5])
    kwargs = dict(threshold_name="min_reference_margin", metric="margin", n_resamples=300, seed=2, subject="p",
                  view="noise0.1", details={})
    lenient = similarity_result(pruned, reference, mode="lenient", threshold=0.0, **kwargs)
    value = pruned.mean_agreement - reference.mean_agreement
    assert lenient.ci == pytest.approx((min(low, value), max(high, value)))
    # 0.9 agreement on 120 images is not confidently >= 0.88, yet is as a point estimate
    point = similarity_result(pruned, mode="point", threshold=0.88, **{**kwargs, "threshold_name": "min_agreement"})
    confident = similarity_result(pruned, mode="confident", threshold=0.88, **{**kwargs, "threshold_name": "min_agreement"})
    assert pruned.mean_agreement >= 0.88 and point.passed and not confident.passed and confident.mode == "confident"


# ------------------------------------------------------------------ pure gates on hand-made inputs
def _one_hot(model: str, predicted: list[int], labels: list[int], num_classes: int = 4):
    from prunecheck.engine.predictor import Predictions

    probs = torch.zeros((len(labels), num_classes))
    probs[torch.arange(len(labels)), torch.tensor(predicted)] = 1.0
    return Predictions(model=model, dataset="d", view=NOMINAL, log_probs=probs.clamp_min(1e-30).log()[None],
                       labels=torch.tensor(labels))


def _options(**changes):
    from prunecheck.config.options import FunctionalOptions

    return {**FunctionalOptions(), **changes}


def _similarity(pruned_per_image, reference_per_image=None, eps=0.1):
    from prunecheck.gates.similarity import NoiseSimilarity, SimilarityPoint

    def point(name, per_image):
        per_image = np.asarray(per_image, dtype=float)
        return SimilarityPoint(name, eps, (float(per_image.mean()),), (0.25,), per_image)

    reference = None if reference_per_image is None else point("ref", reference_per_image)
    return NoiseSimilarity("par", eps, len(pruned_per_image), point("pru", pruned_per_image), reference)


def test_similarity_points_from_hand_made_predictions_of_two_views():
    from prunecheck.gates.similarity import similarity_points

    labels = [0, 1, 2, 3]
    views = [
        [_one_hot("p", [0, 1, 2, 3], labels), _one_hot("q", [0, 1, 0, 0], labels)],  # agrees on 2 of 4
        [_one_hot("p", [0, 1, 2, 3], labels), _one_hot("q", [0, 1, 2, 3], labels)],  # agrees on all
    ]
    (point,) = similarity_points(iter(views), ["q"], 0.3)
    assert point.model == "q" and point.eps == 0.3 and point.agreement == (0.5, 1.0)
    # two one-hot rows that differ are sqrt(2) apart; 2 of 4 images differ in the first view
    assert point.distance == pytest.approx((2 * np.sqrt(2) / 4, 0.0))
    assert point.per_image.tolist() == [1.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="at least one noise view"):
        similarity_points([], ["q"], 0.3)
    with pytest.raises(ValueError, match="1 compared model"):
        similarity_points([views[0][:1]], ["q"], 0.3)


def test_agreement_gate_and_report_entry_from_a_hand_made_similarity():
    from prunecheck.gates.similarity import agreement

    similarity = _similarity([1.0] * 8 + [0.5, 0.0], [1.0] * 10)  # mean agreement 0.85
    kwargs = dict(subject="pair", eps=0.1, seed=0, n_resamples=200)
    outcome = agreement(similarity, _options(min_agreement=0.8), **kwargs)
    (result,) = outcome.results
    assert result.passed and result.value == pytest.approx(0.85) and result.view == "noise0.1"
    assert result.threshold_name == "min_agreement" and result.direction == "min"
    ((section, subject, payload),) = outcome.records
    assert (section, subject) == ("functional", "pair")
    assert payload["kind"] == "noise" and payload["images"] == 10 and payload["parent"] == "par"
    assert payload["pruned"]["mean_agreement"] == pytest.approx(0.85) and payload["reference"]["model"] == "ref"
    (strict,) = agreement(similarity, _options(min_agreement=0.9), **kwargs).results
    assert not strict.passed and "0.8500 < min_agreement 0.9" in strict.message


def test_similarity_gates_fail_closed_when_the_measurement_fails():
    from prunecheck.core.errors import DataError
    from prunecheck.gates.decide import Unavailable
    from prunecheck.gates.similarity import agreement, closer_than_reference

    broken = Unavailable(DataError("colours: cannot read the images"))  # what Pair.noise_similarity hands over

    kwargs = dict(subject="pair", eps=0.2, seed=0, n_resamples=200)
    outcome = agreement(broken, _options(), **kwargs)
    (result,) = outcome.results
    assert not outcome.records and not result.passed and result.view == "noise0.2"
    assert result.message == ("agreement with parent: cannot be computed (colours: cannot read the images); "
                              "the gate fails closed")
    (closer,) = closer_than_reference(broken, _options(), **kwargs).results
    assert not closer.passed and closer.metric == "agreement with parent, pruned minus reference"
    # a similarity measured without a reference cannot be compared with one
    (alone,) = closer_than_reference(_similarity([1.0, 1.0]), _options(), **kwargs).results
    assert not alone.passed and "no reference model" in alone.reason


def test_closer_than_reference_gates_the_margin_over_the_reference():
    from prunecheck.gates.similarity import closer_than_reference

    similarity = _similarity([1.0] * 9 + [0.0], [1.0] * 10)  # 0.9 - 1.0 = -0.1
    kwargs = dict(subject="pair", eps=0.1, seed=0, n_resamples=200)
    outcome = closer_than_reference(similarity, _options(min_reference_margin=-0.15), **kwargs)
    (result,) = outcome.results
    assert not outcome.records  # the agreement gate reports the points
    assert result.passed and result.value == pytest.approx(-0.1) and result.pruned == pytest.approx(0.9)
    assert result.metric == "agreement with parent of pruned 'pru' minus reference 'ref' (1.0000)"
    (strict,) = closer_than_reference(similarity, _options(min_reference_margin=0.0), **kwargs).results
    assert not strict.passed


def test_informative_features_entry_from_hand_made_pixel_sets():
    from prunecheck.gates.similarity import InformativeFeatures, informative_features

    keep = {
        "parent": torch.tensor([[True, True, False, False], [True, False, True, False]]),
        "pruned": torch.tensor([[True, False, True, False], [True, False, True, False]]),
    }
    cross = {"parent": {"parent": 0.9, "pruned": 0.8}, "pruned": {"parent": 0.7, "pruned": 0.95}}
    features = InformativeFeatures({"parent": "a", "pruned": "b"}, 2, 4, 0.5, keep, cross)
    outcome = informative_features(features, subject="pair")
    assert outcome.results == ()
    ((section, subject, payload),) = outcome.records
    assert (section, subject, payload["kind"]) == ("functional", "pair", "backselect")
    assert payload["overlap_per_image"] == {"pruned": [0.5, 1.0]} and payload["overlap_with_parent"] == {"pruned": 0.75}
    assert payload["models"] == {"parent": "a", "pruned": "b"} and payload["cross_confidence"] == cross


def test_noise_similarity_is_measured_once_per_pair_and_eps(engine):
    from types import SimpleNamespace

    from prunecheck.config.settings import PairSpec
    from prunecheck.session import similarity as session

    models = {name: model_from_module(name, _net(seed)) for seed, name in enumerate(["parent", "pruned", "ref"])}
    calls = []
    original = engine.predict_many

    def counting(models_, dataset, **kwargs):
        calls.append(dataset.view)
        return original(models_, dataset, **kwargs)

    engine.predict_many = counting

    class Workspace:  # what the measurement uses of a session workspace (weak-referenceable, as memo key)
        settings = SimpleNamespace(run=SimpleNamespace(seed=0))
        model = staticmethod(models.__getitem__)
        dataset = staticmethod(lambda name: data)

    data = _dataset(40)
    workspace = Workspace()
    workspace.engine = engine
    spec = PairSpec("p", "parent", "pruned", "d", reference="ref")
    options = _options(max_images=20, repetitions=3)
    first = session.measure_noise_similarity(workspace, spec, 0.1, options)
    assert session.measure_noise_similarity(workspace, spec, 0.1, options) is first and len(calls) == 3  # one call per view
    assert first.images == 20 and first.parent == "parent" and first.reference.model == "ref"
    session.measure_noise_similarity(workspace, spec, 0.2, options)
    assert len(calls) == 6
    session.forget()
    assert session.measure_noise_similarity(workspace, spec, 0.1, options) is not first and len(calls) == 9


def test_informative_features_that_could_not_be_measured_are_a_one_line_gate_error():
    from prunecheck.core.errors import DataError, GateError
    from prunecheck.gates.decide import Unavailable
    from prunecheck.gates.similarity import informative_features

    with pytest.raises(GateError, match="informative features of pair 'pair' cannot be computed: colours: cannot read"):
        informative_features(Unavailable(DataError("colours: cannot read the images")), subject="pair")
