"""The corruptions of Hendrycks' ``make_cifar_c.py``, with a profile's constants.

imagecorruptions hard-codes the ImageNet-C constants inside its functions, so the
``cifar`` profile cannot call them. The functions here follow the published
definitions (``make_cifar_c.py``; where that script and imagecorruptions agree, the
same arithmetic and the same order of draws from ``np.random``) and read their
constants from :mod:`prunecheck.data.corruptions.profiles`. With ``profile="imagenet"``
the ones marked *shared* give imagecorruptions' bytes (tested), which checks the
arithmetic independently of the constants.

Where ``make_cifar_c.py`` differs from imagecorruptions beyond constants, the CIFAR
script is followed:

* ``zoom_blur`` and ``snow``: the zoomed image is trimmed around the centre (imagecorruptions
  keeps its top-left corner);
* ``pixelate``: upsampled with PIL's BOX filter (imagecorruptions: NEAREST);
* ``frost``: the texture is scaled by 0.2 (bilinear) and a window cut at random; for an image
  larger than the scaled texture the scale grows to 1.1 times the image (the original only
  ever saw 32 x 32 images);
* ``elastic_transform``: a random affine warp followed by a smoothed displacement field, with
  constants that are fractions of the image side (32 in the original);
* ``motion_blur`` and ``snow`` call ImageMagick through Wand in the original; here, as in
  imagecorruptions, its motion-blur kernel is re-created in numpy (imagecorruptions' helper).

Every function takes a PIL RGB image and a severity and returns an array [H, W, 3]
in [0, 255] (or a PIL image), like imagecorruptions' functions.
"""

from __future__ import annotations

import functools
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image
from skimage import color as skcolor
from skimage.filters import gaussian

from prunecheck.data.corruptions.profiles import parameters

# -- shared with imagecorruptions (same arithmetic, the profile's constants) -----------------


def gaussian_noise(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. ``clip(x + N(0, c^2), 0, 1) * 255`` on x in [0, 1]."""
    c = parameters(profile, "gaussian_noise", severity)
    x = np.array(x) / 255.0
    return np.clip(x + np.random.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. ``clip(Poisson(x c) / c, 0, 1) * 255``."""
    c = parameters(profile, "shot_noise", severity)
    x = np.array(x) / 255.0
    return np.clip(np.random.poisson(x * c) / float(c), 0, 1) * 255


def speckle_noise(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. ``clip(x + x N(0, c^2), 0, 1) * 255``."""
    c = parameters(profile, "speckle_noise", severity)
    x = np.array(x) / 255.0
    return np.clip(x + x * np.random.normal(size=x.shape, scale=c), 0, 1) * 255


def _cv2():
    from prunecheck.data.corruptions.loaders import _cv2 as load

    return load()


@functools.lru_cache(maxsize=16)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """float32 disk of ``radius`` on a window of half-width max(8, radius), anti-aliased by
    OpenCV's Gaussian blur (3 x 3 up to radius 8, else 5 x 5) of sigma ``alias_blur``."""
    cv2 = _cv2()
    half = 8 if radius <= 8 else radius
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    ksize = (3, 3) if radius <= 8 else (5, 5)
    kernel = cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)
    kernel.setflags(write=False)
    return kernel


def defocus_blur(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. Each channel filtered (OpenCV ``filter2D``, reflect-101 borders) with the disk."""
    cv2 = _cv2()
    radius, alias = parameters(profile, "defocus_blur", severity)
    x = np.array(x) / 255.0
    kernel = disk_kernel(radius, alias)
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=-1)
    return np.clip(channels, 0, 1) * 255


def _motion_blur_kernel_sum(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """imagecorruptions' numpy stand-in for ImageMagick's motion blur (its own helper)."""
    from prunecheck.data.corruptions.loaders import load_imagecorruptions

    return load_imagecorruptions().corruptions._motion_blur(x, radius=radius, sigma=sigma, angle=angle)


def motion_blur(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. Motion blur of ``(radius, sigma)`` at an angle ~ U(-45, 45) degrees."""
    radius, sigma = parameters(profile, "motion_blur", severity)
    x = np.array(x)
    angle = np.random.uniform(-45, 45)
    return np.clip(_motion_blur_kernel_sum(x, radius, sigma, angle), 0, 255)


def contrast(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. ``(x - mean) c + mean`` with per-channel means."""
    c = parameters(profile, "contrast", severity)
    x = np.array(x) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def brightness(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. HSV value + c, clipped."""
    c = parameters(profile, "brightness", severity)
    x = skcolor.rgb2hsv(np.array(x) / 255.0)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(skcolor.hsv2rgb(x), 0, 1) * 255


def saturate(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. HSV saturation s -> clip(a s + b, 0, 1)."""
    a, b = parameters(profile, "saturate", severity)
    x = skcolor.rgb2hsv(np.array(x) / 255.0)
    x[:, :, 1] = np.clip(x[:, :, 1] * a + b, 0, 1)
    return np.clip(skcolor.hsv2rgb(x), 0, 1) * 255


def jpeg_compression(x: Image.Image, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Shared. PIL JPEG round trip at the severity's quality."""
    quality = parameters(profile, "jpeg_compression", severity)
    output = BytesIO()
    x.save(output, "JPEG", quality=quality)
    with Image.open(output) as decoded:
        return np.asarray(decoded.convert("RGB"))


# -- make_cifar_c.py's own variants -----------------------------------------------------------


def pixelate(x: Image.Image, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """BOX down to ``int(side * c)``, BOX back up (imagecorruptions upsamples with NEAREST)."""
    c = parameters(profile, "pixelate", severity)
    width, height = x.size
    small = x.resize((int(width * c), int(height * c)), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX))


def centre_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom [H, W, C] by ``factor`` (scipy, bilinear) about the centre, keeping H x W.

    The central ``ceil(side / factor)`` pixels are zoomed and the result trimmed around
    its centre (``make_cifar_c.py``'s ``clipped_zoom``, per axis).
    """
    from scipy.ndimage import zoom as scizoom

    height, width = image.shape[:2]
    ch, cw = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - ch) // 2, (width - cw) // 2
    zoomed = scizoom(image[top : top + ch, left : left + cw], (factor, factor, 1), order=1)
    trim_top, trim_left = (zoomed.shape[0] - height) // 2, (zoomed.shape[1] - width) // 2
    return zoomed[trim_top : trim_top + height, trim_left : trim_left + width]


def zoom_factors(profile: str, severity: int) -> np.ndarray:
    """The zoom factors of ``zoom_blur`` (``np.arange(start, stop, step)`` of the profile)."""
    start, stop, step = parameters(profile, "zoom_blur", severity)
    return np.arange(start, stop, step)


def zoom_blur(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Mean of the image and its centre zooms by each factor (float32)."""
    x = (np.array(x) / 255.0).astype(np.float32)
    factors = zoom_factors(profile, severity)
    out = np.zeros_like(x)
    for factor in factors:
        out += centre_zoom(x, factor)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def snow(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """A thresholded, zoomed noise layer, motion-blurred at U(-135, -45) degrees, added twice
    (as is and rotated by 180 degrees) to the image brightened towards 1.5 grey + 0.5."""
    cv2 = _cv2()
    loc, scale, zoom, threshold, radius, sigma, weight = parameters(profile, "snow", severity)
    x = np.array(x, dtype=np.float32) / 255.0
    layer = np.random.normal(size=x.shape[:2], loc=loc, scale=scale)
    layer = centre_zoom(layer[..., np.newaxis], zoom)
    layer[layer < threshold] = 0
    # the original saves the layer as an 8-bit PNG for ImageMagick and reads the blur back as 8-bit
    layer8 = (np.clip(layer.squeeze(-1), 0, 1) * 255).astype(np.uint8)
    angle = np.random.uniform(-135, -45)
    blurred = _motion_blur_kernel_sum(layer8 / 255.0, radius, sigma, angle)
    layer = (np.round(np.clip(blurred, 0, 1) * 255).astype(np.uint8) / 255.0)[..., np.newaxis]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(x.shape[0], x.shape[1], 1)
    x = weight * x + (1 - weight) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


#: Scale of the frost textures in make_cifar_c.py.
CIFAR_FROST_SCALE = 0.2


@functools.lru_cache(maxsize=32)
def _cifar_frost_texture(index: int, height: int, width: int) -> np.ndarray:
    """Frost texture ``index`` (BGR uint8) scaled by 0.2 (bilinear), or up to 1.1 x the image."""
    from prunecheck.data.corruptions.loaders import read_frost_texture

    cv2 = _cv2()
    texture = read_frost_texture(index)
    th, tw = texture.shape[:2]
    scale = CIFAR_FROST_SCALE
    if th * scale <= height + 1 or tw * scale <= width + 1:
        scale = 1.1 * max(height / th, width / tw)
    scaled = cv2.resize(texture, (0, 0), fx=scale, fy=scale)
    scaled.setflags(write=False)
    return scaled


def frost(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """``clip(a x + b frost, 0, 255)`` with a random window of one of five scaled textures."""
    from prunecheck.data.corruptions.loaders import blend_frost

    return blend_frost(x, severity, profile, _cifar_frost_texture)


def elastic_transform(x: Any, severity: int = 1, *, profile: str = "cifar") -> np.ndarray:
    """Random affine warp (three points jittered by U(+-j)), then a displacement field of
    uniform noise smoothed by a Gaussian (sigma, truncate 3) and scaled by alpha, sampled
    bilinearly with reflection. ``alpha, sigma, j`` are the profile's fractions of the
    image side (``make_cifar_c.py``: IMSIZE = 32); only the ``cifar`` profile defines them."""
    from scipy.ndimage import map_coordinates

    cv2 = _cv2()
    if profile != "cifar":
        raise ValueError(f"make_cifar_c's elastic_transform needs the cifar profile, found {profile!r}")
    image = np.array(x, dtype=np.float32) / 255.0
    shape = image.shape
    side = min(shape[:2])
    alpha, sigma, jitter = (side * f for f in parameters(profile, "elastic_transform", severity))
    centre = np.float32(shape[:2]) // 2
    square = side // 3
    pts1 = np.float32([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    pts2 = pts1 + np.random.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, matrix, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha)
    dy = (gaussian(np.random.uniform(-1, 1, size=shape[:2]), sigma, mode="reflect", truncate=3) * alpha)
    dx, dy = dx.astype(np.float32)[..., np.newaxis], dy.astype(np.float32)[..., np.newaxis]
    xs, ys, zs = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(ys + dy, (-1, 1)), np.reshape(xs + dx, (-1, 1)), np.reshape(zs, (-1, 1))
    warped = map_coordinates(image, indices, order=1, mode="reflect").reshape(shape)
    return np.clip(warped, 0, 1) * 255


#: name -> function(image, severity, *, profile)
FUNCTIONS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "speckle_noise": speckle_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "contrast": contrast,
    "brightness": brightness,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "elastic_transform": elastic_transform,
}
#: Functions that, with the imagenet profile, are imagecorruptions' own arithmetic.
SHARED = (
    "gaussian_noise", "shot_noise", "speckle_noise", "defocus_blur", "motion_blur",
    "contrast", "brightness", "saturate", "jpeg_compression",
)
