"""imagecorruptions on current numpy / scikit-image / setuptools.

``imagecorruptions`` 1.1.2 (the packaged form of Hendrycks & Dietterich's ImageNet-C
code) has three problems on current libraries:

* it imports ``pkg_resources`` at import time, which setuptools >= 81 no longer ships;
  :func:`load_imagecorruptions` provides a stand-in for the duration of that import;
* ``glass_blur`` and ``gaussian_blur`` pass ``multichannel=True`` to
  ``skimage.filters.gaussian`` (removed in scikit-image 0.21; now ``channel_axis``);
* ``fog``'s plasma fractal allocates with ``np.float_`` (removed in numpy 2.0).

Those three are re-implemented here from the published definitions, with the same
severity parameters, the same arithmetic and the same order of draws from numpy's
global RNG, so that with the same ``np.random`` state they give the same bytes as
the original would (tested byte for byte). ``impulse_noise`` is re-implemented too:
current ``skimage.util.random_noise`` ignores ``np.random`` and draws from fresh OS
entropy, so the original is not reproducible; ours feeds it a generator seeded from
``np.random``, so it equals the original in distribution, not byte for byte. ``frost``
keeps its decoded textures in memory and ``spatter`` fixes a 0 / 0 (both byte-identical
otherwise). With the ``imagenet`` profile every other corruption is imagecorruptions'
own function; the ``cifar`` profile uses :mod:`prunecheck.data.corruptions.cifar_c`. The
constants of both profiles live in :mod:`prunecheck.data.corruptions.profiles`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
from PIL import Image
from skimage.filters import gaussian
from skimage.util import random_noise

from prunecheck.core.corruption_names import ALL_CORRUPTIONS
from prunecheck.data.corruptions.profiles import check_profile, parameters
# moved to loaders.py; imported back so old imports of these names keep working
from prunecheck.data.corruptions.loaders import (  # noqa: F401
    _FROST_FILES,
    _cv2,
    _resource_filename,
    _standin_pkg_resources,
    blend_frost,
    frost_texture_path,
    load_imagecorruptions,
    read_frost_texture,
)

CorruptionFn = Callable[[Any, int], Any]

#: Texture files shipped with imagecorruptions; the benchmark draws among the first five.
#: Emboss kernel used to shade water drops.
_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def _as_float_image(x: Any) -> np.ndarray:
    """PIL image or uint8 array [H, W, 3] -> float64 array in [0, 1]."""
    return np.asarray(x, dtype=np.float64) / 255.0


def gaussian_blur(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Gaussian blur with sigma 1, 2, 3, 4, 6 pixels for severity 1..5.

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5.

    Returns:
        float64 array [H, W, 3] in [0, 255].
    """
    sigma = parameters(profile, "gaussian_blur", severity)
    blurred = gaussian(_as_float_image(x), sigma=sigma, channel_axis=-1)
    return np.clip(blurred, 0, 1) * 255


def glass_blur(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Blur, locally scramble pixels, blur again ("frosted glass").

    The image is Gaussian-blurred (sigma), quantised to uint8, then for each pass
    every interior pixel (row ``h`` from ``H - d`` down to ``d + 1``, column ``w``
    from ``W - d`` down to ``d + 1``) takes the current value of the pixel at
    ``(h + dy, w + dx)`` with ``dx, dy ~ U{-d, ..., d - 1}`` drawn from
    ``np.random``, and the result is blurred again. The original code writes this as
    a tuple swap of numpy row views, which in effect copies rather than swaps; that
    effective behaviour is what the released benchmark data contain and what is
    reproduced here. The sequential dependency is kept, but the loop runs over
    integer pixel addresses rather than pixel values.

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5 -> (sigma, d, passes) of the profile.

    Returns:
        float64 array [H, W, 3] in [0, 255].
    """
    sigma, delta, passes = parameters(profile, "glass_blur", severity)
    first = np.uint8(gaussian(_as_float_image(x), sigma=sigma, channel_axis=-1) * 255)
    height, width = first.shape[:2]
    channels = first.shape[2] if first.ndim == 3 else 1
    rows = np.arange(height - delta, delta, -1)
    cols = np.arange(width - delta, delta, -1)
    # Flat addresses of the visited pixels, in visiting order.
    visited = (rows[:, None] * width + cols[None, :]).ravel().tolist()
    source = list(range(height * width))
    for _ in range(passes):
        moves = np.random.randint(-delta, delta, size=(len(visited), 2))  # (dx, dy) per pixel
        offsets = (moves[:, 1] * width + moves[:, 0]).tolist()
        for pixel, offset in zip(visited, offsets):
            source[pixel] = source[pixel + offset]
    shuffled = first.reshape(height * width, channels)[np.asarray(source)].reshape(first.shape)
    return np.clip(gaussian(shuffled / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255


def plasma_fractal(size: int, decay: float) -> np.ndarray:
    """Diamond-square height map [size, size] in [0, 1], drawing from ``np.random``.

    Starting from a zero corner and amplitude 100, each level sets square centres,
    then the two families of edge midpoints, to the mean of their four (wrapped)
    neighbours plus ``amp * U(-amp, amp)``; the amplitude is divided by ``decay``
    after every level.

    Args:
        size: side length, a power of two.
        decay: roughness decay per level (larger -> smoother).

    Returns:
        float64 array [size, size], min 0, max 1.
    """
    if size < 1 or size & (size - 1):
        raise ValueError(f"plasma_fractal: expected a power-of-two size, found {size}")
    grid = np.zeros((size, size), dtype=np.float64)
    step = size
    amp = 100.0

    def perturbed(total: np.ndarray) -> np.ndarray:
        return total / 4 + amp * np.random.uniform(-amp, amp, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        total = corners + np.roll(corners, -1, axis=0)
        total += np.roll(total, -1, axis=1)
        grid[half::step, half::step] = perturbed(total)

        centres = grid[half::step, half::step]
        corners = grid[0::step, 0::step]
        along_rows = (centres + np.roll(centres, 1, axis=0)) + (corners + np.roll(corners, -1, axis=1))
        grid[0::step, half::step] = perturbed(along_rows)
        along_cols = (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=0))
        grid[half::step, 0::step] = perturbed(along_cols)

        step = half
        amp /= decay
    grid -= grid.min()
    return grid / grid.max()


def _next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def fog(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Add a plasma-fractal haze and rescale so the brightest input value is kept in range.

    ``out = clip((x + s * plasma) * max(x) / (max(x) + s), 0, 1) * 255`` with ``x`` in
    [0, 1], the plasma map of side ``next_power_of_two(max(H, W, C))`` cropped to the
    image, and ``(s, decay)`` of the profile.

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5.

    Returns:
        float64 array [H, W, 3] in [0, 255].
    """
    strength, decay = parameters(profile, "fog", severity)
    image = _as_float_image(x)
    height, width = image.shape[:2]
    haze = plasma_fractal(_next_power_of_two(max(image.shape)), decay)[:height, :width]
    peak = image.max()
    if image.ndim == 3:
        haze = haze[..., np.newaxis]
    image = image + strength * haze
    return np.clip(image * peak / (peak + strength), 0, 1) * 255


def impulse_noise(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Salt-and-pepper noise on a fraction 0.03, 0.06, 0.09, 0.17, 0.27 of the values.

    Uses ``skimage.util.random_noise(mode="s&p")`` like the original, with a
    generator seeded from one draw of ``np.random`` so the result follows the
    global numpy seed.

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5.

    Returns:
        float64 array [H, W, 3] in [0, 255].
    """
    amount = parameters(profile, "impulse_noise", severity)
    rng = np.random.default_rng(int(np.random.randint(0, 2**32, dtype=np.uint64)))
    noisy = random_noise(_as_float_image(x), mode="s&p", amount=amount, rng=rng)
    return np.clip(noisy, 0, 1) * 255


@functools.lru_cache(maxsize=32)
def _frost_texture(index: int, height: int, width: int) -> np.ndarray:
    """Frost texture ``index`` (BGR uint8) scaled by 1.1 x max(1, H / h, W / w), read-only."""
    cv2 = _cv2()
    texture = read_frost_texture(index)
    th, tw = texture.shape[:2]
    scale = 1.1 * max(1, height / th, width / tw)
    size = (int(np.ceil(tw * scale)), int(np.ceil(th * scale)))
    scaled = cv2.resize(texture, dsize=size, interpolation=cv2.INTER_CUBIC)
    scaled.setflags(write=False)
    return scaled


def frost(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Blend the image with a randomly placed crop of a frost texture.

    One of the first five textures (``np.random.randint(5)``) is scaled (bicubic)
    to at least 1.1 times the image size, a window at a random offset (rows, then
    columns, from ``np.random``) is cut out and ``clip(a * x + b * frost, 0, 255)``
    returned, with ``(a, b)`` of the profile. Identical to imagecorruptions' frost,
    except that decoded and scaled textures are kept in memory instead of being
    read from disk for every image (that made frost 20x slower than the rest).

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5.

    Returns:
        float64 array [H, W, 3] in [0, 255].
    """
    return blend_frost(x, severity, profile, _frost_texture)


def spatter(x: Any, severity: int = 1, *, profile: str = "imagenet") -> np.ndarray:
    """Water drops (severity 1..3) or mud (4..5) on the lens.

    A smoothed Gaussian noise field thresholded at ``t`` gives the liquid. Water:
    the liquid's edge-distance map is equalised, embossed and blurred into a
    shading ``m``, normalised by its maximum, scaled by the intensity and added in
    a pale colour. Mud: the thresholded mask is smoothed, values below 0.8 dropped,
    and those pixels replaced by brown. Same parameters, operations and RNG draws
    as imagecorruptions' spatter, with one fix: when a small image gets no water
    at all, the original divides 0 by 0 and returns an all-black image (about 1 in
    40 images of 32 x 32 at severity 1); here it returns the image unchanged.

    Args:
        x: PIL image or uint8 array [H, W, 3].
        severity: 1..5.

    Returns:
        float32 or float64 array [H, W, 3] in [0, 255].
    """
    cv2 = _cv2()
    loc, scale, smooth, threshold, intensity, mud = parameters(profile, "spatter", severity)
    image = np.asarray(x, dtype=np.float32) / 255.0
    liquid = np.random.normal(size=image.shape[:2], loc=loc, scale=scale)
    liquid = gaussian(liquid, sigma=smooth)
    liquid[liquid < threshold] = 0
    if not mud:
        liquid8 = (liquid * 255).astype(np.uint8)
        away_from_edges = 255 - cv2.Canny(liquid8, 50, 150)
        dist = cv2.distanceTransform(away_from_edges, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, _EMBOSS)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        shade = cv2.cvtColor(liquid8 * dist, cv2.COLOR_GRAY2BGRA)
        peak = np.max(shade, axis=(0, 1))
        shade = np.divide(shade, peak, out=np.zeros_like(shade), where=peak > 0)
        shade *= intensity
        ones = np.ones_like(shade[..., :1])
        colour = np.concatenate((175 / 255.0 * ones, 238 / 255.0 * ones, 238 / 255.0 * ones), axis=2)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(image + shade * colour, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    mask = gaussian(np.where(liquid > threshold, 1, 0).astype(np.float32), sigma=intensity)
    mask[mask < 0.8] = 0
    ones = np.ones(image.shape[:2] + (1,), dtype=np.uint8)
    colour = np.concatenate((63 / 255.0 * ones, 42 / 255.0 * ones, 20 / 255.0 * ones), axis=2)
    colour *= mask[..., np.newaxis]
    image *= 1 - mask[..., np.newaxis]
    return np.clip(image + colour, 0, 1) * 255


#: Corruptions implemented here instead of taken from imagecorruptions (both profiles).
OWN_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "gaussian_blur": gaussian_blur,
    "glass_blur": glass_blur,
    "fog": fog,
    "impulse_noise": impulse_noise,
    "frost": frost,
    "spatter": spatter,
}


def corruption_function(name: str, profile: str = "imagenet") -> CorruptionFn:
    """The function ``f(image, severity) -> array-like [H, W, 3] in [0, 255]`` for ``name``.

    ``imagenet``: imagecorruptions' own function, or the re-implementation above where the
    original breaks on current libraries or is not reproducible. ``cifar``: the same
    re-implementations, or :mod:`prunecheck.data.corruptions.cifar_c`, with the CIFAR-10-C constants.

    ``image`` must be a PIL RGB image (some functions call PIL methods on it). The caller
    converts the result with ``np.uint8`` (truncation), as imagecorruptions' ``corrupt`` does.

    Raises:
        ValueError: for a name outside ``ALL_CORRUPTIONS`` or an unknown profile.
    """
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of: " + ", ".join(ALL_CORRUPTIONS))
    check_profile(profile)
    if profile == "cifar":
        from prunecheck.data.corruptions import cifar_c

        if name in cifar_c.FUNCTIONS:  # make_cifar_c's definitions first (frost differs)
            return functools.partial(cifar_c.FUNCTIONS[name], profile=profile)
    if name in OWN_IMPLEMENTATIONS:
        return functools.partial(OWN_IMPLEMENTATIONS[name], profile=profile)
    return getattr(load_imagecorruptions(), name)


def apply_corruption(image: np.ndarray, name: str, severity: int, profile: str = "imagenet") -> np.ndarray:
    """Corrupt one uint8 image [H, W, 3] with numpy's current global RNG state.

    Returns:
        uint8 array [H, W, 3] (values truncated like imagecorruptions' ``corrupt``).
    """
    out = np.asarray(corruption_function(name, profile)(Image.fromarray(image), severity))
    out = np.uint8(out) if out.dtype != np.uint8 else out
    if out.shape != image.shape:
        raise RuntimeError(
            f"corruption {name!r} severity {severity} ({profile} profile): expected output shape "
            f"{image.shape}, found {out.shape}"
        )
    return out
