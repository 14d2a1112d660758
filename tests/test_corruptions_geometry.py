"""Released ImageNet-C views have exactly the nominal view's geometry.

ImageNet-C was made from ImageNet val with torchvision's ``Resize(256)`` +
``CenterCrop(224)`` and saved at 224 x 224. A file that holds exactly that
(uncorrupted) crop must load pixel-identical to the nominal view of the original
image; resizing and cropping it again with the nominal settings zooms by 256/224.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

from prunecheck.config.settings import DatasetSpec, RunSettings, Settings
from prunecheck.core.errors import DataError
from prunecheck.core.views import corruption
from prunecheck.data.corruptions.released import imagenet_c_geometry, load_imagenet_c
from prunecheck.data.imagefolder import ImageFolderDataset
from prunecheck.session.workspace import Workspace

WNIDS = ["n01440764", "n01443537"]
SIZES = [(300, 260), (281, 417), (256, 256)]  # (width, height): landscape, portrait, square


def smooth_image(width: int, height: int, seed: int) -> Image.Image:
    """Gradients plus noise, so that any zoom or shift changes pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) % 64 * 4], axis=-1)
    array = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """(val root, ImageNet-C root): the ImageNet-C files are the benchmark's crop, saved losslessly."""
    val, released = tmp_path / "val", tmp_path / "ImageNet-C"
    crop = T.Compose([T.Resize(256), T.CenterCrop(224)])  # how make_imagenet_c.py prepared images
    for k, wnid in enumerate(WNIDS):
        for j, (width, height) in enumerate(SIZES):
            image = smooth_image(width, height, seed=10 * k + j)
            (val / wnid).mkdir(parents=True, exist_ok=True)
            image.save(val / wnid / f"img{j}.png")
            target = released / "gaussian_noise" / "3" / wnid
            target.mkdir(parents=True, exist_ok=True)
            crop(image).save(target / f"img{j}.png")
    return val, released


def test_released_view_is_pixel_identical_to_the_nominal_view(folders):
    val, released = folders
    nominal = ImageFolderDataset("val", val, resize=256, crop=224, decode_threads=1)
    corrupted = load_imagenet_c(released, "gaussian_noise", 3, classes=WNIDS, resize=256, crop=224, decode_threads=1)
    rows = np.arange(len(nominal))
    assert corrupted.image_shape == nominal.image_shape == (3, 224, 224)
    assert (corrupted.images(rows) == nominal.images(rows)).all()
    assert corrupted.labels.tolist() == nominal.labels.tolist()


def test_re_cropping_would_have_zoomed(folders):
    """The defect this guards against: resize 256 + crop 224 applied to the released files."""
    val, released = folders
    nominal = ImageFolderDataset("val", val, resize=256, crop=224, decode_threads=1)
    twice = ImageFolderDataset("c", released / "gaussian_noise" / "3", resize=256, crop=224, decode_threads=1)
    rows = np.arange(len(nominal))
    assert (twice.images(rows) != nominal.images(rows)).float().mean() > 0.5


def test_smaller_nominal_crop_is_the_same_window(folders):
    """resize 256 / crop 192: the central 192 of the released 224 is the nominal crop."""
    val, released = folders
    nominal = ImageFolderDataset("val", val, resize=256, crop=192, decode_threads=1)
    corrupted = load_imagenet_c(released, "gaussian_noise", 3, classes=WNIDS, resize=256, crop=192, decode_threads=1)
    rows = np.arange(len(nominal))
    assert (corrupted.images(rows) == nominal.images(rows)).all()


@pytest.mark.parametrize(
    "resize, crop, expected",
    [(256, 224, (None, None)), (None, None, (None, None)), (256, 192, (224, 192)), (128, 112, (112, 112)),
     (512, 448, (448, 448))],
)
def test_geometry_mapping(resize, crop, expected):
    # released side = 224 * resize / 256, hand-computed: 128 -> 112, 512 -> 448
    assert imagenet_c_geometry(resize, crop) == expected


@pytest.mark.parametrize("resize, crop", [(232, 224), (256, 240), (224, 224)])
def test_geometry_that_imagenet_c_cannot_provide_is_refused(resize, crop):
    with pytest.raises(DataError, match=r"keep only the central 0\.875"):
        imagenet_c_geometry(resize, crop)


def workspace(tmp_path: Path, limit: int | None = None, **dataset) -> Workspace:
    spec = DatasetSpec(name="val", kind="imagefolder", split="", options={"classes": WNIDS}, **dataset)
    run = RunSettings(device="cpu", cache_dir=tmp_path / "cache", limit=limit)
    settings = Settings(source="test", run=run, models={},
                        pairs=(), datasets={"val": spec}, gates={})
    return Workspace(settings)


def test_workspace_serves_released_views_in_nominal_geometry(folders, tmp_path):
    val, released = folders
    ws = workspace(tmp_path, root=val, resize=256, crop=224, corruptions_root=released)
    rows = np.arange(len(SIZES) * len(WNIDS))
    nominal = ws.dataset("val").images(rows)
    assert (ws.dataset("val", corruption("gaussian_noise", 3)).images(rows) == nominal).all()
    assert ws.view_source("val", corruption("gaussian_noise", 3)) == f"released files in {released}"


def test_with_a_limit_released_views_keep_the_rows_of_the_nominal_sample(folders, tmp_path):
    """Classes sit in blocks of 3 rows; a limit of 2 keeps one row of each class, in both views."""
    val, released = folders
    ws = workspace(tmp_path, limit=2, root=val, resize=256, crop=224, corruptions_root=released)
    nominal, corrupted = ws.dataset("val"), ws.dataset("val", corruption("gaussian_noise", 3))
    assert nominal.labels.tolist() == corrupted.labels.tolist() == [0, 1]
    assert (corrupted.images(np.arange(2)) == nominal.images(np.arange(2))).all()


def test_workspace_refuses_released_images_of_another_size(folders, tmp_path):
    """Nominal images used as they are (no resize / crop), 256 x 256: the released ones are 224."""
    _, released = folders
    val = tmp_path / "val256"
    for wnid in WNIDS:
        (val / wnid).mkdir(parents=True)
        smooth_image(256, 256, seed=1).save(val / wnid / "img.png")
    ws = workspace(tmp_path, root=val, corruptions_root=released)
    with pytest.raises(DataError, match=r"nominal view's size \(256, 256\).*found \(224, 224\)"):
        ws.dataset("val", corruption("gaussian_noise", 3))
