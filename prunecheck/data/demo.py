"""The demo dataset: ten procedurally generated 32x32 RGB shape/texture classes.

Every image is one foreground object on a cluttered background. The object's
class is its shape or its texture; position, size, rotation, colours,
contrast, clutter and sensor noise are random nuisances. Generation is fully
vectorised (numpy, one array expression per class over all its images) and
deterministic per ``(seed, split)``.

Classes (``DEMO_CLASSES``):

====  ==================  =====================================================
 id   name                object
====  ==================  =====================================================
 0    disk                filled disk
 1    square              filled square, any rotation
 2    triangle            filled equilateral triangle, any rotation
 3    ring                annulus
 4    cross               plus sign, any rotation
 5    bar                 elongated rectangle (3:1), any rotation
 6    frame               square outline, any rotation
 7    h-stripes           disk filled with near-horizontal stripes
 8    v-stripes           disk filled with near-vertical stripes
 9    checker             disk filled with a checkerboard
====  ==================  =====================================================

Low-contrast, small and noisy samples are deliberately ambiguous, so a small
CNN reaches roughly 90% test accuracy, not 100%: there is room for a pruned
model to lose accuracy. The texture classes lose their discriminating detail
under noise and blur, which is what the corruption gates probe.

Splits: ``"train"`` and ``"test"`` (same generator, independent draws) and
``"ood"``: objects from a *different* generator (stars, crescents, hexagons,
blob textures and spirals that occur in no class). OOD labels are all 0 and
meaningless; they exist only because the dataset interface requires labels.
Use the OOD split for label-free metrics (predictive entropy, disagreement).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError
from prunecheck.data.base import TensorDataset

DEMO_CLASSES: tuple[str, ...] = (
    "disk", "square", "triangle", "ring", "cross",
    "bar", "frame", "h-stripes", "v-stripes", "checker",
)
NUM_CLASSES = len(DEMO_CLASSES)
IMAGE_SIZE = 32
SPLITS: tuple[str, ...] = ("train", "test", "ood")
DEFAULT_SIZES: dict[str, int] = {"train": 6000, "test": 2000, "ood": 1000}
DEFAULT_SEED = 0
#: Bumped whenever the generator changes the pixels it draws for a seed.
GENERATOR_VERSION = "1"

_SPLIT_STREAM = {"train": 1, "test": 2, "ood": 3}
_SUPERSAMPLE = 2  # shapes are drawn on a 2x grid and averaged (anti-aliasing)

# Per-channel statistics of the generator's output (measured on 20 000 train
# images, seed 0); the engine normalises with these.
DEMO_MEAN: tuple[float, float, float] = (0.5009, 0.5002, 0.5017)
DEMO_STD: tuple[float, float, float] = (0.2444, 0.2439, 0.2436)


# --------------------------------------------------------------------------- geometry

def _frames(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random object placement: centre, radius (px), rotation (rad)."""
    radius = rng.uniform(6.0, 12.0, n).astype(np.float32)
    margin = radius * 0.7
    cx = (margin + rng.uniform(0, 1, n) * (IMAGE_SIZE - 2 * margin)).astype(np.float32)
    cy = (margin + rng.uniform(0, 1, n) * (IMAGE_SIZE - 2 * margin)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    return {"cx": cx, "cy": cy, "radius": radius, "theta": theta}


def _local_coords(frame: dict[str, np.ndarray], idx: np.ndarray, theta: np.ndarray | None = None):
    """Rotated, radius-normalised coordinates (u, v) [n, S, S] on the supersampled grid."""
    s = IMAGE_SIZE * _SUPERSAMPLE
    axis = (np.arange(s, dtype=np.float32) + 0.5) / _SUPERSAMPLE
    th = frame["theta"][idx] if theta is None else theta
    cos, sin = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    dx = axis[None, None, :] - frame["cx"][idx][:, None, None]
    dy = axis[None, :, None] - frame["cy"][idx][:, None, None]
    r = frame["radius"][idx][:, None, None]
    u = (dx * cos + dy * sin) / r
    v = (-dx * sin + dy * cos) / r
    return u, v


def _stripes(w: np.ndarray, period_px: np.ndarray, radius: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Square wave along normalised coordinate ``w`` with the given pixel period."""
    freq = (radius / period_px)[:, None, None]
    return (np.sin(2 * np.pi * (w * freq + phase[:, None, None])) > 0).astype(np.float32)


def _class_mask(c: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator,
                radius: np.ndarray) -> np.ndarray:
    """Foreground coverage [n, S, S] in {0, 1} for class ``c``."""
    n = u.shape[0]
    rr = u * u + v * v
    if c == 0:
        return (rr <= 1.0).astype(np.float32)
    if c == 1:
        return (np.maximum(np.abs(u), np.abs(v)) <= 0.8).astype(np.float32)
    if c == 2:
        inside = np.ones_like(u, dtype=bool)
        for ang in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= (u * np.cos(ang) + v * np.sin(ang)) <= 0.5
        return inside.astype(np.float32)
    if c == 3:
        inner = rng.uniform(0.45, 0.65, n).astype(np.float32)[:, None, None] ** 2
        return ((rr <= 1.0) & (rr >= inner)).astype(np.float32)
    if c == 4:
        arm = rng.uniform(0.25, 0.35, n).astype(np.float32)[:, None, None]
        au, av = np.abs(u), np.abs(v)
        return (((au <= arm) & (av <= 1.0)) | ((av <= arm) & (au <= 1.0))).astype(np.float32)
    if c == 5:
        return ((np.abs(u) <= 1.0) & (np.abs(v) <= 0.33)).astype(np.float32)
    if c == 6:
        inner = rng.uniform(0.45, 0.6, n).astype(np.float32)[:, None, None]
        m = np.maximum(np.abs(u), np.abs(v))
        return ((m <= 0.8) & (m >= inner)).astype(np.float32)
    period = rng.uniform(3.0, 5.0, n).astype(np.float32)
    phase = rng.uniform(0, 1, n).astype(np.float32)
    disk = (rr <= 1.0).astype(np.float32)
    if c in (7, 8):
        # (u, v) are in an axis-aligned frame here (see _draw_objects): u is horizontal.
        w = v if c == 7 else u
        return disk * _stripes(w, period, radius, phase)
    if c == 9:
        a = _stripes(u, period, radius, phase)
        b = _stripes(v, period, radius, rng.uniform(0, 1, n).astype(np.float32))
        return disk * (a == b).astype(np.float32)
    raise ValueError(f"demo dataset: expected a class id in 0..{NUM_CLASSES - 1}, found {c}")


def _ood_mask(kind: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator,
              radius: np.ndarray) -> np.ndarray:
    """Foreground coverage for the OOD generator: shapes no class uses."""
    n = u.shape[0]
    rr = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    if kind == 0:  # five-pointed star
        return (rr <= 0.55 + 0.45 * np.cos(5 * phi)).astype(np.float32)
    if kind == 1:  # crescent
        shift = rng.uniform(0.35, 0.6, n).astype(np.float32)[:, None, None]
        return ((rr <= 1.0) & ((u - shift) ** 2 + v * v > 0.8)).astype(np.float32)
    if kind == 2:  # hexagon
        m = np.zeros_like(u)
        for k in range(3):
            ang = k * np.pi / 3
            m = np.maximum(m, np.abs(u * np.cos(ang) + v * np.sin(ang)))
        return (m <= 0.85).astype(np.float32)
    if kind == 3:  # smooth random blob texture filling the frame
        fu = rng.uniform(1.5, 4.0, (n, 3, 1, 1)).astype(np.float32)
        fv = rng.uniform(1.5, 4.0, (n, 3, 1, 1)).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, (n, 3, 1, 1)).astype(np.float32)
        field = np.sin(fu * u[:, None] + fv * v[:, None] + ph).sum(axis=1)
        return ((field > 0.3) & (rr <= 1.3)).astype(np.float32)
    if kind == 4:  # spiral arm
        arm = np.mod(phi - 4.0 * rr, 2 * np.pi) < 1.2
        return (arm & (rr <= 1.0) & (rr >= 0.15)).astype(np.float32)
    raise ValueError(f"demo OOD generator: unknown kind {kind}")


# --------------------------------------------------------------------------- drawing

def _downsample(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    return x.reshape(n, IMAGE_SIZE, _SUPERSAMPLE, IMAGE_SIZE, _SUPERSAMPLE).mean(axis=(2, 4))


def _draw_objects(rng: np.random.Generator, kinds: np.ndarray, n_kinds: int,
                  mask_fn: Callable[..., np.ndarray], axis_aligned: tuple[int, ...]) -> np.ndarray:
    """Coverage [N, 32, 32] in [0, 1] of one object per image, drawn by kind."""
    n = kinds.shape[0]
    frame = _frames(rng, n)
    cover = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for k in range(n_kinds):
        idx = np.flatnonzero(kinds == k)
        if idx.size == 0:
            continue
        theta = None
        if k in axis_aligned:  # orientation is the class: only +-15 degrees jitter
            theta = np.deg2rad(rng.uniform(-15, 15, idx.size)).astype(np.float32)
        u, v = _local_coords(frame, idx, theta)
        cover[idx] = _downsample(mask_fn(k, u, v, rng, frame["radius"][idx]))
    return cover


def _backgrounds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth coloured gradients plus small clutter rectangles: float32 [N, 3, 32, 32]."""
    axis = np.linspace(-1, 1, IMAGE_SIZE, dtype=np.float32)
    base = rng.uniform(0.15, 0.85, (n, 3, 1, 1)).astype(np.float32)
    gx = rng.uniform(-0.2, 0.2, (n, 3, 1, 1)).astype(np.float32)
    gy = rng.uniform(-0.2, 0.2, (n, 3, 1, 1)).astype(np.float32)
    bg = base + gx * axis[None, None, None, :] + gy * axis[None, None, :, None]
    # Clutter: three small axis-aligned rectangles of random colour.
    pix = np.arange(IMAGE_SIZE, dtype=np.float32)
    for _ in range(3):
        x0 = rng.uniform(0, IMAGE_SIZE, (n, 1, 1)).astype(np.float32)
        y0 = rng.uniform(0, IMAGE_SIZE, (n, 1, 1)).astype(np.float32)
        w = rng.uniform(1.5, 5.0, (n, 1, 1)).astype(np.float32)
        h = rng.uniform(1.5, 5.0, (n, 1, 1)).astype(np.float32)
        m = ((pix[None, None, :] >= x0) & (pix[None, None, :] < x0 + w)
             & (pix[None, :, None] >= y0) & (pix[None, :, None] < y0 + h)).astype(np.float32)
        col = rng.uniform(0, 1, (n, 3, 1, 1)).astype(np.float32)
        alpha = rng.uniform(0.2, 0.6, (n, 1, 1, 1)).astype(np.float32)
        # bg * (1 - alpha m) + (col alpha) m, in place: the same float32 operations, fewer copies
        bg *= 1 - alpha * m[:, None]
        bg += col * alpha * m[:, None]
    return bg


def _compose(rng: np.random.Generator, cover: np.ndarray) -> np.ndarray:
    """Object over background with random contrast and sensor noise: uint8 [N, 3, 32, 32]."""
    n = cover.shape[0]
    bg = _backgrounds(rng, n)
    bg_mean = bg.mean(axis=(2, 3), keepdims=True)
    direction = rng.normal(size=(n, 3, 1, 1)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
    contrast = rng.uniform(0.2, 0.7, (n, 1, 1, 1)).astype(np.float32)
    fg = bg_mean + contrast * direction * np.sqrt(3.0)
    # Keep the colour inside the cube; the offset stays a contrast step.
    fg = np.clip(fg, 0.0, 1.0)
    a = cover[:, None]
    # img = bg (1 - a) + fg a + sigma noise, computed in place: the same operations on the
    # same dtypes (fg is float64: np.sqrt(3.0) is a float64 scalar), so bit-identical images.
    bg *= 1 - a  # bg is not needed again
    img = fg * a
    img += bg
    sigma = rng.uniform(0.0, 0.05, (n, 1, 1, 1)).astype(np.float32)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= sigma
    img += noise
    img *= 255.0
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


# --------------------------------------------------------------------------- public

def generate_demo_images(split: str, n: int, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` demo images of one split, deterministically.

    Args:
        split: ``"train"``, ``"test"`` or ``"ood"``.
        n: number of images (>= 0).
        seed: base seed; each split draws from its own stream of it.

    Returns:
        ``(images, labels)``: uint8 [n, 3, 32, 32] (NCHW, RGB) and int64 [n].
        Classes are balanced (``n // 10`` or one more each) and shuffled.
        OOD labels are all 0 (meaningless).

    Example:
        >>> x, y = generate_demo_images("test", 20, seed=1)
        >>> x.shape, x.dtype, y.shape
        ((20, 3, 32, 32), dtype('uint8'), (20,))
    """
    if split not in SPLITS:
        raise DataError(f"demo dataset: expected split one of {SPLITS}, found {split!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"demo dataset: expected a non-negative integer size for {split!r}, found {n!r}")
    rng = np.random.default_rng([int(seed), _SPLIT_STREAM[split], int(GENERATOR_VERSION)])
    n = int(n)
    if split == "ood":
        kinds = rng.permutation(np.arange(n) % 5)
        cover = _draw_objects(rng, kinds, 5, _ood_mask, axis_aligned=())
        labels = np.zeros(n, dtype=np.int64)
    else:
        kinds = rng.permutation(np.arange(n) % NUM_CLASSES)
        cover = _draw_objects(rng, kinds, NUM_CLASSES, _class_mask, axis_aligned=(7, 8))
        labels = kinds.astype(np.int64)
    return _compose(rng, cover), labels


def _option_int(spec: DatasetSpec, key: str, default: int) -> int:
    value: Any = spec.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise DataError(
            f"dataset '{spec.name}' (kind demo): expected option '{key}' to be a non-negative integer, "
            f"found {value!r}"
        )
    return int(value)


def load_demo_dataset(spec: DatasetSpec) -> TensorDataset:
    """Generate the demo split named by ``spec.split`` as an in-memory dataset.

    Options (``spec.options``): ``seed`` (default 0) and the split sizes
    ``train_size`` / ``test_size`` / ``ood_size`` (defaults 6000 / 2000 / 1000);
    ``size`` overrides the size of the requested split.

    Args:
        spec: a dataset spec of kind ``"demo"``.

    Returns:
        TensorDataset with uint8 images [N, 3, 32, 32], int64 labels [N], 10
        classes and the demo's normalisation statistics (``spec.mean``/``std``
        are ignored: the demo data has its own).

    Raises:
        DataError: unknown split or a bad option value.
    """
    if spec.split not in SPLITS:
        raise DataError(
            f"dataset '{spec.name}' (kind demo): expected split one of {SPLITS}, found {spec.split!r}"
        )
    seed = _option_int(spec, "seed", DEFAULT_SEED)
    size_key = "size" if "size" in spec.options else f"{spec.split}_size"
    n = _option_int(spec, size_key, DEFAULT_SIZES[spec.split])
    images, labels = generate_demo_images(spec.split, n, seed)
    return TensorDataset(
        spec.name,
        torch.from_numpy(images),
        torch.from_numpy(labels),
        num_classes=NUM_CLASSES,
        mean=DEMO_MEAN,
        std=DEMO_STD,
        source=f"demo generator v{GENERATOR_VERSION} split={spec.split} n={n} seed={seed}",
        classes=DEMO_CLASSES if spec.split != "ood" else None,  # OOD labels name no class
    )
