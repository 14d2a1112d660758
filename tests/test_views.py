"""apply_view: one dataset per view; noise drawn exactly as the engine drew it before views moved to the data layer."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from prunecheck import ENGINE_VERSION
from prunecheck.config.settings import DatasetSpec
from prunecheck.core.views import NOMINAL, blur, corruption, noise
from prunecheck.data.base import Subset
from prunecheck.data.corruptions.blur import BlurredDataset
from prunecheck.data.corruptions.generate import CorruptedDataset
from prunecheck.data.views import NoisyDataset, apply_view, view_source
from prunecheck.core.io import cache_key
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictor import PredictionEngine
from tests.test_engine import make_dataset, make_model


def former_noise(seed: int, view_key: str, eps: float, start: int, stop: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The engine's noise before this change, written out again: U(-eps, eps) per block of 64 rows,
    each block from a CPU generator seeded with the first 15 hex digits of sha256 over the parts."""
    rows = []
    for row in range(start, stop):
        block, offset = divmod(row, 64)
        text = b"".join(repr(part).encode() + b"\0" for part in ("noise", seed, view_key, block))
        generator = torch.Generator().manual_seed(int(hashlib.sha256(text).hexdigest()[:15], 16))
        rows.append(torch.rand((64, *shape), generator=generator)[offset])
    return (torch.stack(rows) * 2.0 - 1.0) * eps


@pytest.mark.parametrize("start,stop", [(0, 1), (0, 64), (5, 70), (63, 65), (100, 229)])
@pytest.mark.parametrize("seed,eps,repetition", [(0, 0.1, 0), (7, 0.25, 2)])
def test_noise_is_bit_identical_to_the_former_engine_formula(start, stop, seed, eps, repetition):
    view = noise(eps, repetition)
    noisy = NoisyDataset(make_dataset(n=230), view, seed=seed)
    expected = former_noise(seed, view.key, eps, start, stop, (3, 8, 8))
    assert torch.equal(noisy.noise(start, stop, (3, 8, 8)), expected)
    x = torch.zeros(stop - start, 3, 8, 8)
    assert torch.equal(noisy.batch_transform(x, start, stop), expected)


def test_engine_adds_the_noise_after_normalisation_whatever_the_batch_size(tmp_path):
    model, data = make_model(), make_dataset(n=90)
    view = noise(0.3, 1)
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    x = (data.images(np.arange(90)).float() / 255 - mean) / std + former_noise(4, view.key, 0.3, 0, 90, (3, 8, 8))
    with torch.no_grad():
        expected = torch.softmax(model.module(x), dim=1)
    for batch_size in (16, 7, 128):
        engine = PredictionEngine(ArrayCache(tmp_path / str(batch_size)), batch_size=batch_size, seed=4)
        got = engine.predict(model, apply_view(data, view, seed=4))
        torch.testing.assert_close(got.probs, expected, rtol=1e-5, atol=1e-6)
        assert got.view == view


def test_noise_cache_keys_separate_eps_repetition_and_seed_and_other_keys_did_not_move(tmp_path):
    model, data = make_model(), make_dataset(n=20)
    engine = PredictionEngine(ArrayCache(tmp_path), batch_size=16)
    keys = {
        engine._key(model, apply_view(data, noise(eps, rep), seed=seed), 0)
        for eps in (0.1, 0.2) for rep in (0, 1) for seed in (0, 1)
    }
    assert len(keys) == 8
    assert engine._key(model, data, 0) not in keys
    # nominal and pixel-view entries keep the keys they had when the view's key was part of them
    former = cache_key("predictions", ENGINE_VERSION, model.fingerprint, data.fingerprint(), NOMINAL.key, 0, None, None)
    assert engine._key(model, data, 0) == former
    blurred = apply_view(data, blur(1.0))
    assert engine._key(model, blurred, 0) == cache_key(
        "predictions", ENGINE_VERSION, model.fingerprint, blurred.fingerprint(), NOMINAL.key, 0, None, None)


def test_every_view_gets_a_dataset_that_carries_it(tmp_path):
    data = make_dataset(n=10)
    spec = DatasetSpec("toy", "demo")
    assert apply_view(data, NOMINAL) is data and data.view == NOMINAL
    blurred = apply_view(data, blur(1.5))
    assert isinstance(blurred, BlurredDataset) and blurred.view == blur(1.5)
    noisy = apply_view(data, noise(0.1, 3), seed=2)
    assert isinstance(noisy, NoisyDataset) and noisy.view == noise(0.1, 3)
    assert torch.equal(noisy.images(np.arange(4)), data.images(np.arange(4)))  # uint8 images untouched
    generated = apply_view(data, corruption("contrast", 2), spec=spec, cache_dir=tmp_path, seed=1)
    assert isinstance(generated, CorruptedDataset) and generated.view == corruption("contrast", 2)
    assert view_source(noisy) == "uniform L-inf noise in normalised input space"
    assert view_source(generated).startswith("generated, ") and view_source(blurred) == ""


def test_corruption_views_say_what_they_lack():
    data = make_dataset(n=10)
    with pytest.raises(ValueError, match="needs the dataset's settings"):
        apply_view(data, corruption("fog", 1))
    with pytest.raises(ValueError, match="needs a cache_dir"):
        apply_view(data, corruption("fog", 1), spec=DatasetSpec("toy", "demo"))


def test_a_subset_of_a_noisy_dataset_is_refused_because_noise_follows_row_positions():
    data = make_dataset(n=10)
    with pytest.raises(ValueError, match="take the subset of the nominal dataset first"):
        Subset(apply_view(data, noise(0.1)), [0, 1])
    assert Subset(apply_view(data, blur(1.0)), [0, 1]).view == blur(1.0)  # pixel views re-index freely


def test_in_memory_fingerprints_keep_their_former_digests():
    """Cached predictions stay valid: TensorDataset and CIFAR-C blocks hash as they did, written out by hand."""
    from prunecheck.data.base import TensorDataset
    from prunecheck.data.corruptions.released import CifarCDataset

    images = torch.randint(0, 256, (5000, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(5000) % 7
    tensor = TensorDataset("t", images, labels, 7, (0.5,) * 3, (0.2,) * 3)
    h = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes())
    h.update(repr(("t", 7, (0.5,) * 3, (0.2,) * 3)).encode())
    assert tensor.fingerprint() == h.hexdigest()[:16]
    nhwc = images.numpy().transpose(0, 2, 3, 1).copy()
    block = CifarCDataset("c", None, None, nhwc, labels.numpy(), 1, slice(0, 5000), 7, (0.5,) * 3, (0.2,) * 3)
    h = hashlib.sha256(b"cifar-c\0" + nhwc.tobytes() + labels.numpy().tobytes())
    h.update(repr(("c", 7, (0.5,) * 3, (0.2,) * 3)).encode())
    assert block.fingerprint() == h.hexdigest()[:16]
    assert torch.equal(block.images(np.arange(3)), images[:3])


def test_the_one_normaliser_is_x_over_255_minus_mean_over_std():
    from prunecheck.data.base import normaliser

    images = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = normaliser(mean, std)(images)
    assert got.dtype == torch.float32 and got.shape == images.shape
    for c in range(3):  # per channel, in float64: the formula as written
        expected = (images[:, c].double() / 255 - mean[c]) / std[c]
        torch.testing.assert_close(got[:, c].double(), expected, rtol=0, atol=1e-5)
