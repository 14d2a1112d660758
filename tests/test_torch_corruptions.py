"""Torch corruption backend against the imagecorruptions reference (docs/performance.md).

Deterministic corruptions: at most one grey level from the reference, pixel by pixel.
Random corruptions: the difference image (corrupted - clean) has the reference's
distribution: two-sample KS test, mean and standard deviation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare, ks_2samp

from prunecheck.data.base import TensorDataset
from prunecheck.data.corruptions import torch_backend as tb
from prunecheck.data.corruptions.generate import CorruptedDataset, corrupt_images

# Tolerances stated in docs/performance.md.
MAX_ABS_DIFF = 1  # deterministic corruptions, grey levels
KS_MIN_P = 1e-3  # random corruptions, two-sample KS on the difference images
MEAN_TOL = 1.0  # grey levels, difference of the mean difference
STD_REL_TOL = 0.03  # relative difference of the standard deviations


def natural_like(n: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, 3, 32, 32]: blocky colour regions plus noise, every grey level used."""
    rs = np.random.RandomState(seed)
    coarse = rs.randint(0, 256, (n, 3, 8, 8)).astype(np.float64)
    images = np.kron(coarse, np.ones((1, 1, 4, 4))) + rs.normal(0, 20, (n, 3, 32, 32))
    images = np.clip(images, 0, 255).astype(np.uint8)
    images[0, :, :4, :4] = 0  # black and white corners: clipping paths
    images[0, :, -4:, -4:] = 255
    images[1, :, :8, :8] = 128  # grey patch: saturate's hue-0 case
    return images


def reference(images: np.ndarray, name: str, severity: int, seed: int = 0, profile: str = "imagenet") -> np.ndarray:
    nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    return corrupt_images(nhwc, np.arange(len(images)), name, severity, seed, profile).transpose(0, 3, 1, 2)


def torch_out(
    images: np.ndarray, name: str, severity: int, seed: int = 0, indices=None, profile: str = "imagenet"
) -> np.ndarray:
    indices = np.arange(len(images)) if indices is None else indices
    return tb.corrupt_batch(torch.from_numpy(images), indices, name, severity, seed, profile).numpy()


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("name", tb.DETERMINISTIC)
def test_deterministic_corruptions_match_the_reference(name, severity, profile):
    images = natural_like(6)
    ref = reference(images, name, severity, profile=profile).astype(int)
    diff = np.abs(ref - torch_out(images, name, severity, profile=profile).astype(int))
    assert diff.max() <= MAX_ABS_DIFF, f"{name} s{severity} {profile}: max abs difference {diff.max()}"
    assert np.mean(diff > 0) < 0.1  # off-by-one at truncation boundaries only


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
def test_defocus_blur_on_larger_images_matches_the_reference(profile):
    """Beyond 32x32 defocus_blur convolves directly (small cifar disks, cut to their support)
    or through the FFT (ImageNet-C disks): the same tolerance as on small images."""
    rs = np.random.RandomState(7)
    coarse = rs.randint(0, 256, (3, 3, 8, 8)).astype(np.float64)
    images = np.kron(coarse, np.ones((1, 1, 12, 10))) + rs.normal(0, 20, (3, 3, 96, 80))
    images = np.clip(images, 0, 255).astype(np.uint8)
    for severity in range(1, 6):
        ref = reference(images, "defocus_blur", severity, profile=profile).astype(int)
        diff = np.abs(ref - torch_out(images, "defocus_blur", severity, profile=profile).astype(int))
        assert diff.max() <= MAX_ABS_DIFF and np.mean(diff > 0) < 0.1, (severity, diff.max(), np.mean(diff > 0))


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("name", tb.NOISE)
def test_random_corruptions_match_the_reference_distribution(name, severity, profile):
    images = natural_like(12, seed=severity)
    clean = images.astype(np.int16)
    ref = (reference(images, name, severity, seed=1, profile=profile).astype(np.int16) - clean).ravel()
    ours = (torch_out(images, name, severity, seed=1, profile=profile).astype(np.int16) - clean).ravel()
    assert ks_2samp(ref, ours).pvalue > KS_MIN_P
    assert abs(ref.mean() - ours.mean()) < MEAN_TOL
    assert abs(ours.std() / ref.std() - 1) < STD_REL_TOL


def test_shot_noise_of_a_constant_image_follows_a_hand_computed_poisson():
    # x = 255 at severity 5 (c = 3): out = uint8(min(k / 3, 1) * 255), k ~ Poisson(3):
    # P(0) = e^-3, P(85) = 3 e^-3, P(170) = 4.5 e^-3, P(255) = the rest.
    images = np.full((40, 3, 32, 32), 255, dtype=np.uint8)
    out = torch_out(images, "shot_noise", 5).ravel()
    e = np.exp(-3.0)
    expected = np.array([e, 3 * e, 4.5 * e, 1 - 8.5 * e]) * out.size
    observed = np.array([(out == v).sum() for v in (0, 85, 170, 255)])
    assert observed.sum() == out.size
    assert chisquare(observed, expected).pvalue > 1e-3


def test_impulse_noise_rates_are_the_amount():
    images = np.full((40, 3, 32, 32), 100, dtype=np.uint8)
    out = torch_out(images, "impulse_noise", 4)  # amount 0.17
    assert set(np.unique(out)) == {0, 100, 255}
    assert abs(np.mean(out == 0) - 0.085) < 0.005 and abs(np.mean(out == 255) - 0.085) < 0.005


def test_output_depends_only_on_the_index_not_the_batch():
    images = natural_like(10)
    whole = torch_out(images, "gaussian_noise", 3)
    order = np.array([7, 2, 9, 0])
    part = torch_out(images[order], "gaussian_noise", 3, indices=order)
    assert np.array_equal(part, whole[order])
    old = tb.CPU_CHUNK
    try:
        tb.CPU_CHUNK = 3  # chunking inside corrupt_batch changes nothing
        assert np.array_equal(torch_out(images, "gaussian_noise", 3), whole)
    finally:
        tb.CPU_CHUNK = old
    shifted = torch_out(images, "gaussian_noise", 3, indices=np.arange(10) + 1)
    assert not np.array_equal(shifted, whole)
    assert not np.array_equal(torch_out(images, "gaussian_noise", 3, seed=5), whole)


def test_uniform_bits_are_uniform_and_differ_between_images():
    bits = tb.uniform_bits(torch.arange(64), 3072, "gaussian_noise", 1, 0, bits=4).numpy()
    counts = np.bincount(bits.ravel(), minlength=16)
    assert chisquare(counts).pvalue > 1e-3
    rows_equal = (bits[:, None, :] == bits[None, :, :]).mean(axis=2)
    off_diagonal = rows_equal[~np.eye(64, dtype=bool)]
    assert abs(off_diagonal.mean() - 1 / 16) < 0.005  # independent rows agree 1 time in 16


def test_large_indices_are_keys_too():
    big = torch.tensor([2**40, 2**40 + 1, 5])
    bits = tb.uniform_bits(big, 100, "shot_noise", 1, 0).numpy()
    assert not np.array_equal(bits[0], bits[1]) and not np.array_equal(bits[0], bits[2])


@pytest.mark.parametrize(
    "images, name, message",
    [
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "rain", "found 'rain'"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.float32), "contrast", "expected uint8"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "contrast", "at least 32x32"),
    ],
)
def test_bad_requests_say_what_was_expected(images, name, message):
    with pytest.raises(ValueError, match=message):
        tb.corrupt_batch(images, np.arange(2), name, 1, 0)


def _dataset(n=20):
    images = torch.from_numpy(natural_like(n))
    return TensorDataset("toy", images, torch.arange(n) % 10, 10, (0.5,) * 3, (0.25,) * 3)


def test_torch_dataset_is_cached_under_its_own_key(tmp_path):
    base = _dataset()
    torch_view = tb.TorchCorruptedDataset(base, "contrast", 2, seed=0, cache_dir=tmp_path)
    reference_view = CorruptedDataset(base, "contrast", 2, seed=0, cache_dir=tmp_path)
    assert torch_view.fingerprint() != reference_view.fingerprint()
    assert torch_view.path != reference_view.path
    first = torch_view.images(np.arange(20)).numpy()
    assert torch_view.path.is_file()
    expected = torch_out(base.images(np.arange(20)).numpy(), "contrast", 2, profile="cifar")  # auto: 32 x 32
    assert np.array_equal(first, expected)
    again = tb.TorchCorruptedDataset(base, "contrast", 2, seed=0, cache_dir=tmp_path)
    again._generate = lambda: pytest.fail("a cached view must not be regenerated")
    assert np.array_equal(again.images(np.arange(20)).numpy(), first)


def test_workspace_picks_the_backend_per_corruption(tmp_path, monkeypatch):
    from prunecheck.config.settings import CORRUPTION_BACKENDS, DatasetSpec, RunSettings, Settings
    from prunecheck.core.views import NOMINAL, corruption
    from prunecheck.session.workspace import Workspace

    assert RunSettings().corruption_backend == "imagecorruptions"
    assert CORRUPTION_BACKENDS == ("imagecorruptions", "torch")
    base = _dataset()

    def workspace(backend=None):
        run = RunSettings(device="cpu", cache_dir=tmp_path, **({"corruption_backend": backend} if backend else {}))
        settings = Settings(
            source="test", run=run, models={}, pairs=(),
            datasets={"toy": DatasetSpec(name="toy", kind="demo")},
        )
        ws = Workspace(settings)
        ws._datasets[("toy", NOMINAL)] = base  # the nominal data, without a loader
        return ws

    torch_ws = workspace("torch")
    assert isinstance(torch_ws.dataset("toy", corruption("contrast", 1)), tb.TorchCorruptedDataset)
    assert isinstance(torch_ws.dataset("toy", corruption("spatter", 1)), tb.TorchCorruptedDataset)  # all 19
    default_ws = workspace()
    assert type(default_ws.dataset("toy", corruption("contrast", 1))) is CorruptedDataset


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("name", ["brightness", "saturate"])
def test_hsv_corruptions_are_byte_identical_on_natural_images(name, profile):
    """The HSV round trip mirrors scikit-image's float64 arithmetic: no value differs
    (the former float32 RGB shortcut differed on ~12% of values at saturate severity 3)."""
    from prunecheck.data.demo import generate_demo_images

    demo, _ = generate_demo_images("test", 100)
    for images in (natural_like(8), np.ascontiguousarray(demo)):
        for severity in range(1, 6):
            ours = torch_out(images, name, severity, profile=profile)
            assert np.array_equal(ours, reference(images, name, severity, profile=profile)), (name, severity)


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_motion_blur_at_a_given_angle_matches_the_reference(severity, profile):
    """Given the angle, motion blur is deterministic: compare with imagecorruptions' own
    kernel at the same angles (within one grey level), including angles that hit taps' edges."""
    from prunecheck.data.corruptions import torch_spatial
    from prunecheck.data.corruptions.compat import load_imagecorruptions
    from prunecheck.data.corruptions.profiles import parameters

    radius, sigma = parameters(profile, "motion_blur", severity)
    images = natural_like(7, seed=severity)
    degrees = np.array([-45.0, -30.5, -7.25, 0.0, 12.0, 33.3, 45.0])
    ours = torch_spatial.motion_blur_at(torch.from_numpy(images), torch.from_numpy(degrees), radius, sigma).numpy()
    blur = load_imagecorruptions().corruptions._motion_blur
    for k, angle in enumerate(degrees):
        ref = np.uint8(np.clip(blur(images[k].transpose(1, 2, 0), radius=radius, sigma=sigma, angle=angle), 0, 255))
        diff = np.abs(ref.transpose(2, 0, 1).astype(int) - ours[k])
        assert diff.max() <= MAX_ABS_DIFF, (angle, diff.max())


def test_motion_blur_on_large_images_slices_to_the_same_result(monkeypatch):
    """From 64x64 on the CPU motion blur shifts by slicing an edge-replicated copy instead of
    gathering: the same values (checked against the gather path and the reference's kernel)."""
    from prunecheck.data.corruptions import torch_spatial
    from prunecheck.data.corruptions.compat import load_imagecorruptions

    rs = np.random.RandomState(5)
    images = rs.randint(0, 256, (3, 3, 72, 80)).astype(np.uint8)
    degrees = torch.tensor([-44.0, 7.5, 30.0], dtype=torch.float64)
    sliced = torch_spatial.motion_blur_at(torch.from_numpy(images), degrees, 15, 8).numpy()
    monkeypatch.setattr(torch_spatial, "_MOTION_SLICE_MIN_PIXELS", 10**9)
    gathered = torch_spatial.motion_blur_at(torch.from_numpy(images), degrees, 15, 8).numpy()
    assert np.array_equal(sliced, gathered)
    blur = load_imagecorruptions().corruptions._motion_blur
    for k, angle in enumerate(degrees.tolist()):
        ref = np.uint8(np.clip(blur(images[k].transpose(1, 2, 0), radius=15, sigma=8, angle=angle), 0, 255))
        assert np.abs(ref.transpose(2, 0, 1).astype(int) - sliced[k]).max() <= MAX_ABS_DIFF


def test_motion_blur_angles_are_uniform_on_plus_minus_45():
    from scipy.stats import kstest

    from prunecheck.data.corruptions.torch_random import uniform01

    degrees = (uniform01(torch.arange(4000), 1, "motion_blur", 3, 0)[:, 0] * 90 - 45).numpy()
    assert degrees.min() >= -45 and degrees.max() <= 45
    assert kstest(degrees, "uniform", args=(-45, 90)).pvalue > 1e-3


@pytest.fixture
def numpy_draws(monkeypatch):
    """Feed torch_spatial the reference's uniform draws: np.random.random_sample in call order."""
    from prunecheck.data.corruptions import torch_spatial

    def from_numpy(indices, per_image, *args):
        return torch.from_numpy(np.random.random_sample((len(indices), per_image)))

    monkeypatch.setattr(torch_spatial, "uniform01", from_numpy)
    return torch_spatial


@pytest.mark.parametrize("size, decay", [(32, 2.0), (64, 1.4), (256, 3.0)])
def test_plasma_with_the_reference_draws_is_the_reference_plasma(numpy_draws, size, decay):
    """Fog's only randomness is the plasma field: with the same uniform draws (one image, the
    reference's draw order) the batched plasma equals compat.plasma_fractal."""
    from prunecheck.data.corruptions import compat

    np.random.seed(3)
    expected = compat.plasma_fractal(size, decay)
    np.random.seed(3)
    found = numpy_draws.plasma_batch(torch.zeros(1, dtype=torch.int64), size, decay, 1, 0)[0].numpy()
    assert np.allclose(found, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_fog_with_the_reference_draws_matches_the_reference(numpy_draws, severity, profile):
    images = natural_like(4, seed=severity)
    for k in range(len(images)):
        np.random.seed(100 + k)
        ref = compat_apply(images[k], "fog", severity, profile)
        np.random.seed(100 + k)
        ours = numpy_draws.fog(torch.from_numpy(images[k : k + 1]), torch.zeros(1), severity, 0, profile)[0].numpy()
        assert np.abs(ref.astype(int) - ours).max() <= MAX_ABS_DIFF


def test_fog_fields_differ_between_images_and_seeds():
    from prunecheck.data.corruptions import torch_spatial

    a = torch_spatial.plasma_batch(torch.arange(3), 32, 2.0, 3, 0)
    b = torch_spatial.plasma_batch(torch.arange(3), 32, 2.0, 3, 1)
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], b[0])
    assert torch.equal(a[1], torch_spatial.plasma_batch(torch.tensor([1]), 32, 2.0, 3, 0)[0])


def compat_apply(image_chw: np.ndarray, name: str, severity: int, profile: str) -> np.ndarray:
    from prunecheck.data.corruptions.compat import apply_corruption

    out = apply_corruption(np.ascontiguousarray(image_chw.transpose(1, 2, 0)), name, severity, profile)
    return out.transpose(2, 0, 1)


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
def test_jpeg_compression_is_byte_identical(profile):
    images = natural_like(6)
    for severity in range(1, 6):
        assert np.array_equal(torch_out(images, "jpeg_compression", severity, profile=profile),
                              reference(images, "jpeg_compression", severity, profile=profile))


@pytest.fixture
def numpy_glass_moves(monkeypatch):
    """The reference's glass_blur draws: np.random.randint(-d, d, size=(visited, 2)) per pass."""
    from prunecheck.data.corruptions import torch_warp

    def from_numpy(indices, count, delta, *args):
        return torch.from_numpy(np.random.randint(-delta, delta, size=(count, 2))).view(1, count, 2)

    monkeypatch.setattr(torch_warp, "glass_moves", from_numpy)
    return torch_warp


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(32, 32), (35, 41)])
def test_glass_blur_with_the_reference_draws_matches_the_reference(numpy_glass_moves, severity, profile, shape):
    """Given the same (dx, dy) draws, the chain-resolved batch version equals the reference's
    sequential loop (within one grey level: float rounding at the two truncations)."""
    rs = np.random.RandomState(severity)
    images = rs.randint(0, 256, (3, 3, *shape)).astype(np.uint8)
    for k in range(len(images)):
        np.random.seed(10 + k)
        ref = compat_apply(images[k], "glass_blur", severity, profile)
        np.random.seed(10 + k)
        ours = numpy_glass_moves.glass_blur(torch.from_numpy(images[k : k + 1]), torch.zeros(1), severity, 0, profile)
        diff = np.abs(ref.astype(int) - ours[0].numpy())
        assert diff.max() <= MAX_ABS_DIFF and np.mean(diff > 0) < 0.01, (severity, diff.max(), np.mean(diff > 0))


@pytest.fixture
def numpy_warp_draws(monkeypatch):
    from prunecheck.data.corruptions import torch_warp

    def from_numpy(indices, per_image, *args):
        return torch.from_numpy(np.random.random_sample((len(indices), per_image)))

    monkeypatch.setattr(torch_warp, "uniform01", from_numpy)
    return torch_warp


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_elastic_transform_with_the_reference_draws_matches_the_reference(numpy_warp_draws, severity, profile):
    images = natural_like(4, seed=severity)
    for k in range(len(images)):
        np.random.seed(20 + k)
        ref = compat_apply(images[k], "elastic_transform", severity, profile)
        np.random.seed(20 + k)
        ours = numpy_warp_draws.elastic_transform(torch.from_numpy(images[k : k + 1]), torch.zeros(1), severity, 0,
                                                  profile)[0].numpy()
        diff = np.abs(ref.astype(int) - ours)
        assert diff.max() <= MAX_ABS_DIFF and np.mean(diff > 0) < 0.05, (severity, diff.max(), np.mean(diff > 0))


@pytest.mark.parametrize("name", ["glass_blur", "elastic_transform"])
def test_warps_depend_only_on_the_image_index(name):
    images = natural_like(6)
    batch = torch_out(images, name, 3, seed=2)
    alone = torch_out(images[4:5], name, 3, seed=2, indices=np.array([4]))
    assert np.array_equal(batch[4], alone[0])
    assert not np.array_equal(torch_out(images, name, 3, seed=3), batch)


@pytest.fixture
def numpy_weather_draws(monkeypatch):
    """The reference's draws for frost (randint texture, top, left) and snow (normal field, angle)."""
    from prunecheck.data.corruptions import torch_weather

    def frost_choices(indices, sizes, height, width, *args):
        k = np.random.randint(5)
        top = np.random.randint(0, sizes[k][0] - height)
        left = np.random.randint(0, sizes[k][1] - width)
        return torch.tensor([[k, top, left]])

    def snow_draws(indices, height, width, loc, scale, *args):
        field = np.random.normal(size=(height, width), loc=loc, scale=scale)
        return torch.from_numpy(field)[None], torch.tensor([np.random.uniform(-135, -45)], dtype=torch.float64)

    monkeypatch.setattr(torch_weather, "frost_choices", frost_choices)
    monkeypatch.setattr(torch_weather, "snow_draws", snow_draws)
    return torch_weather


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("name", ["frost", "snow"])
def test_weather_with_the_reference_draws_matches_the_reference(numpy_weather_draws, name, severity, profile):
    images = natural_like(5, seed=severity)
    for k in range(len(images)):
        np.random.seed(30 + k)
        ref = compat_apply(images[k], name, severity, profile)
        np.random.seed(30 + k)
        ours = getattr(numpy_weather_draws, name)(torch.from_numpy(images[k : k + 1]), torch.zeros(1), severity, 0,
                                                  profile)[0].numpy()
        diff = np.abs(ref.astype(int) - ours)
        assert diff.max() <= MAX_ABS_DIFF and np.mean(diff > 0) < 0.05, (k, diff.max(), np.mean(diff > 0))


@pytest.mark.parametrize("name", ["frost", "snow"])
def test_weather_depends_only_on_the_image_index(name):
    images = natural_like(6)
    batch = torch_out(images, name, 3, seed=2)
    alone = torch_out(images[4:5], name, 3, seed=2, indices=np.array([4]))
    assert np.array_equal(batch[4], alone[0])
    assert not np.array_equal(torch_out(images, name, 3, seed=3), batch)


@pytest.mark.parametrize("profile", ["imagenet", "cifar"])
def test_frost_on_large_images_slices_the_same_windows(monkeypatch, profile):
    """From 64x64 on the CPU frost copies each window by slicing instead of gathering."""
    from prunecheck.data.corruptions import torch_weather

    images = torch.from_numpy(np.random.RandomState(6).randint(0, 256, (4, 3, 72, 80)).astype(np.uint8))
    sliced = torch_weather.frost(images, torch.arange(4), 3, 0, profile)
    monkeypatch.setattr(torch_weather, "_FROST_SLICE_MIN_PIXELS", 10**9)
    assert torch.equal(sliced, torch_weather.frost(images, torch.arange(4), 3, 0, profile))


def test_frost_choices_cover_every_texture_and_window():
    from prunecheck.data.corruptions import torch_weather

    sizes = [(100, 120), (60, 80), (70, 70), (90, 50), (40, 200)]
    choice = torch_weather.frost_choices(torch.arange(20000), sizes, 32, 32, 3, 0).numpy()
    counts = np.bincount(choice[:, 0], minlength=5)
    assert chisquare(counts).pvalue > 1e-3
    for k, (h, w) in enumerate(sizes):
        tops = choice[choice[:, 0] == k, 1]
        assert tops.min() == 0 and tops.max() == h - 32 - 1  # randint(0, h - H): upper end excluded
