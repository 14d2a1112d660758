"""Prediction engine: caching, repair, batching invariance, ensembles, MC dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.core.views import noise
from prunecheck.data.views import apply_view
from prunecheck.data.base import TensorDataset
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictor import PredictionEngine
from prunecheck.nn.models import ensemble_from_members, model_from_module


class SmallNet(nn.Module):
    def __init__(self, num_classes=4, dropout=0.5):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.fc(self.drop(h))


def make_dataset(n=50, num_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % num_classes
    return TensorDataset("toy", images, labels, num_classes, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def make_model(name="m", seed=0, **kw):
    torch.manual_seed(seed)
    return model_from_module(name, SmallNet(**kw))


def engine_at(path, **kw):
    return PredictionEngine(ArrayCache(path), device="cpu", batch_size=kw.pop("batch_size", 16), **kw)


def reference_probs(model, dataset):
    """Plain eval loop, one sample at a time: the independent reference."""
    mean = torch.tensor(dataset.mean).view(1, 3, 1, 1)
    std = torch.tensor(dataset.std).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(len(dataset)):
            x = (dataset.images(np.array([i])).float() / 255 - mean) / std
            out.append(torch.softmax(model.module(x), dim=1))
    return torch.cat(out)


def test_matches_a_plain_eval_loop(tmp_path):
    model, data = make_model(), make_dataset()
    preds = engine_at(tmp_path).predict(model, data)
    torch.testing.assert_close(preds.probs, reference_probs(model, data), rtol=1e-5, atol=1e-6)
    assert torch.equal(preds.labels, data.labels)


def test_second_evaluation_performs_zero_forward_passes(tmp_path):
    model, data = make_model(), make_dataset()
    first = engine_at(tmp_path)
    a = first.predict(model, data)
    assert first.forward_passes == 4  # ceil(50 / 16) batches
    second = engine_at(tmp_path)  # a new run: only the disk cache is shared
    b = second.predict(model, data)
    assert second.forward_passes == 0 and second.cache.stats.hits == 1
    assert torch.equal(a.probs, b.probs)


def test_damaged_cache_entry_is_recomputed(tmp_path):
    model, data = make_model(), make_dataset()
    engine = engine_at(tmp_path)
    good = engine.predict(model, data)
    (entry,) = list(tmp_path.rglob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:100])
    again = engine_at(tmp_path)
    repaired = again.predict(model, data)
    assert again.forward_passes == 4 and again.cache.stats.repaired == 1
    assert torch.equal(good.probs, repaired.probs)
    assert engine_at(tmp_path).predict(model, data) is not None  # the rewritten entry reads back


def test_models_share_batches_and_weights_changes_invalidate(tmp_path):
    data = make_dataset()
    a, b = make_model("a", seed=1), make_model("b", seed=2)
    engine = engine_at(tmp_path)
    engine.predict_many([a, b], data)
    assert engine.forward_passes == 8
    changed = make_model("a", seed=1)
    with torch.no_grad():
        changed.module.fc.bias[0] += 1.0
    changed = model_from_module("a", changed.module)
    engine.predict(changed, data)
    assert engine.forward_passes == 12  # new weights, new key


def test_noise_view_is_seeded_and_independent_of_batch_size(tmp_path):
    model, data = make_model(), make_dataset()
    noisy = apply_view(data, noise(0.2, repetition=0))
    p16 = engine_at(tmp_path / "a", batch_size=16).predict(model, noisy)
    p7 = engine_at(tmp_path / "b", batch_size=7).predict(model, noisy)
    torch.testing.assert_close(p16.probs, p7.probs)
    clean = engine_at(tmp_path / "a").predict(model, data)
    other_rep = engine_at(tmp_path / "a").predict(model, apply_view(data, noise(0.2, repetition=1)))
    assert not torch.allclose(p16.probs, clean.probs)
    assert not torch.allclose(p16.probs, other_rep.probs)


def test_ensemble_combines_members_both_ways(tmp_path):
    data = make_dataset()
    a, b = make_model("a", seed=1), make_model("b", seed=2)
    engine = engine_at(tmp_path)
    for average in ("probs", "logits"):
        spec = ModelSpec(name="ens", members=("a", "b"), ensemble_average=average)
        ens = ensemble_from_members("ens", [a, b], spec)
        preds = engine.predict(ens, data)
        pa, pb = reference_probs(a, data), reference_probs(b, data)
        if average == "probs":
            expected = (pa + pb) / 2
        else:
            expected = torch.softmax((pa.log() + pb.log()) / 2, dim=1)
        torch.testing.assert_close(preds.probs, expected, rtol=1e-4, atol=1e-6)
        assert preds.num_members == 2
    assert engine.forward_passes == 8  # members predicted once, reused by both variants


def test_mc_dropout_is_deterministic_and_leaves_batchnorm_alone(tmp_path):
    model, data = make_model(), make_dataset()
    model.module.bn.running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    first = engine_at(tmp_path / "a").predict(model, data, mc_passes=5)
    second = engine_at(tmp_path / "b").predict(model, data, mc_passes=5)
    assert first.num_members == 5
    assert torch.equal(first.log_probs, second.log_probs)
    assert not torch.allclose(first.member_probs[0], first.member_probs[1])  # dropout was on
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not model.module.training and not model.module.drop.training


def test_output_width_mismatch_is_a_model_error(tmp_path):
    model, data = make_model(num_classes=5), make_dataset(num_classes=4)
    with pytest.raises(ModelError, match="outputs shape .*5.*has 4 classes"):
        engine_at(tmp_path).predict(model, data)
