"""Corruption profiles: constants transcribed from the reference code, and outputs re-computed plainly.

Sources (read, not imported):
- CIFAR: Hendrycks' robustness repository, ``ImageNet-C/create_c/make_cifar_c.py``.
- ImageNet: imagecorruptions 1.1.2, ``imagecorruptions/corruptions.py`` (equal to
  ``ImageNet-C/create_c/make_imagenet_c.py`` for every corruption but elastic_transform,
  whose imagecorruptions variant is kept).
Each row names the file and the function whose ``c = [...]`` list it transcribes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from prunecheck.report import markdown
from prunecheck.core.corruption_names import ALL_CORRUPTIONS
from prunecheck.data.base import TensorDataset
from prunecheck.data.corruptions import cifar_c, compat, profiles
from prunecheck.data.corruptions.generate import CorruptedDataset, corrupt_images
from prunecheck.testing import minimal_config

CIFAR = "make_cifar_c.py"
IC = "imagecorruptions/corruptions.py"

# (profile, corruption) -> (source file, function, the five values as written there)
REFERENCE = {
    ("cifar", "gaussian_noise"): (CIFAR, "gaussian_noise", [0.04, 0.06, .08, .09, .10]),
    ("cifar", "shot_noise"): (CIFAR, "shot_noise", [500, 250, 100, 75, 50]),
    ("cifar", "impulse_noise"): (CIFAR, "impulse_noise", [.01, .02, .03, .05, .07]),
    ("cifar", "speckle_noise"): (CIFAR, "speckle_noise", [.06, .1, .12, .16, .2]),
    ("cifar", "gaussian_blur"): (CIFAR, "gaussian_blur", [.4, .6, 0.7, .8, 1]),
    ("cifar", "glass_blur"): (CIFAR, "glass_blur", [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]),
    ("cifar", "defocus_blur"): (CIFAR, "defocus_blur", [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]),
    ("cifar", "motion_blur"): (CIFAR, "motion_blur", [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]),
    ("cifar", "zoom_blur"): (CIFAR, "zoom_blur", [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01),
                                                  (1, 1.21, 0.01), (1, 1.26, 0.01)]),
    ("cifar", "snow"): (CIFAR, "snow", [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                                        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                                        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]),
    ("cifar", "frost"): (CIFAR, "frost", [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]),
    ("cifar", "fog"): (CIFAR, "fog", [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]),
    ("cifar", "brightness"): (CIFAR, "brightness", [.05, .1, .15, .2, .3]),
    ("cifar", "contrast"): (CIFAR, "contrast", [.75, .5, .4, .3, 0.15]),
    # IMSIZE * (0, 0, 0.08), ...: stored as the fractions of IMSIZE
    ("cifar", "elastic_transform"): (CIFAR, "elastic_transform", [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                                                  (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]),
    ("cifar", "pixelate"): (CIFAR, "pixelate", [0.95, 0.9, 0.85, 0.75, 0.65]),
    ("cifar", "jpeg_compression"): (CIFAR, "jpeg_compression", [80, 65, 58, 50, 40]),
    ("cifar", "spatter"): (CIFAR, "spatter", [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                                              (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                                              (0.65, 0.1, 0.5, 0.68, 0.6, 1)]),
    ("cifar", "saturate"): (CIFAR, "saturate", [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]),
    ("imagenet", "gaussian_noise"): (IC, "gaussian_noise", [.08, .12, 0.18, 0.26, 0.38]),
    ("imagenet", "shot_noise"): (IC, "shot_noise", [60, 25, 12, 5, 3]),
    ("imagenet", "impulse_noise"): (IC, "impulse_noise", [.03, .06, .09, 0.17, 0.27]),
    ("imagenet", "speckle_noise"): (IC, "speckle_noise", [.15, .2, 0.35, 0.45, 0.6]),
    ("imagenet", "gaussian_blur"): (IC, "gaussian_blur", [1, 2, 3, 4, 6]),
    ("imagenet", "glass_blur"): (IC, "glass_blur", [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]),
    ("imagenet", "defocus_blur"): (IC, "defocus_blur", [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]),
    ("imagenet", "motion_blur"): (IC, "motion_blur", [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]),
    ("imagenet", "zoom_blur"): (IC, "zoom_blur", [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02),
                                                  (1, 1.26, 0.02), (1, 1.31, 0.03)]),
    ("imagenet", "snow"): (IC, "snow", [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                                        (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                                        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]),
    ("imagenet", "frost"): (IC, "frost", [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]),
    ("imagenet", "fog"): (IC, "fog", [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)]),
    ("imagenet", "brightness"): (IC, "brightness", [.1, .2, .3, .4, .5]),
    ("imagenet", "contrast"): (IC, "contrast", [0.4, .3, .2, .1, .05]),
    ("imagenet", "elastic_transform"): (IC, "elastic_transform", [250 * 0.05, 250 * 0.065, 250 * 0.085,
                                                                  250 * 0.1, 250 * 0.12]),
    ("imagenet", "pixelate"): (IC, "pixelate", [0.6, 0.5, 0.4, 0.3, 0.25]),
    ("imagenet", "jpeg_compression"): (IC, "jpeg_compression", [25, 18, 15, 10, 7]),
    ("imagenet", "spatter"): (IC, "spatter", [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                                              (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                                              (0.67, 0.4, 1, 0.65, 1.5, 1)]),
    ("imagenet", "saturate"): (IC, "saturate", [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)]),
}


def test_every_profile_defines_all_19():
    for profile in profiles.PROFILES:
        assert set(profiles.table(profile)) == set(ALL_CORRUPTIONS)
        assert {name for (p, name) in REFERENCE if p == profile} == set(ALL_CORRUPTIONS)


@pytest.mark.parametrize("key", sorted(REFERENCE), ids=lambda k: f"{k[0]}-{k[1]}")
def test_constants_equal_the_reference_code(key):
    profile, name = key
    source, function, values = REFERENCE[key]
    for severity, expected in enumerate(values, start=1):
        found = profiles.parameters(profile, name, severity)
        assert np.allclose(np.asarray(found, float), np.asarray(expected, float), rtol=0, atol=1e-12), (
            f"{profile} {name} severity {severity}: {found} != {expected} ({source}, {function})"
        )


def test_issue_severity_3_pairs():
    """The severity-3 contrasts quoted when the gap was found (ImageNet-C vs CIFAR-C)."""
    pairs = {"gaussian_noise": (0.18, 0.08), "shot_noise": (12, 100), "impulse_noise": (0.09, 0.03),
             "speckle_noise": (0.35, 0.12), "gaussian_blur": (3, 0.7), "contrast": (0.2, 0.4),
             "jpeg_compression": (15, 58), "pixelate": (0.4, 0.85)}
    for name, (imagenet, cifar) in pairs.items():
        assert profiles.parameters("imagenet", name, 3) == imagenet
        assert profiles.parameters("cifar", name, 3) == cifar


@pytest.mark.parametrize("shape, expected", [((32, 32), "cifar"), ((64, 64), "cifar"), ((64, 65), "imagenet"),
                                             ((224, 224), "imagenet"), ((28, 40), "cifar")])
def test_auto_resolves_by_image_size(shape, expected):
    assert profiles.resolve_profile("auto", *shape) == expected
    assert profiles.resolve_profile("imagenet", 32, 32) == "imagenet"


@pytest.mark.parametrize("bad", ["CIFAR", "tiny", None, 3])
def test_bad_profile_is_refused(bad):
    with pytest.raises(ValueError, match="corruption profile: expected one of 'auto', 'imagenet', 'cifar'"):
        profiles.resolve_profile(bad, 32, 32)


# -- outputs against a plain re-computation with the transcribed constants --------------------


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 8, y * 8, (x * y) % 256], axis=-1)
    return np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


def _seeded(fn, seed=11):
    np.random.seed(seed)
    return fn()


def test_cifar_gaussian_noise_is_the_plain_formula(image):
    for severity, c in enumerate(REFERENCE[("cifar", "gaussian_noise")][2], start=1):
        found = _seeded(lambda: compat.apply_corruption(image, "gaussian_noise", severity, "cifar"))
        x = image / 255.0
        plain = np.uint8(_seeded(lambda: np.clip(x + np.random.normal(size=x.shape, scale=c), 0, 1) * 255))
        assert np.array_equal(found, plain)


def test_cifar_contrast_and_shot_noise_are_the_plain_formulas(image):
    x = image / 255.0
    for severity in range(1, 6):
        c = REFERENCE[("cifar", "contrast")][2][severity - 1]
        mean = x.mean(axis=(0, 1), keepdims=True)
        plain = np.uint8(np.clip((x - mean) * c + mean, 0, 1) * 255)
        assert np.array_equal(compat.apply_corruption(image, "contrast", severity, "cifar"), plain)
        lam = REFERENCE[("cifar", "shot_noise")][2][severity - 1]
        found = _seeded(lambda: compat.apply_corruption(image, "shot_noise", severity, "cifar"))
        plain = np.uint8(_seeded(lambda: np.clip(np.random.poisson(x * lam) / lam, 0, 1) * 255))
        assert np.array_equal(found, plain)


def test_cifar_pixelate_and_jpeg_are_plain_pil(image):
    pil = Image.fromarray(image)
    for severity in range(1, 6):
        c = REFERENCE[("cifar", "pixelate")][2][severity - 1]
        plain = np.asarray(pil.resize((int(32 * c), int(32 * c)), Image.BOX).resize((32, 32), Image.BOX))
        assert np.array_equal(compat.apply_corruption(image, "pixelate", severity, "cifar"), plain)
        buffer = io.BytesIO()
        pil.save(buffer, "JPEG", quality=REFERENCE[("cifar", "jpeg_compression")][2][severity - 1])
        plain = np.asarray(Image.open(buffer))
        assert np.array_equal(compat.apply_corruption(image, "jpeg_compression", severity, "cifar"), plain)


def test_cifar_zoom_blur_averages_centre_zooms(image):
    """Severity 1: factors 1.00..1.05; a factor of 1 is the identity, so the mean of
    image + 6 zooms stays within the image's range and the image centre barely moves."""
    from scipy.ndimage import zoom

    x = (image / 255.0).astype(np.float32)
    factors = np.arange(1, 1.06, 0.01)
    total = x.copy()
    for f in factors:
        side = int(np.ceil(32 / f))
        top = (32 - side) // 2
        z = zoom(x[top:top + side, top:top + side], (f, f, 1), order=1)
        trim = (z.shape[0] - 32) // 2
        total += z[trim:trim + 32, trim:trim + 32]
    plain = np.uint8(np.clip(total / (len(factors) + 1), 0, 1) * 255)
    assert np.array_equal(compat.apply_corruption(image, "zoom_blur", 1, "cifar"), plain)


@pytest.fixture
def patched_reference(monkeypatch):
    """imagecorruptions' module with only what current libraries need patched (as in test_corruptions_generate)."""
    from skimage.filters import gaussian as sk_gaussian

    ic = compat.load_imagecorruptions()

    def old_gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return sk_gaussian(*args, **kwargs)

    monkeypatch.setattr(ic.corruptions, "gaussian", old_gaussian)
    monkeypatch.setattr(np, "float_", np.float64, raising=False)
    return ic.corruptions


@pytest.mark.parametrize("name", cifar_c.SHARED)
def test_shared_functions_with_imagenet_constants_are_imagecorruptions(name, image, patched_reference):
    """The cifar profile's functions run imagecorruptions' arithmetic: with the ImageNet
    constants they give its bytes (and draw as often from np.random)."""
    for severity in range(1, 6):
        np.random.seed(severity)
        expected = np.uint8(getattr(patched_reference, name)(Image.fromarray(image), severity))
        after = np.random.random()
        np.random.seed(severity)
        found = np.uint8(np.asarray(cifar_c.FUNCTIONS[name](Image.fromarray(image), severity, profile="imagenet")))
        assert np.array_equal(found, expected), (name, severity)
        assert np.random.random() == after


def test_cifar_profile_is_milder_at_severity_3(image):
    """Mean absolute change per corruption, cifar <= imagenet for the ones the issue named."""
    batch = image[None]
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur",
                 "defocus_blur", "glass_blur", "contrast", "pixelate"):
        change = {p: np.abs(corrupt_images(batch, np.array([0]), name, 3, 0, p).astype(int) - image).mean()
                  for p in profiles.PROFILES}
        assert change["cifar"] < change["imagenet"], (name, change)


def test_dataset_profile_defaults_to_auto_and_is_in_the_cache_key(tmp_path):
    rng = np.random.default_rng(0)
    base = TensorDataset("toy", torch.from_numpy(rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)),
                         torch.zeros(4, dtype=torch.int64), 10, (0.5,) * 3, (0.25,) * 3)
    auto = CorruptedDataset(base, "gaussian_noise", 3, 0, tmp_path)
    imagenet = CorruptedDataset(base, "gaussian_noise", 3, 0, tmp_path, profile="imagenet")
    assert auto.profile == "cifar" and imagenet.profile == "imagenet"
    assert auto.fingerprint() != imagenet.fingerprint() and auto.path != imagenet.path
    assert "-cifar-" in auto.path.name
    nhwc = base.images(np.arange(4)).numpy().transpose(0, 2, 3, 1)
    expected = corrupt_images(nhwc, np.arange(4), "gaussian_noise", 3, 0, "cifar").transpose(0, 3, 1, 2)
    assert np.array_equal(auto.images(np.arange(4)).numpy(), expected)


# -- configuration and report ------------------------------------------------------------------


def _parse(extra: str, tmp_path):
    import tomllib

    from prunecheck.config.loader import parse_settings

    return parse_settings(tomllib.loads(minimal_config(dataset_extra=extra)), source="prunecheck.toml", base_dir=tmp_path)


def test_config_key_defaults_to_auto_and_accepts_each_profile(tmp_path):
    assert _parse("", tmp_path).datasets["c"].corruption_profile == "auto"
    for profile in ("auto", "cifar", "imagenet"):
        assert _parse(f'corruption_profile = "{profile}"', tmp_path).datasets["c"].corruption_profile == profile


def test_config_key_error_names_file_key_and_choices(tmp_path):
    from prunecheck.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _parse('corruption_profile = "tinyimagenet"', tmp_path)
    text = str(info.value)
    assert "prunecheck.toml" in text and "datasets.c.corruption_profile" in text
    assert "'auto', 'cifar', 'imagenet'" in text and "tinyimagenet" in text


def test_workspace_generates_with_the_configured_profile_and_says_so(tmp_path):
    from prunecheck.config.settings import DatasetSpec, RunSettings, Settings
    from prunecheck.core.views import NOMINAL, corruption
    from prunecheck.session.workspace import Workspace

    rng = np.random.default_rng(0)
    base = TensorDataset("toy", torch.from_numpy(rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)),
                         torch.zeros(4, dtype=torch.int64), 10, (0.5,) * 3, (0.25,) * 3)
    sources = {}
    for profile in ("auto", "imagenet"):
        settings = Settings(source="test", run=RunSettings(device="cpu", cache_dir=tmp_path), models={}, pairs=(),
                            datasets={"toy": DatasetSpec(name="toy", kind="demo", corruption_profile=profile)},
                            gates={})
        ws = Workspace(settings)
        ws._datasets[("toy", NOMINAL)] = base
        view = corruption("fog", 3)
        sources[profile] = ws.view_source("toy", view)
        assert ws.dataset("toy", view).profile == ("cifar" if profile == "auto" else "imagenet")
    assert sources == {"auto": "generated, cifar profile", "imagenet": "generated, imagenet profile"}


def test_corruption_table_lists_the_source_of_each_view():
    from prunecheck.report.tables import corruptions as table

    entries = [
        {"subject": "a", "payload": {"kind": "pair", "view": "fog-3", "parent_accuracy": 0.9,
                                     "pruned_accuracy": 0.8, "source": "generated, cifar profile"}},
        {"subject": "a", "payload": {"kind": "pair", "view": "snow-3", "parent_accuracy": 0.9,
                                     "pruned_accuracy": 0.8, "source": "generated, cifar profile"}},
        {"subject": "b", "payload": {"kind": "pair", "view": "fog-3", "parent_accuracy": 0.9,
                                     "pruned_accuracy": 0.7, "source": "generated, cifar profile"}},
    ]
    text = markdown.blocks(table.build(entries))
    assert "- generated, cifar profile: fog-3, snow-3" in text


def test_cifar_frost_uses_the_texture_scaled_by_0_2(image):
    """make_cifar_c.frost: cv2.resize(texture, fx=0.2, fy=0.2), window at randint offsets."""
    import cv2

    np.random.seed(4)
    found = compat.apply_corruption(image, "frost", 3, "cifar")
    np.random.seed(4)
    k = np.random.randint(5)
    texture = cv2.imread(compat.frost_texture_path(k))
    texture = cv2.resize(texture, (0, 0), fx=0.2, fy=0.2)
    top, left = np.random.randint(0, texture.shape[0] - 32), np.random.randint(0, texture.shape[1] - 32)
    window = texture[top:top + 32, left:left + 32][..., [2, 1, 0]]
    plain = np.uint8(np.clip(0.9 * image + 0.4 * window, 0, 255))
    assert np.array_equal(found, plain)
