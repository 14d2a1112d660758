"""Gaussian blur view: identity at 0, constant-preserving, variance-reducing, and equal
to scipy's Gaussian filter (mirror boundary) up to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from prunecheck.data.corruptions.blur import (
    BlurredDataset,
    _reflect_index,
    gaussian_blur_batch,
    gaussian_kernel1d,
)
from prunecheck.data.base import TensorDataset


@pytest.fixture
def base() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    return TensorDataset("toy", images, torch.arange(4), 4, (0.5,) * 3, (0.25,) * 3)


def test_radius_zero_is_identity(base):
    ds = BlurredDataset(base, 0)
    idx = np.array([2, 0])
    assert torch.equal(ds.images(idx), base.images(idx))
    assert ds.fingerprint() == base.fingerprint()


@pytest.mark.parametrize("radius", [0.5, 1, 3, 40])
def test_constant_image_stays_constant(radius):
    images = torch.full((2, 3, 32, 20), 77, dtype=torch.uint8)
    images[1] = 200
    out = gaussian_blur_batch(images, radius)
    assert torch.equal(out, images)


def test_larger_radius_lowers_variance(base):
    variances = [
        BlurredDataset(base, r).images(np.arange(4)).float().var().item() for r in (0, 1, 2, 3, 5)
    ]
    assert all(a > b for a, b in zip(variances, variances[1:])), variances


@pytest.mark.parametrize("radius", [0.7, 1.0, 2.0, 3.0, 5.0])
def test_matches_scipy_mirror_filter(base, radius):
    images = base.images(np.arange(4))
    found = gaussian_blur_batch(images, radius).numpy().astype(int)
    ref = gaussian_filter(
        images.numpy().astype(np.float64), sigma=(0, 0, radius, radius), mode="mirror", truncate=4.0
    )
    expected = np.clip(np.round(ref), 0, 255).astype(int)
    assert np.abs(found - expected).max() <= 1
    assert (found != expected).mean() < 0.01


@given(n=st.integers(1, 9), pad=st.integers(0, 30))
@settings(max_examples=60, deadline=None)
def test_reflect_index_matches_numpy_pad(n, pad):
    found = _reflect_index(n, pad, torch.device("cpu")).numpy()
    expected = np.pad(np.arange(n), pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad, int)
    assert np.array_equal(found, expected)


def test_kernel_normalised_and_symmetric():
    k = gaussian_kernel1d(1.5)
    assert k.numel() == 2 * 6 + 1
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(k, k.flip(0))
    # hand-worked ratio: k[h+1]/k[h] = exp(-1/(2*1.5^2))
    assert torch.isclose(k[7] / k[6], torch.tensor(np.exp(-1 / 4.5), dtype=torch.float64))


def test_deterministic_and_metadata(base):
    ds = BlurredDataset(base, 2.0)
    assert torch.equal(ds.images(np.arange(4)), ds.images(np.arange(4)))
    assert torch.equal(ds.labels, base.labels) and len(ds) == 4 and ds.image_shape == (3, 32, 32)
    assert ds.fingerprint() != base.fingerprint() != BlurredDataset(base, 3.0).fingerprint()


@pytest.mark.parametrize("radius", [-1, float("nan"), float("inf")])
def test_bad_radius(base, radius):
    with pytest.raises(ValueError, match="radius"):
        BlurredDataset(base, radius)


def test_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        gaussian_blur_batch(torch.zeros(1, 3, 8, 8), 1.0)
