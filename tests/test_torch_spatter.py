"""Torch spatter against OpenCV and the reference (prunecheck.data.corruptions.compat.spatter).

The steps are checked one by one against OpenCV itself (Canny, distanceTransform,
equalizeHist, blur, filter2D) and scipy (the field's Gaussian); the whole corruption
against the reference fed the same normal field (numpy's draws, in the reference's
order); the torch backend's own draws by their law (the field's values, and two-sample
KS tests on per-image statistics of the difference images, since all pixels of one
image share one random field).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kstest, ks_2samp

from prunecheck.core.corruption_names import ALL_CORRUPTIONS
from prunecheck.data.corruptions import torch_backend as tb
from prunecheck.data.corruptions import torch_spatter as ts
from prunecheck.data.corruptions.compat import apply_corruption
from prunecheck.data.corruptions.generate import corrupt_images
from prunecheck.data.corruptions.profiles import parameters

cv2 = pytest.importorskip("cv2")  # installed with imagecorruptions


def _liquid8(rs: np.random.RandomState, shape, sigma: float, threshold: float = 0.68) -> np.ndarray:
    """A drop map like the reference's: smoothed normal field, cut at the threshold, to uint8."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rs.normal(0.65, 0.3, shape), sigma, mode="nearest")
    field[field < threshold] = 0
    return (field * 255).astype(np.uint8)


def _images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 [n, H, W, 3]: colour blocks plus noise (every grey level used)."""
    rs = np.random.RandomState(seed)
    blocks = np.kron(rs.randint(0, 256, (n, 8, 8, 3)), np.ones((1, height // 8 + 1, width // 8 + 1, 1)))
    return np.clip(blocks[:, :height, :width] + rs.normal(0, 20, (n, height, width, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(32, 32), (35, 41)])
def test_each_step_equals_opencv(shape):
    rs = np.random.RandomState(shape[1])
    for sigma in (0.7, 1.0, 2.0, 4.0):
        liquid8 = _liquid8(rs, shape, sigma)
        edges = cv2.Canny(liquid8, 50, 150)
        assert edges.any()
        assert np.array_equal(ts.canny(torch.from_numpy(liquid8)[None])[0].numpy(), edges > 0), sigma
        dist = cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        assert np.array_equal(ts.chamfer_distance(torch.from_numpy(edges > 0)[None])[0].numpy(), dist), sigma
    grey = rs.randint(0, 21, shape).astype(np.uint8)
    assert np.array_equal(ts.equalize_hist(torch.from_numpy(grey)[None])[0].numpy(), cv2.equalizeHist(grey))
    flat = np.full(shape, 7, dtype=np.uint8)  # one value only: OpenCV returns it unchanged
    assert np.array_equal(ts.equalize_hist(torch.from_numpy(flat)[None])[0].numpy(), cv2.equalizeHist(flat))
    any8 = rs.randint(0, 256, shape).astype(np.uint8)
    sums = ts._correlate3(torch.from_numpy(any8)[None], ts._BOX, "reflect101")[0].numpy()
    assert np.array_equal((2 * sums + 9) // 18, cv2.blur(any8, (3, 3)))  # rounded mean
    embossed = ts._correlate3(torch.from_numpy(any8)[None], ts._EMBOSS, "reflect101")[0].numpy()
    assert np.array_equal(np.clip(embossed, 0, 255), cv2.filter2D(any8, cv2.CV_8U, np.array(ts._EMBOSS)))


def test_chamfer_distance_of_one_point_is_opencvs_float_path_sum():
    """Hand-worked: from a single edge pixel, 5 diagonal moves sum to 7 in float32 but 10
    to 13.999998 (OpenCV accumulates float32 move by move), knight + axial = 3.1969."""
    edges = torch.zeros(1, 41, 41, dtype=torch.bool)
    edges[0, 20, 20] = True
    dist = ts.chamfer_distance(edges)[0]
    f32 = np.float32
    assert dist[20, 21] == 1 and dist[21, 21] == f32(1.4) and dist[21, 22] == f32(2.1969)
    assert dist[25, 25] == 7.0
    ten_diagonals = f32(0)
    for _ in range(10):
        ten_diagonals = f32(ten_diagonals + f32(1.4))
    assert dist[30, 30] == ten_diagonals and ten_diagonals != f32(14)
    assert dist[21, 23] == f32(f32(2.1969) + f32(1))  # (1, 3): one knight and one axial move
    assert dist[20, 23] == 3 and dist[0, 0] == 20  # (0, 3): three axial moves; beyond the cap: 20
    # the whole map (paths of up to 20 moves: the sweeps from changed pixels only) and no edge at all
    reference = cv2.distanceTransform(np.where(edges[0].numpy(), 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    assert np.array_equal(dist.numpy(), np.minimum(reference, 20))
    assert torch.equal(ts.chamfer_distance(torch.zeros(2, 33, 40, dtype=torch.bool)), torch.full((2, 33, 40), 20.0))


@pytest.fixture
def numpy_field(monkeypatch):
    """Feed torch_spatter the reference's draw: np.random.normal(size=(H, W), loc, scale)."""

    def from_numpy(indices, height, width, loc, scale, *args):
        return torch.from_numpy(np.random.normal(size=(height, width), loc=loc, scale=scale))[None]

    monkeypatch.setattr(ts, "spatter_field", from_numpy)


def _with_reference_draws(images: np.ndarray, severity: int, profile: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference, torch) outputs [n, H, W, 3], image k with np.random seeded 50 + k for both."""
    refs, ours = [], []
    for k, image in enumerate(images):
        np.random.seed(50 + k)
        refs.append(apply_corruption(image, "spatter", severity, profile))
        np.random.seed(50 + k)
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
        ours.append(ts.spatter(chw, torch.zeros(1, dtype=torch.int64), severity, 0, profile)[0].numpy())
    return np.stack(refs), np.stack(ours).transpose(0, 2, 3, 1)


def _assert_close(ref: np.ndarray, ours: np.ndarray, label) -> None:
    # measured: byte-identical (docs/corruptions.md); allowed: float rounding at one truncation
    diff = np.abs(ref.astype(int) - ours.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.005, (label, diff.max(), np.mean(diff > 0))


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
def test_spatter_with_the_reference_draws_is_the_reference_32(numpy_field, profile):
    images = _images(3, 32, 32, seed=1)
    for severity in range(1, 6):  # 1..3 water, 4..5 mud in both profiles
        _assert_close(*_with_reference_draws(images, severity, profile), (profile, severity))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("shape", [(224, 224), (61, 96)])
def test_spatter_with_the_reference_draws_is_the_reference_larger(numpy_field, profile, shape):
    images = _images(2, *shape, seed=2)
    for severity in range(1, 6):
        _assert_close(*_with_reference_draws(images, severity, profile), (profile, severity, shape))


def test_spatter_without_water_is_the_reference_round_trip():
    """No drop (field below the threshold): the reference's 0 / 0 fix gives x / 255 * 255 in
    float32, truncated; the torch version takes the same path."""
    images = _images(2, 32, 32, seed=3)
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    out = ts.spatter_from_field(chw, torch.zeros(2, 32, 32, dtype=torch.float64), 1, "imagenet")
    expected = np.uint8(np.clip(images.astype(np.float32) / 255.0, 0, 1) * np.float32(255))
    assert np.array_equal(out.numpy().transpose(0, 2, 3, 1), expected)


def test_torch_backend_covers_all_19_and_spatter_depends_only_on_the_index():
    assert sorted(tb.TORCH_CORRUPTIONS) == sorted(ALL_CORRUPTIONS)
    images = torch.from_numpy(np.ascontiguousarray(_images(6, 32, 32, seed=4).transpose(0, 3, 1, 2)))
    batch = tb.corrupt_batch(images, np.arange(6), "spatter", 2, 7)
    alone = tb.corrupt_batch(images[4:5], np.array([4]), "spatter", 2, 7)
    assert torch.equal(batch[4], alone[0])
    assert not torch.equal(tb.corrupt_batch(images, np.arange(6), "spatter", 2, 8), batch)
    assert (batch != images).any()


def test_spatter_field_is_normal_with_the_profiles_moments():
    loc, scale = parameters("imagenet", "spatter", 5)[:2]
    field = ts.spatter_field(torch.arange(8), 32, 32, loc, scale, 5, 0).numpy()
    assert kstest(field.ravel(), "norm", args=(loc, scale)).pvalue > 1e-3
    assert not np.array_equal(field[0], field[1])


def _per_image_statistics(corrupted: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: mean signed difference and fraction of changed values (independent samples)."""
    diff = corrupted.astype(np.int16) - clean.astype(np.int16)
    axes = tuple(range(1, diff.ndim))
    return diff.mean(axis=axes), (diff != 0).mean(axis=axes)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("side, count", [(32, 300), (96, 120)])
def test_spatter_with_its_own_draws_has_the_reference_distribution(profile, side, count):
    """Two-sample KS on per-image statistics of the difference images, torch draws vs numpy's."""
    images = _images(count, side, side, seed=side)
    for severity in (1, 3, 5):
        ref = corrupt_images(images, np.arange(count), "spatter", severity, 11, profile)
        chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        ours = tb.corrupt_batch(chw, np.arange(count), "spatter", severity, 11, profile).numpy().transpose(0, 2, 3, 1)
        for ref_stat, our_stat in zip(_per_image_statistics(ref, images), _per_image_statistics(ours, images)):
            assert ks_2samp(ref_stat, our_stat).pvalue > 1e-3, (profile, side, severity)
