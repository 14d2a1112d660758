"""Generated corruptions: all 19 work, are reproducible, batch-independent, and match
imagecorruptions' own definitions where we re-implemented them."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
import torch

from prunecheck.core.corruption_names import ALL_CORRUPTIONS
from prunecheck.core.errors import CacheError
from prunecheck.data.base import TensorDataset
from prunecheck.data.corruptions import compat, generate
from prunecheck.data.corruptions.generate import CorruptedDataset, corrupt_images

#: Corruptions whose output depends on the RNG (the others must ignore the seed).
RANDOM = {
    "gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
    "frost", "fog", "elastic_transform", "speckle_noise", "spatter",
}


@pytest.fixture
def images32() -> np.ndarray:
    rng = np.random.default_rng(1234)
    # Smooth-ish content plus noise, so blurs and JPEG actually change pixels.
    y, x = np.mgrid[0:32, 0:32]
    base = (np.stack([x * 8, y * 8, (x + y) * 4], axis=-1) % 256).astype(np.int64)
    noise = rng.integers(-30, 31, size=(3, 32, 32, 3))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_every_corruption_32(name, images32):
    for severity in range(1, 6):
        out = corrupt_images(images32, np.arange(3), name, severity, seed=0)
        assert out.dtype == np.uint8 and out.shape == images32.shape
    # Severity 5 changes the image (no corruption is the identity).
    assert not np.array_equal(corrupt_images(images32, np.arange(3), name, 5, 0), images32)


def test_every_corruption_224():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(1, 224, 224, 3), dtype=np.uint8)
    start = time.perf_counter()
    for name in ALL_CORRUPTIONS:
        for severity in (1, 5):
            out = corrupt_images(image, np.array([0]), name, severity, seed=0)
            assert out.dtype == np.uint8 and out.shape == image.shape, name
    assert time.perf_counter() - start < 60


def test_non_square_image():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(1, 40, 57, 3), dtype=np.uint8)
    for name in ALL_CORRUPTIONS:
        assert corrupt_images(image, np.array([5]), name, 3, seed=1).shape == image.shape


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_reproducible_and_seed_dependent(name, images32):
    idx = np.array([10, 11, 12])
    a = corrupt_images(images32, idx, name, 3, seed=5)
    b = corrupt_images(images32, idx, name, 3, seed=5)
    assert np.array_equal(a, b)
    c = corrupt_images(images32, idx, name, 3, seed=6)
    if name in RANDOM:
        assert not np.array_equal(a, c)
        # The index is part of the key too: same image under another index differs.
        d = corrupt_images(images32[:1], np.array([99]), name, 3, seed=5)
        assert not np.array_equal(a[:1], d)
    else:
        assert np.array_equal(a, c)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_independent_of_batch_composition(name, images32):
    idx = np.array([4, 8, 15])
    batch = corrupt_images(images32, idx, name, 2, seed=3)
    reversed_batch = corrupt_images(images32[::-1].copy(), idx[::-1].copy(), name, 2, seed=3)
    for i in range(3):
        alone = corrupt_images(images32[i : i + 1], idx[i : i + 1], name, 2, seed=3)
        assert np.array_equal(alone[0], batch[i])
        assert np.array_equal(reversed_batch[2 - i], batch[i])


def test_global_rng_state_restored(images32):
    np.random.seed(42)
    expected = np.random.random(3)
    np.random.seed(42)
    corrupt_images(images32, np.arange(3), "gaussian_noise", 1, seed=0)
    assert np.array_equal(np.random.random(3), expected)


def test_global_rng_state_does_not_leak_in(images32):
    np.random.seed(1)
    a = corrupt_images(images32, np.arange(3), "snow", 2, seed=0)
    np.random.seed(2)
    np.random.random(17)
    b = corrupt_images(images32, np.arange(3), "snow", 2, seed=0)
    assert np.array_equal(a, b)


def test_impulse_noise_only_salt_or_pepper(images32):
    out = corrupt_images(images32, np.arange(3), "impulse_noise", 5, seed=0)
    changed = out != images32
    assert np.all(np.isin(out[changed], (0, 255)))
    # amount 0.27 of the values are replaced (half of them by their own extreme, rarely)
    assert 0.15 < changed.mean() < 0.30


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "blur"}, "unknown corruption"),
        ({"severity": 0}, "1..5"),
        ({"severity": 6}, "1..5"),
        ({"severity": 2.5}, "1..5"),
        ({"images": np.zeros((1, 32, 32, 3), np.float32)}, "uint8"),
        ({"images": np.zeros((1, 3, 32, 32), np.uint8)}, r"\[N, H, W, 3\]"),
        ({"images": np.zeros((1, 16, 32, 3), np.uint8)}, "at least 32"),
        ({"indices": np.arange(2)}, "indices"),
    ],
)
def test_corrupt_images_rejects_bad_input(kwargs, match):
    args = {"images": np.zeros((1, 32, 32, 3), np.uint8), "indices": np.arange(1),
            "name": "fog", "severity": 1, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        corrupt_images(**args)


# ------------------------------------------------------------------ against imagecorruptions


@pytest.fixture
def patched_reference(monkeypatch):
    """imagecorruptions' own module, patched only as far as current libraries require.

    ``multichannel=True`` becomes ``channel_axis=-1`` and ``np.float_`` is restored;
    nothing else of the original changes, so it is an independent reference.
    """
    from skimage.filters import gaussian as sk_gaussian

    ic = compat.load_imagecorruptions()

    def old_gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return sk_gaussian(*args, **kwargs)

    monkeypatch.setattr(ic.corruptions, "gaussian", old_gaussian)
    monkeypatch.setattr(np, "float_", np.float64, raising=False)
    return ic.corruptions


@pytest.mark.parametrize("name", sorted(compat.OWN_IMPLEMENTATIONS.keys() - {"impulse_noise"}))
@pytest.mark.parametrize("shape", [(32, 32), (37, 45)])
def test_reimplementations_match_original(name, shape, patched_reference):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    for severity in range(1, 6):
        np.random.seed(severity)
        expected = np.uint8(getattr(patched_reference, name)(Image.fromarray(image), severity))
        after_reference = np.random.random()
        np.random.seed(severity)
        found = compat.apply_corruption(image, name, severity)
        assert np.array_equal(found, expected), (name, severity)
        # Same number of draws from the global RNG as the original.
        assert np.random.random() == after_reference


def test_spatter_without_water_keeps_image(monkeypatch, images32):
    """Regression: imagecorruptions divides 0/0 and returns a black image when a small
    image gets no water (about 1 in 40 at 32x32, severity 1)."""
    import warnings

    from prunecheck.data.corruptions import profiles

    table = dict(profiles._IMAGENET)
    table["spatter"] = ((0.65, 0.3, 4, 99.0, 0.6, 0),) + table["spatter"][1:]  # threshold no noise value reaches
    monkeypatch.setitem(profiles._TABLES, "imagenet", table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = corrupt_images(images32, np.arange(3), "spatter", 1, seed=0)
    assert np.abs(out.astype(int) - images32).max() <= 1  # float round trip, truncation


def test_frost_texture_cached():
    compat._frost_texture.cache_clear()
    image = np.zeros((1, 32, 32, 3), np.uint8)
    corrupt_images(np.repeat(image, 40, axis=0), np.arange(40), "frost", 1, seed=0)
    assert compat._frost_texture.cache_info().currsize <= 5


def test_plasma_fractal_range():
    np.random.seed(0)
    field = compat.plasma_fractal(64, 2.0)
    assert field.shape == (64, 64)
    assert field.min() == 0.0 and field.max() == 1.0
    with pytest.raises(ValueError, match="power-of-two"):
        compat.plasma_fractal(48, 2.0)


def test_import_leaves_no_pkg_resources_standin():
    compat.load_imagecorruptions()
    module = sys.modules.get("pkg_resources")
    assert module is None or getattr(module, "resource_filename", None) is not compat._resource_filename


def test_standin_resource_filename_resolves_module_relative():
    import os

    ic = compat.load_imagecorruptions()
    path = compat._resource_filename(ic.corruptions.__name__, "./frost/frost1.png")
    assert os.path.isfile(path)


# ------------------------------------------------------------------ cached dataset


@pytest.fixture
def base() -> TensorDataset:
    rng = np.random.default_rng(5)
    images = torch.from_numpy(rng.integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8))
    labels = torch.tensor([3, 1, 4, 1, 5])
    return TensorDataset("toy", images, labels, 10, (0.5,) * 3, (0.25,) * 3)


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = generate.corrupt_images

    def counting(images, indices, *args, **kwargs):
        calls.append(len(indices))
        return real(images, indices, *args, **kwargs)

    monkeypatch.setattr(generate, "corrupt_images", counting)
    return calls


def _expected(base, name, severity, seed, profile="cifar"):
    """The view as corrupt_images makes it; 32 x 32 datasets default to the cifar profile."""
    nhwc = base.images(np.arange(len(base))).numpy().transpose(0, 2, 3, 1)
    return corrupt_images(nhwc, np.arange(len(base)), name, severity, seed, profile).transpose(0, 3, 1, 2)


def test_corrupted_dataset_serves_generated_view(base, tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "CHUNK_SIZE", 2)
    progress = []
    ds = CorruptedDataset(base, "shot_noise", 4, 9, tmp_path, progress=lambda d, t: progress.append((d, t)))
    assert len(ds) == 5 and ds.num_classes == 10 and ds.mean == base.mean
    assert torch.equal(ds.labels, base.labels)
    batch = ds.images(np.array([4, 0, 2]))
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 32, 32)
    expected = _expected(base, "shot_noise", 4, 9)
    assert np.array_equal(batch.numpy(), expected[[4, 0, 2]])
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert ds.path.is_file() and ds.sidecar.is_file()
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupted_dataset_is_lazy(base, tmp_path, counted):
    ds = CorruptedDataset(base, "fog", 1, 0, tmp_path)
    ds.fingerprint()
    assert ds.image_shape == (3, 32, 32)
    assert counted == [] and not ds.path.exists()


def test_second_construction_reads_cache(base, tmp_path, counted):
    first = CorruptedDataset(base, "motion_blur", 2, 0, tmp_path).images(np.arange(5))
    assert sum(counted) == 5
    second = CorruptedDataset(base, "motion_blur", 2, 0, tmp_path).images(np.arange(5))
    assert sum(counted) == 5
    assert torch.equal(first, second)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "drop_sidecar", "bad_sidecar"])
def test_damaged_cache_is_regenerated(base, tmp_path, counted, damage):
    ds = CorruptedDataset(base, "speckle_noise", 3, 1, tmp_path)
    good = ds.images(np.arange(5))
    if damage == "truncate":
        data = ds.path.read_bytes()
        ds.path.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        data = bytearray(ds.path.read_bytes())
        data[-10] ^= 0xFF
        ds.path.write_bytes(bytes(data))
    elif damage == "drop_sidecar":
        ds.sidecar.unlink()
    else:
        ds.sidecar.write_text("{not json")
    again = CorruptedDataset(base, "speckle_noise", 3, 1, tmp_path)
    assert torch.equal(again.images(np.arange(5)), good)
    assert sum(counted) == 10


def test_cache_key_separates_views(base, tmp_path):
    keys = {
        CorruptedDataset(base, n, s, seed, tmp_path).fingerprint()
        for n, s, seed in [("fog", 1, 0), ("fog", 2, 0), ("fog", 1, 1), ("snow", 1, 0)]
    }
    assert len(keys) == 4
    assert base.fingerprint() not in keys


def test_concurrent_threads_share_cache(base, tmp_path):
    results, errors = [], []

    def work():
        try:
            results.append(CorruptedDataset(base, "elastic_transform", 5, 2, tmp_path).images(np.arange(5)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = _expected(base, "elastic_transform", 5, 2)
    for r in results:
        assert np.array_equal(r.numpy(), expected)
    assert len(list(tmp_path.glob("*.npy"))) == 1 and not list(tmp_path.glob("*.tmp"))


def test_unverifiable_fresh_file_raises(base, tmp_path, monkeypatch):
    ds = CorruptedDataset(base, "fog", 1, 0, tmp_path)
    monkeypatch.setattr(CorruptedDataset, "_open_verified", lambda self: None)
    with pytest.raises(CacheError, match="failed verification"):
        ds.images(np.arange(1))


def test_constructor_validates(base, tmp_path):
    with pytest.raises(ValueError, match="unknown corruption"):
        CorruptedDataset(base, "nope", 1, 0, tmp_path)
    with pytest.raises(ValueError, match="1..5"):
        CorruptedDataset(base, "fog", 7, 0, tmp_path)
