"""Real-format dataset loaders: CIFAR pickles, image folders, the registry.

Every test writes small files in the real on-disk formats and compares what the
loader returns with what was written (naive per-pixel loops, hand-worked
offsets, torchvision's reference transform), never with the loader's own output.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import types
from pathlib import Path

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError
from prunecheck.data import cifar, imagefolder
from prunecheck.data.base import Subset, TensorDataset, stratified_indices
from prunecheck.data.registry import known_kinds, load_dataset

CIFAR10_NAMES = [
    b"airplane", b"automobile", b"bird", b"cat", b"deer",
    b"dog", b"frog", b"horse", b"ship", b"truck",
]  # fmt: skip


# --------------------------------------------------------------------------- CIFAR helpers


def _random_batch(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, num_classes, size=n)]
    labels[0] = num_classes - 1  # the top label must be accepted
    return data, labels


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_cifar10(folder: Path, files=("test_batch",), n: int = 20, seed: int = 0, protocol: int = 2):
    """Write CIFAR-10 batch files + batches.meta; returns {file: (data, labels)}."""
    written = {}
    for k, name in enumerate(files):
        data, labels = _random_batch(n, 10, seed + k)
        batch = {
            b"batch_label": b"",  # protocol 2 writes b"" through builtins.bytes()
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        _dump(folder / name, batch, protocol)
        written[name] = (data, labels)
    _dump(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_vis": 3072}, protocol)
    return written


def write_cifar100(folder: Path, n: int = 20, seed: int = 0):
    data, labels = _random_batch(n, 100, seed)
    batch = {
        b"filenames": [b"x"] * n,
        b"batch_label": b"testing batch 1 of 1",
        b"fine_labels": labels,
        b"coarse_labels": [label // 5 for label in labels],
        b"data": data,
    }
    _dump(folder / "test", batch)
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    _dump(folder / "meta", meta)
    return data, labels


def assert_pixels_match(images: torch.Tensor, data: np.ndarray) -> None:
    """Naive check of the format definition: row = 1024 R, 1024 G, 1024 B, each row-major."""
    images = images.numpy()
    assert images.shape == (data.shape[0], 3, 32, 32)
    for i in range(data.shape[0]):
        row = data[i].tolist()
        img = images[i].tolist()
        for c in range(3):
            for y in range(32):
                for x in range(32):
                    assert img[c][y][x] == row[c * 1024 + y * 32 + x], (i, c, y, x)


def spec_for(root: Path, kind: str = "cifar10", **kw) -> DatasetSpec:
    return DatasetSpec(name=kw.pop("name", "ds"), kind=kind, root=root, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- CIFAR tests


def test_cifar10_every_pixel_and_label(tmp_path):
    written = write_cifar10(tmp_path / "cifar-10-batches-py")
    data, labels = written["test_batch"]
    # A planted, non-symmetric pattern in image 3: a CHW/HWC or row/column mix-up moves it.
    data[3] = 0
    data[3, 0 * 1024 + 1 * 32 + 5] = 255  # red, row 1, column 5
    data[3, 2 * 1024 + 30 * 32 + 2] = 200  # blue, row 30, column 2
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": data, b"labels": labels})

    ds = load_dataset(spec_for(tmp_path, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), name="c10"))
    assert isinstance(ds, TensorDataset)
    assert ds.name == "c10" and ds.num_classes == 10 and len(ds) == 20
    assert ds.mean == (0.1, 0.2, 0.3) and ds.std == (0.4, 0.5, 0.6)
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == labels
    images = ds.images(np.arange(20))
    assert images.dtype == torch.uint8
    assert_pixels_match(images, data)
    planted = ds.images(np.array([3]))[0]
    assert planted[0, 1, 5] == 255 and planted[0, 5, 1] == 0
    assert planted[2, 30, 2] == 200 and planted[2, 2, 30] == 0
    assert int(planted.sum()) == 455
    assert ds.classes == [n.decode() for n in CIFAR10_NAMES]
    assert ds.image_shape == (3, 32, 32)


def test_cifar10_root_may_be_the_batches_folder_and_protocol_5(tmp_path):
    folder = tmp_path / "somewhere"
    data, labels = write_cifar10(folder, protocol=5)["test_batch"]
    ds = load_dataset(spec_for(folder))
    assert ds.labels.tolist() == labels
    assert torch.equal(ds.images(np.arange(20)).reshape(20, -1), torch.from_numpy(data))


def test_cifar10_train_split_concatenates_five_batches_in_order(tmp_path):
    files = tuple(f"data_batch_{i}" for i in range(1, 6))
    written = write_cifar10(tmp_path / "cifar-10-batches-py", files=files, n=3)
    ds = load_dataset(spec_for(tmp_path, split="train"))
    assert len(ds) == 15
    expected_labels = sum((written[f][1] for f in files), [])
    assert ds.labels.tolist() == expected_labels
    for k, f in enumerate(files):
        assert_pixels_match(ds.images(np.arange(3 * k, 3 * k + 3)), written[f][0])


def test_cifar100_fine_labels(tmp_path):
    data, labels = write_cifar100(tmp_path / "cifar-100-python")
    ds = load_dataset(spec_for(tmp_path, "cifar100"))
    assert ds.num_classes == 100
    assert ds.labels.tolist() == labels
    assert max(labels) == 99
    assert_pixels_match(ds.images(np.arange(len(ds))), data)
    assert ds.classes[7] == "fine7"


def _py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A stream shaped like the original Python 2 cPickle files (str = SHORT_BINSTRING/BINSTRING)."""

    def s(text: bytes) -> bytes:  # py2 str
        if len(text) < 256:
            return b"U" + bytes([len(text)]) + text
        return b"T" + struct.pack("<i", len(text)) + text

    def i(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    out = b"\x80\x02}(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"
    out += b"(" + i(1) + i(data.shape[0]) + i(data.shape[1]) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
    out += b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb"
    out += b"\x89" + s(data.tobytes()) + b"tb"
    out += s(b"labels") + b"](" + b"".join(i(v) for v in labels) + b"e"
    out += s(b"batch_label") + s(b"testing batch 1 of 1")
    return out + b"u."


def test_cifar10_python2_style_stream(tmp_path):
    data, labels = _random_batch(4, 10, seed=5)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(_py2_pickle(data, labels))
    assert pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")[b"labels"] == labels
    ds = load_dataset(spec_for(tmp_path))
    assert ds.labels.tolist() == labels
    assert_pixels_match(ds.images(np.arange(4)), data)
    assert ds.classes is None  # no batches.meta written


def test_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(spec_for(tmp_path))
    msg = str(err.value)
    assert "test_batch" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "download = true" in msg
    with pytest.raises(DataError, match="data_batch_1.*data_batch_5"):
        load_dataset(spec_for(tmp_path, "cifar10", split="train"))
    with pytest.raises(DataError, match="split 'train' or 'test'"):
        load_dataset(spec_for(tmp_path, split="val"))
    with pytest.raises(DataError, match="root"):
        load_dataset(DatasetSpec(name="x", kind="cifar100"))


def test_download_only_when_asked_and_files_missing(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_cifar10(Path(root) / "cifar-10-batches-py", n=5)

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    with pytest.raises(DataError):
        load_dataset(spec_for(tmp_path))  # download False: never fetched
    assert calls == []
    ds = load_dataset(spec_for(tmp_path, download=True))
    assert calls == [(str(tmp_path), False, True)] and len(ds) == 5
    load_dataset(spec_for(tmp_path, download=True))  # files present now: no second fetch
    assert len(calls) == 1


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(tvd, "CIFAR100", offline)
    with pytest.raises(DataError, match="downloading CIFAR-100.*no network"):
        load_dataset(spec_for(tmp_path, "cifar100", download=True))


@pytest.mark.parametrize(
    "batch, pattern",
    [
        ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, r"\[N, 3072\].*\(4, 3000\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, r"uint8.*float32"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, r"expected 4 labels.*found 3"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 10, 2]}, r"0\.\.9.*found 10 at row 2"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, -1, 0, 2]}, r"found -1 at row 1"),
        ({b"data": np.zeros((4, 3072), np.uint8)}, r"expected key 'labels'"),
        ([1, 2, 3], r"expected a pickled dict, found list"),
    ],
)
def test_malformed_cifar10_batches(tmp_path, batch, pattern):
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(DataError, match=pattern) as err:
        load_dataset(spec_for(tmp_path))
    assert "test_batch" in str(err.value)


def test_cifar100_label_range_and_meta_checks(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _dump(folder / "test", {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [99, 100]})
    with pytest.raises(DataError, match=r"0\.\.99.*found 100 at row 1"):
        load_dataset(spec_for(tmp_path, "cifar100"))
    _dump(folder / "test", {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [99, 0]})
    _dump(folder / "meta", {b"fine_label_names": [b"a"] * 20})
    with pytest.raises(DataError, match="expected 100 names.*found 20"):
        load_dataset(spec_for(tmp_path, "cifar100"))


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_malicious_pickle_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Evil(str(marker))]}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        _dump(tmp_path / "cifar-10-batches-py" / "test_batch", evil, protocol)
        with pytest.raises(DataError, match=r"not allowed") as err:
            load_dataset(spec_for(tmp_path))
        assert "mkdir" in str(err.value)
        assert not marker.exists()
    # A Python 2 style global for eval is refused too (no __builtin__ -> builtins loophole).
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(b"\x80\x02c__builtin__\neval\nU\x061+1+1\x85R.")
    with pytest.raises(DataError, match="__builtin__.eval"):
        load_dataset(spec_for(tmp_path))
    # _codecs.encode is allowed only as the latin-1 bytes constructor.
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(DataError, match="encoding 'zlib'"):
        load_dataset(spec_for(tmp_path))


def test_truncated_pickle(tmp_path):
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)})
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable CIFAR pickle"):
        load_dataset(spec_for(tmp_path))


# --------------------------------------------------------------------------- image folder helpers


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """root/val/{cat,dog,emu}: PNG and JPEG files of different sizes, one nested."""
    val = tmp_path / "val"
    _save(val / "cat" / "b.png", _noise(20, 30, 1))
    _save(val / "cat" / "a.JPEG", _noise(40, 24, 2))
    _save(val / "dog" / "x.jpg", _noise(16, 16, 3))
    _save(val / "dog" / "sub" / "y.png", _noise(33, 17, 4))
    _save(val / "emu" / "z.png", _noise(12, 50, 5))
    (val / "emu" / "notes.txt").write_text("not an image")
    (val / ".hidden").mkdir()
    return tmp_path


def folder_spec(root: Path, **kw) -> DatasetSpec:
    kw.setdefault("split", "val")
    kw.setdefault("crop", 8)
    return DatasetSpec(name=kw.pop("name", "folder"), kind=kw.pop("kind", "imagefolder"), root=root, **kw)


# --------------------------------------------------------------------------- image folder tests


def test_imagefolder_labels_order_and_fixed_size(tiny_folder):
    ds = load_dataset(folder_spec(tiny_folder, options={"decode_threads": 1}))
    assert ds.classes == ["cat", "dog", "emu"] and ds.num_classes == 3
    rel = [os.path.relpath(p, tiny_folder / "val") for p in ds.paths]
    assert rel == ["cat/a.JPEG", "cat/b.png", "dog/x.jpg", "dog/sub/y.png", "emu/z.png"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2]
    assert ds.labels.dtype == torch.int64
    images = ds.images(np.arange(len(ds)))
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 8, 8)
    assert ds.image_shape == (3, 8, 8)
    assert ds.resize == 9  # round(8 * 256 / 224) = round(9.14)
    assert ds.images(np.array([], dtype=np.int64)).shape == (0, 3, 8, 8)
    assert torch.equal(ds.images(np.array([4, 0])), images[[4, 0]])


def test_row_order_and_labels_match_torchvision_imagefolder(tiny_folder):
    from torchvision.datasets import ImageFolder

    _save(tiny_folder / "val" / "dog" / "sub-a" / "w.png", _noise(9, 9, 6))
    _save(tiny_folder / "val" / "dog" / "sub" / "deeper" / "v.png", _noise(9, 9, 7))
    (tiny_folder / "val" / ".hidden").rmdir()  # we skip hidden folders; torchvision does not
    reference = ImageFolder(str(tiny_folder / "val"))
    ds = load_dataset(folder_spec(tiny_folder))
    assert ds.classes == reference.classes
    assert [(os.path.abspath(p), c) for p, c in reference.samples] == [
        (os.path.abspath(p), c) for p, c in zip(ds.paths, ds.labels.tolist())
    ]


def test_threads_do_not_change_pixels(tiny_folder):
    one = load_dataset(folder_spec(tiny_folder, options={"decode_threads": 1}))
    three = load_dataset(folder_spec(tiny_folder, options={"decode_threads": 3}))
    assert torch.equal(one.images(np.arange(5)), three.images(np.arange(5)))


def test_matches_torchvision_reference_transform(tiny_folder):
    from torchvision import transforms

    # 27x10 -> long side 14 * 2.7 = 37.8: torchvision truncates to 37 (rounding would give 38).
    _save(tiny_folder / "val" / "emu" / "odd.png", _noise(10, 27, 9))
    _save(tiny_folder / "val" / "emu" / "odd_tall.png", _noise(27, 10, 10))
    ds = load_dataset(folder_spec(tiny_folder, resize=14, crop=10))
    assert len(ds) == 7
    reference = transforms.Compose([transforms.Resize(14), transforms.CenterCrop(10), transforms.PILToTensor()])
    for i, path in enumerate(ds.paths):
        with Image.open(path) as img:
            expected = reference(img.convert("RGB"))
        assert torch.equal(ds.images(np.array([i]))[0], expected), path


def test_crop_offsets_hand_worked(tmp_path):
    wide = _noise(12, 16, 7)  # H=12, W=16: shorter side already 12, left = (16-12)/2 = 2
    tall = _noise(17, 12, 8)  # H=17, W=12: top = round(2.5) = 2 (round half to even)
    _save(tmp_path / "a" / "wide.png", wide)
    _save(tmp_path / "b" / "tall.png", tall)
    ds = load_dataset(folder_spec(tmp_path, split="", resize=12, crop=12))
    got = ds.images(np.arange(2)).numpy().transpose(0, 2, 3, 1)
    assert np.array_equal(got[0], wide[:, 2:14])
    assert np.array_equal(got[1], tall[2:14, :])


def test_resize_then_crop_geometry_on_planted_pattern(tmp_path):
    # 64 wide x 32 tall: four 16-px vertical stripes A B C D; rows 0..7 carry a grey marker.
    a, b, c, d, grey = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (128, 128, 128)
    img = np.zeros((32, 64, 3), np.uint8)
    for k, colour in enumerate((a, b, c, d)):
        img[:, 16 * k : 16 * (k + 1)] = colour
    img[:8] = grey
    _save(tmp_path / "only" / "p.png", img)
    ds = load_dataset(folder_spec(tmp_path, split="", resize=16, crop=16))
    out = ds.images(np.arange(1))[0].numpy().transpose(1, 2, 0)
    # Resized to 32x16: stripes 8 px wide, marker rows 0..3; crop left = (32-16)/2 = 8 -> B then C.
    assert out.shape == (16, 16, 3)
    assert (out[6:, 1:7] == b).all() and (out[6:, 9:15] == c).all()
    assert (out[:3, 1:15] == grey).all()
    # Without the resize the crop would be all rows 8..23 of the original (no grey at all).


def test_constant_image_stays_constant_through_resize(tmp_path):
    _save(tmp_path / "k" / "c.png", np.full((23, 37, 3), (10, 200, 77), np.uint8))
    ds = load_dataset(folder_spec(tmp_path, split="", resize=10, crop=8))
    out = ds.images(np.arange(1))[0]
    assert out.shape == (3, 8, 8)
    assert out[0].eq(10).all() and out[1].eq(200).all() and out[2].eq(77).all()


def test_resolve_sizes_rules():
    assert imagefolder.resolve_sizes(None, 224) == (256, 224)
    assert imagefolder.resolve_sizes(None, 32) == (37, 32)  # 32 * 256 / 224 = 36.57
    assert imagefolder.resolve_sizes(40, None) == (40, 40)
    assert imagefolder.resolve_sizes(None, None) == (None, None)
    with pytest.raises(DataError, match="crop <= resize"):
        imagefolder.resolve_sizes(10, 12)
    with pytest.raises(DataError, match="positive integer"):
        imagefolder.resolve_sizes(0, None)


def test_native_size_without_resize_or_crop(tmp_path):
    first, second = _noise(6, 5, 1), _noise(6, 5, 2)
    _save(tmp_path / "a" / "1.png", first)
    _save(tmp_path / "b" / "2.png", second)
    ds = load_dataset(folder_spec(tmp_path, split="", crop=None))
    assert ds.image_shape == (3, 6, 5)
    got = ds.images(np.arange(2)).numpy().transpose(0, 2, 3, 1)
    assert np.array_equal(got[0], first) and np.array_equal(got[1], second)
    _save(tmp_path / "b" / "3.png", _noise(7, 5, 3))
    ds = load_dataset(folder_spec(tmp_path, split="", crop=None))
    with pytest.raises(DataError, match=r"3\.png is 5x7.*share one size"):
        ds.images(np.arange(3))


def test_grey_and_rgba_images_become_rgb(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    _save(tmp_path / "g" / "grey.png", grey)
    ds = load_dataset(folder_spec(tmp_path, split="", crop=None))
    out = ds.images(np.arange(1))[0].numpy()
    assert out.shape == (3, 6, 8)
    for ch in range(3):
        assert np.array_equal(out[ch], grey)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="split folder"):
        load_dataset(folder_spec(tmp_path, split="val"))
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="one subfolder per class.*no subfolders"):
        load_dataset(folder_spec(tmp_path))
    _save(tmp_path / "val" / "loose.png", _noise(4, 4, 0))
    with pytest.raises(DataError, match="directly in it.*loose.png"):
        load_dataset(folder_spec(tmp_path))
    (tmp_path / "val" / "cat").mkdir()
    (tmp_path / "val" / "cat" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"cat holds no image files"):
        load_dataset(folder_spec(tmp_path))
    (tmp_path / "val" / "cat" / "broken.png").write_bytes(b"definitely not a png")
    ds = load_dataset(folder_spec(tmp_path))
    with pytest.raises(DataError, match=r"cannot decode image .*broken\.png"):
        ds.images(np.arange(1))
    with pytest.raises(DataError, match="root"):
        load_dataset(DatasetSpec(name="x", kind="imagefolder"))


def test_class_list_override_keeps_full_index(tiny_folder, tmp_path):
    full = ["ant", "cat", "dog", "eel", "emu"]
    ds = load_dataset(folder_spec(tiny_folder, options={"classes": full}))
    assert ds.num_classes == 5 and ds.classes == full
    assert ds.labels.tolist() == [1, 1, 2, 2, 4]
    listing = tmp_path / "classes.txt"
    listing.write_text("\n".join(full) + "\n")
    from_file = load_dataset(folder_spec(tiny_folder, options={"classes": str(listing)}))
    assert from_file.labels.tolist() == [1, 1, 2, 2, 4]
    with pytest.raises(DataError, match=r"\['emu'\].*not in options.classes"):
        load_dataset(folder_spec(tiny_folder, options={"classes": ["cat", "dog"]}))
    with pytest.raises(DataError, match="more than once"):
        load_dataset(folder_spec(tiny_folder, options={"classes": ["cat", "dog", "emu", "cat"]}))
    with pytest.raises(DataError, match="list of folder names"):
        load_dataset(folder_spec(tiny_folder, options={"classes": 3}))


def test_imagenet_val_defaults_and_partial_folder(tiny_folder):
    spec = folder_spec(tiny_folder, kind="imagenet-val", split="test", crop=None)
    with pytest.raises(DataError, match="expected 1000 wnid folders.*found 3"):
        load_dataset(spec)
    wnids = [f"n{i:08d}" for i in range(997)] + ["cat", "dog", "emu"]
    ds = load_dataset(folder_spec(tiny_folder, kind="imagenet-val", split="test", crop=None,
                                  options={"classes": wnids}))
    assert ds.num_classes == 1000 and (ds.resize, ds.crop) == (256, 224)
    assert ds.folder == tiny_folder / "val"  # split "test" means val
    assert ds.labels.tolist() == [997, 997, 998, 998, 999]
    assert ds.images(np.array([2])).shape == (1, 3, 224, 224)
    # root pointing at the val folder itself
    direct = load_dataset(folder_spec(tiny_folder / "val", kind="imagenet-val", split="test",
                                      crop=None, options={"classes": wnids}))
    assert direct.paths == ds.paths


def test_limit_takes_a_seeded_class_stratified_sample(tiny_folder, tmp_path):
    full = load_dataset(folder_spec(tiny_folder))
    two = load_dataset(folder_spec(tiny_folder), limit=2)
    assert isinstance(two, Subset) and len(two) == 2
    assert two.labels.tolist() == full.labels[torch.from_numpy(two.indices)].tolist()
    assert torch.equal(two.images(np.arange(2)), full.images(two.indices))
    assert len(load_dataset(folder_spec(tiny_folder), limit=99)) == 5
    write_cifar10(tmp_path / "c" / "cifar-10-batches-py", n=100)
    c10 = load_dataset(spec_for(tmp_path / "c"), limit=20, seed=3)
    all_labels = load_dataset(spec_for(tmp_path / "c")).labels
    assert c10.indices.tolist() == stratified_indices(all_labels, 20, seed=3).tolist() != list(range(20))
    assert c10.indices.tolist() != load_dataset(spec_for(tmp_path / "c"), limit=20, seed=4).indices.tolist()
    with pytest.raises(DataError, match="positive integer"):
        load_dataset(spec_for(tmp_path / "c"), limit=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(1, 100), st.integers(0, 5))
def test_stratified_indices_give_every_class_its_share(class_sizes, size, seed):
    """Rows sorted by class (as ImageFolder / ImageNet val): each class gets floor or ceil of its share."""
    labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
    idx = stratified_indices(labels, size, seed=seed)
    n = labels.size
    assert len(idx) == min(size, n) and len(set(idx.tolist())) == len(idx) and list(idx) == sorted(idx)
    got = np.bincount(labels[idx], minlength=len(class_sizes))
    for count, share in zip(got, [min(size, n) * c / n for c in class_sizes]):
        assert math.floor(share) <= count <= math.ceil(share)
    assert idx.tolist() == stratified_indices(labels, size, seed=seed).tolist()  # same rows every call


def test_stratified_sample_of_a_sorted_dataset_is_not_its_first_rows():
    labels = np.repeat(np.arange(10), 100)  # 10 classes in blocks of 100
    idx = stratified_indices(labels, 50, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5] * 10  # the first 50 rows would be class 0 only




def test_fingerprint_tracks_files_and_preprocessing(tiny_folder):
    spec = folder_spec(tiny_folder)
    base = load_dataset(spec).fingerprint()
    assert load_dataset(spec).fingerprint() == base
    assert load_dataset(folder_spec(tiny_folder, crop=6)).fingerprint() != base
    assert load_dataset(folder_spec(tiny_folder, resize=12, crop=8)).fingerprint() != base
    assert load_dataset(folder_spec(tiny_folder, options={"classes": ["a", "cat", "dog", "emu"]})).fingerprint() != base
    assert load_dataset(spec, limit=3).fingerprint() != base

    target = tiny_folder / "val" / "dog" / "x.jpg"
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, newer mtime
    touched = load_dataset(spec).fingerprint()
    assert touched != base
    _save(target, _noise(18, 16, 99))  # different content
    rewritten = load_dataset(spec).fingerprint()
    assert rewritten not in (base, touched)
    _save(tiny_folder / "val" / "emu" / "new.png", _noise(8, 8, 0))
    assert load_dataset(spec).fingerprint() != rewritten


def test_cifar_fingerprint_follows_content(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", seed=0)
    first = load_dataset(spec_for(tmp_path)).fingerprint()
    write_cifar10(tmp_path / "cifar-10-batches-py", seed=1)
    assert load_dataset(spec_for(tmp_path)).fingerprint() != first


def test_imagefolder_dataset_pickles_for_worker_processes(tiny_folder):
    ds = load_dataset(folder_spec(tiny_folder))
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone.images(np.arange(5)), ds.images(np.arange(5)))
    assert clone.fingerprint() == ds.fingerprint()


# --------------------------------------------------------------------------- registry


def test_unknown_kind_lists_known_kinds():
    with pytest.raises(DataError) as err:
        load_dataset(DatasetSpec(name="x", kind="mnist"))  # type: ignore[arg-type]
    for kind in ("cifar10", "cifar100", "imagefolder", "imagenet-val", "demo"):
        assert kind in str(err.value)
    assert set(known_kinds()) == {"cifar10", "cifar100", "imagefolder", "imagenet-val", "demo"}


def test_demo_kind_calls_load_demo_dataset(monkeypatch):
    seen = []
    fake_ds = TensorDataset("demo", torch.zeros((4, 3, 2, 2), dtype=torch.uint8),
                            torch.arange(4), 4, (0.5,) * 3, (0.5,) * 3)

    def load_demo_dataset(spec):
        seen.append(spec)
        return fake_ds

    module = types.ModuleType("prunecheck.data.demo")
    module.load_demo_dataset = load_demo_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prunecheck.data.demo", module)
    spec = DatasetSpec(name="demo", kind="demo")
    assert load_dataset(spec) is fake_ds and seen == [spec]
    limited = load_dataset(spec, limit=3)
    assert len(limited) == 3 and limited.labels.tolist() == [0, 1, 2]


def test_restricted_unpickler_allows_plain_containers():
    stream = pickle.dumps({"a": [1, 2.5, b"xy", b""], "n": np.arange(3, dtype=np.int16)}, protocol=2)
    import io

    got = cifar.RestrictedUnpickler(io.BytesIO(stream), encoding="bytes").load()
    assert got["a"] == [1, 2.5, b"xy", b""]
    assert got["n"].dtype == np.int16 and got["n"].tolist() == [0, 1, 2]
