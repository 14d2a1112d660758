"""Released CIFAR-C / ImageNet-C folders in their real layouts, good and malformed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prunecheck.data.corruptions.released import (
    available_released_corruptions,
    load_cifar_c,
    load_imagenet_c,
)
from prunecheck.core.errors import DataError

N = 10  # rows per severity (10000 in the released files)
CORRUPTIONS = {"gaussian_noise": 1, "fog": 2}  # name -> planted id
KW = {"name": "cifar10-c", "num_classes": 10, "mean": (0.5,) * 3, "std": (0.25,) * 3}


def planted_images(cid: int) -> np.ndarray:
    """Row r = (s-1)*N + j: every pixel 40*s + 10*cid, pixel (0,0,0) = j, pixel (1,0,0) = r."""
    out = np.zeros((5 * N, 32, 32, 3), dtype=np.uint8)
    for s in range(1, 6):
        for j in range(N):
            r = (s - 1) * N + j
            out[r] = 40 * s + 10 * cid
            out[r, 0, 0, 0] = j
            out[r, 1, 0, 0] = r
            out[r, 0, 1, 2] = 200 + cid  # a channel-2 marker to catch NHWC/NCHW mix-ups
    return out


def planted_labels() -> np.ndarray:
    return np.array([(j + s) % 10 for s in range(1, 6) for j in range(N)], dtype=np.uint8)


@pytest.fixture
def cifar_c(tmp_path) -> Path:
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    for name, cid in CORRUPTIONS.items():
        np.save(root / f"{name}.npy", planted_images(cid))
    np.save(root / "labels.npy", planted_labels())
    return root


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_loads_right_block(cifar_c, name, severity):
    cid = CORRUPTIONS[name]
    ds = load_cifar_c(cifar_c, name, severity, **KW)
    assert len(ds) == N and ds.num_classes == 10 and ds.name == "cifar10-c"
    assert ds.image_shape == (3, 32, 32)
    batch = ds.images(np.array([3, 0, 9]))
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 32, 32)
    for k, j in enumerate([3, 0, 9]):
        img = batch[k]
        assert int(img[0, 0, 0]) == j
        assert int(img[0, 1, 0]) == (severity - 1) * N + j  # row (1, 0) of channel 0
        assert int(img[2, 0, 1]) == 200 + cid  # H=0, W=1, channel 2
        assert int(img[1, 5, 5]) == 40 * severity + 10 * cid
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [(j + severity) % 10 for j in range(N)]


def test_fingerprints_differ(cifar_c):
    prints = {load_cifar_c(cifar_c, n, s, **KW).fingerprint() for n in CORRUPTIONS for s in range(1, 6)}
    assert len(prints) == 10
    again = load_cifar_c(cifar_c, "fog", 3, **KW).fingerprint()
    assert again in prints


def test_available(cifar_c):
    assert available_released_corruptions(cifar_c) == ("gaussian_noise", "fog")
    (cifar_c / "my_custom.npy").write_bytes(b"")
    assert available_released_corruptions(cifar_c) == ("gaussian_noise", "fog", "my_custom")


def test_missing_corruption_lists_present(cifar_c):
    with pytest.raises(DataError, match=r"snow\.npy.*holds: gaussian_noise, fog"):
        load_cifar_c(cifar_c, "snow", 1, **KW)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="expected a CIFAR-C folder"):
        load_cifar_c(tmp_path / "nope", "fog", 1, **KW)


def test_missing_labels(cifar_c):
    (cifar_c / "labels.npy").unlink()
    with pytest.raises(DataError, match=r"labels\.npy: expected the labels file"):
        load_cifar_c(cifar_c, "fog", 1, **KW)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((50, 32, 32), np.uint8), r"expected shape \[5\*N, 32, 32, 3\].*found \(50, 32, 32\)"),
        (np.zeros((50, 28, 28, 3), np.uint8), r"found \(50, 28, 28, 3\)"),
        (np.zeros((50, 3, 32, 32), np.uint8), r"found \(50, 3, 32, 32\)"),
        (np.zeros((49, 32, 32, 3), np.uint8), "multiple of 5.*found 49 rows"),
        (np.zeros((0, 32, 32, 3), np.uint8), "found 0 rows"),
        (np.zeros((50, 32, 32, 3), np.float32), "expected dtype uint8, found float32"),
    ],
)
def test_malformed_images(cifar_c, array, match):
    np.save(cifar_c / "fog.npy", array)
    with pytest.raises(DataError, match=match) as info:
        load_cifar_c(cifar_c, "fog", 1, **KW)
    assert "fog.npy" in str(info.value)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros(45, np.int64), "expected 50 labels.*found 45"),
        (np.zeros((50, 1), np.int64), "1-D integer array"),
        (np.zeros(50, np.float32), "1-D integer array.*float32"),
        (np.full(50, 10, np.int64), r"labels in \[0, 9\].*found values in \[10, 10\]"),
        (np.full(50, -1, np.int64), r"found values in \[-1, -1\]"),
    ],
)
def test_malformed_labels(cifar_c, labels, match):
    np.save(cifar_c / "labels.npy", labels)
    with pytest.raises(DataError, match=match) as info:
        load_cifar_c(cifar_c, "fog", 1, **KW)
    assert "labels.npy" in str(info.value)


def test_pickled_or_garbage_files_are_refused(cifar_c):
    np.save(cifar_c / "fog.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot be read"):
        load_cifar_c(cifar_c, "fog", 1, **KW)
    (cifar_c / "fog.npy").write_bytes(b"definitely not numpy")
    with pytest.raises(DataError, match="fog.npy.*cannot be read"):
        load_cifar_c(cifar_c, "fog", 1, **KW)


@pytest.mark.parametrize("severity", [0, 6, 2.0, True])
def test_bad_severity(cifar_c, severity):
    with pytest.raises(DataError, match="severity"):
        load_cifar_c(cifar_c, "fog", severity, **KW)


@pytest.mark.parametrize("name", ["../fog", "fog/x", ""])
def test_bad_corruption_name(cifar_c, name):
    with pytest.raises(DataError, match="corruption name"):
        load_cifar_c(cifar_c, name, 1, **KW)


def test_labels_sliced_in_100_class_setting(cifar_c):
    labels = np.arange(50, dtype=np.int16) * 2  # 0..98
    np.save(cifar_c / "labels.npy", labels)
    ds = load_cifar_c(cifar_c, "fog", 4, **{**KW, "num_classes": 100})
    assert ds.labels.tolist() == [2 * r for r in range(30, 40)]


# ------------------------------------------------------------------ ImageNet-C


@pytest.fixture
def imagenet_c(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "ImageNet-C"
    for severity in (1, 3):
        for k, wnid in enumerate(["n01440764", "n01443537"]):
            folder = root / "fog" / str(severity) / wnid
            folder.mkdir(parents=True)
            for j in range(2):
                value = 50 * severity + 20 * k + j
                Image.fromarray(np.full((24, 24, 3), value, np.uint8)).save(folder / f"img{j}.JPEG", quality=95)
    (root / "snow" / "2").mkdir(parents=True)
    return root


CLASSES = ["n01440764", "n01443537", "n99999999"]


def test_imagenet_c_loads(imagenet_c):
    ds = load_imagenet_c(imagenet_c, "fog", 3, classes=CLASSES, decode_threads=1)
    assert len(ds) == 4 and ds.num_classes == 3
    assert ds.labels.tolist() == [0, 0, 1, 1]
    batch = ds.images(np.arange(4))
    assert batch.shape == (4, 3, 24, 24) and batch.dtype == torch.uint8
    expected = [150, 151, 170, 171]
    for k in range(4):
        assert abs(int(batch[k].float().mean().round()) - expected[k]) <= 2  # JPEG


def test_imagenet_c_partial_without_classes(imagenet_c):
    with pytest.raises(DataError, match="expected 1000 wnid folders, found 2"):
        load_imagenet_c(imagenet_c, "fog", 1)


def test_imagenet_c_missing_severity_lists_present(imagenet_c):
    with pytest.raises(DataError, match=r"severity folder 2.*holds 1, 3"):
        load_imagenet_c(imagenet_c, "fog", 2, classes=CLASSES)


def test_imagenet_c_missing_corruption_lists_present(imagenet_c):
    with pytest.raises(DataError, match="holds: snow, fog"):
        load_imagenet_c(imagenet_c, "frost", 1, classes=CLASSES)


def test_imagenet_c_available(imagenet_c):
    assert available_released_corruptions(imagenet_c) == ("snow", "fog")


def test_available_needs_folder(tmp_path):
    with pytest.raises(DataError, match="expected a corruption benchmark folder"):
        available_released_corruptions(tmp_path / "absent")
