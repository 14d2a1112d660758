"""Batched torch implementations of all 19 corruptions (CPU and GPU).

Selected per run with ``[run] corruption_backend = "torch"``; the reference
backend (:mod:`prunecheck.data.corruptions.compat`) stays the default. Both constant profiles
(:mod:`prunecheck.data.corruptions.profiles`) are supported. The noise, colour, pixelate,
blur and jpeg corruptions live here; zoom_blur, motion_blur and fog in
:mod:`~prunecheck.data.corruptions.torch_spatial`, glass_blur and elastic_transform in
:mod:`~prunecheck.data.corruptions.torch_warp`, frost and snow in
:mod:`~prunecheck.data.corruptions.torch_weather`, spatter in
:mod:`~prunecheck.data.corruptions.torch_spatter`.

Deterministic corruptions (``DETERMINISTIC``) follow the reference arithmetic:
brightness, saturate and jpeg_compression are byte-identical, the others differ by at
most one grey level (float32 rounding at the uint8 truncation). Random ones (``RANDOM``)
draw from a different random stream: per-value noise samples the reference's per-pixel
output distribution; the corruptions with one random parameter or field per image give
the reference's output, within one grey level, when fed the reference's own draws.
Every value is drawn from a counter-based hash of (image index, element, corruption,
severity, seed) (:mod:`~prunecheck.data.corruptions.torch_random`), so an image's output
depends on nothing else (not on its batch, the device or the chunking). Tolerances and
measured differences: docs/performance.md.

Public API:
    TORCH_CORRUPTIONS, RANDOM, DETERMINISTIC, NOISE, TORCH_GENERATOR_VERSION
    corrupt_batch(images, indices, name, severity, seed, profile="imagenet") -> uint8 tensor
    TorchCorruptedDataset(base, name, severity, seed, cache_dir, device=..., progress=..., profile="auto")
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prunecheck.core.corruption_names import check_severity
from prunecheck.data.base import ImageDataset, digest
from prunecheck.data.corruptions import torch_spatial, torch_spatter, torch_warp, torch_weather
from prunecheck.data.corruptions.generate import CorruptedDataset, Progress
from prunecheck.data.corruptions.profiles import check_profile, parameters
from prunecheck.data.corruptions.torch_random import UNIFORM_BITS as _UNIFORM_BITS
from prunecheck.data.corruptions.torch_random import to_uint8, uniform_bits

#: Bump when the output of any torch corruption changes (part of every cache key).
TORCH_GENERATOR_VERSION = "4"  # 4: defocus_blur on large images through the FFT

NOISE: tuple[str, ...] = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
RANDOM: tuple[str, ...] = NOISE + (
    "motion_blur", "fog", "glass_blur", "elastic_transform", "frost", "snow", "spatter",
)
DETERMINISTIC: tuple[str, ...] = (
    "brightness", "contrast", "saturate", "pixelate", "gaussian_blur", "defocus_blur", "zoom_blur",
    "jpeg_compression",
)
TORCH_CORRUPTIONS: tuple[str, ...] = RANDOM + DETERMINISTIC

#: Images per step on the CPU (intermediates of ~100 images of 32 x 32 stay in cache) ...
CPU_CHUNK = 128
#: ... and at most this many pixels per step (a few 224 x 224 images: float intermediates of
#: a whole chunk of large images would spill from the caches to memory on every pass).
CPU_CHUNK_PIXELS = 1 << 17
#: Quantile levels of the exact per-input output distribution (shot noise).
_SHOT_LEVELS_BITS = 12


@functools.lru_cache(maxsize=8)
def _normal_table(device: str) -> torch.Tensor:
    """float64 [2^16]: standard normal quantiles at (k + 0.5) / 2^16 (tails cut at 4.3 sigma)."""
    levels = 1 << _UNIFORM_BITS
    p = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    return torch.special.ndtri(p)


@functools.lru_cache(maxsize=40)
def _noise_factor_table(name: str, severity: int, profile: str, device: str) -> torch.Tensor:
    """float32 [2^16]: the per-value noise term, so that one lookup replaces the arithmetic.

    gaussian_noise: 255 c z (added to x in 0..255); speckle_noise: 1 + c z (multiplies x).
    """
    z = _normal_table("cpu")
    if name == "gaussian_noise":
        table = 255.0 * parameters(profile, name, severity) * z
    else:
        table = 1.0 + parameters(profile, name, severity) * z
    return table.to(torch.float32).to(device)


@functools.lru_cache(maxsize=40)
def _shot_noise_table(severity: int, profile: str, device: str) -> torch.Tensor:
    """uint8 [256 * 2^12]: quantiles of the reference's shot-noise output given the input value.

    The reference returns ``uint8(clip(Poisson(x / 255 * c) / c, 0, 1) * 255)``; for every
    input value x the output distribution over 0..255 is summed from the Poisson pmf and
    inverted at levels (j + 0.5) / 2^12.
    """
    c = float(parameters(profile, "shot_noise", severity))
    lam = np.arange(256, dtype=np.float64) / 255.0 * c
    kmax = int(c + 12 * math.sqrt(c) + 40)
    k = np.arange(kmax + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k[None, :] * np.log(lam[:, None]) - lam[:, None] - np.array([math.lgamma(v + 1) for v in k])[None, :]
    pmf = np.exp(log_pmf)
    pmf[0] = 0.0
    pmf[0, 0] = 1.0  # lambda 0: always 0
    out_value = np.uint8(np.clip(k / c, 0, 1) * 255).astype(np.int64)  # reference arithmetic
    dist = np.zeros((256, 256), dtype=np.float64)
    for j, y in enumerate(out_value):
        dist[:, y] += pmf[:, j]
    dist[:, 255] += np.clip(1.0 - dist.sum(axis=1), 0.0, None)  # tail beyond kmax: k >= c -> 255
    cdf = np.cumsum(dist, axis=1)
    cdf /= cdf[:, -1:]
    levels = 1 << _SHOT_LEVELS_BITS
    quantile = (np.arange(levels, dtype=np.float64) + 0.5) / levels
    table = np.stack([np.searchsorted(row, quantile, side="left") for row in cdf]).clip(0, 255)
    return torch.from_numpy(table.astype(np.uint8).reshape(-1)).to(device)


# -- noise ----------------------------------------------------------------------------------
def _noise(
    images: torch.Tensor, indices: torch.Tensor, name: str, severity: int, seed: int, profile: str
) -> torch.Tensor:
    n = images.shape[0]
    per_image = images[0].numel()
    device = str(images.device)
    if name == "shot_noise":
        u = uniform_bits(indices, per_image, name, severity, seed, _SHOT_LEVELS_BITS)
        u += images.reshape(n, -1).to(torch.int32) << _SHOT_LEVELS_BITS
        return _shot_noise_table(severity, profile, device).index_select(0, u.view(-1)).view_as(images)
    u = uniform_bits(indices, per_image, name, severity, seed)
    if name == "impulse_noise":
        # flipped with probability amount, then salt or pepper with probability 1/2 each;
        # the reference's untouched values survive its x / 255 * 255 round trip exactly
        u = u.view_as(images)
        threshold = int(round(parameters(profile, name, severity) * 65536))
        salt_or_pepper = (u & 1).to(torch.uint8).mul_(255)
        return torch.where(u < threshold, salt_or_pepper, images)
    term = _noise_factor_table(name, severity, profile, device).index_select(0, u.view(-1)).view_as(images)
    if name == "gaussian_noise":  # x + 255 c z
        out = term.add_(images)
    else:  # speckle_noise: x + x c z = x (1 + c z)
        out = term.mul_(images)
    return out.clamp_(0.0, 255.0).to(torch.uint8)


# -- colour ---------------------------------------------------------------------------------
def _hsv_round_trip(images: torch.Tensor, channel: int, a: float, b: float) -> torch.Tensor:
    """RGB -> HSV, ``channel`` (1 = S, 2 = V) -> clip(a * channel + b, 0, 1), HSV -> RGB, to uint8.

    The same float64 operations, in the same order, as scikit-image's ``rgb2hsv`` /
    ``hsv2rgb`` on ``x / 255`` (the reference), so the result is the reference's
    almost everywhere (measured in docs/performance.md), unlike an RGB shortcut in float32.
    """
    x = images.to(torch.float64) / 255.0
    r, g, bl = x[:, 0], x[:, 1], x[:, 2]
    v = x.amax(dim=1)
    delta = v - x.amin(dim=1)
    flat = delta == 0.0
    safe = torch.where(flat, torch.ones_like(delta), delta)
    s = torch.where(flat, torch.zeros_like(v), delta / torch.where(flat, torch.ones_like(v), v))
    # later branches win, as the reference's successive masked assignments
    h = torch.where(bl == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (bl - r) / safe, (g - bl) / safe))
    h = h / 6.0
    h = torch.where(h < 0, h + 1.0, h)  # numpy's h % 1.0 for h in (-1, 1)
    h = torch.where(flat, torch.zeros_like(h), h)
    if channel == 1:
        s = (s * a + b).clamp_(0.0, 1.0)
    else:
        v = (v * a + b).clamp_(0.0, 1.0)
    sector = torch.floor(h * 6)
    f = h * 6 - sector
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = torch.remainder(sector, 6)
    is_ = [sector == k for k in range(6)]
    # sector -> (R, G, B): 0 (v, t, p), 1 (q, v, p), 2 (p, v, t), 3 (p, q, v), 4 (t, p, v), 5 (v, p, q)
    red = torch.where(is_[0] | is_[5], v, torch.where(is_[1], q, torch.where(is_[4], t, p)))
    green = torch.where(is_[1] | is_[2], v, torch.where(is_[0], t, torch.where(is_[3], q, p)))
    blue = torch.where(is_[3] | is_[4], v, torch.where(is_[2], t, torch.where(is_[5], q, p)))
    return to_uint8(torch.stack((red, green, blue), dim=1))


def _brightness(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    return _hsv_round_trip(images, 2, 1.0, parameters(profile, "brightness", severity))


def _saturate(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    a, b = parameters(profile, "saturate", severity)
    return _hsv_round_trip(images, 1, a, b)


def _contrast(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    x = images.to(torch.float32) / 255.0
    mean = x.mean(dim=(2, 3), keepdim=True)
    return to_uint8((x - mean).mul_(parameters(profile, "contrast", severity)).add_(mean))


# -- geometry and blur as small matrices -----------------------------------------------------
@functools.lru_cache(maxsize=64)
def _box_matrix(size_in: int, size_out: int) -> np.ndarray:
    """float64 [size_out, size_in]: PIL's BOX resampling weights (each row sums to 1)."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    for out in range(size_out):
        centre = (out + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), size_in)
        for src in range(lo, hi):
            t = (src - centre + 0.5) / filterscale
            matrix[out, src] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = matrix[out].sum()
        if total:
            matrix[out] /= total
    return matrix


@functools.lru_cache(maxsize=64)
def _pixelate_ops(
    height: int, width: int, severity: int, profile: str, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cached operands of ``_pixelate`` for one (size, severity, profile, device).

    Returns:
        along_w: float32 [W, w] BOX weights of the horizontal pass (right factor).
        half_w: float32 [w] of 0.5 (the rounding offset, added by the GEMM).
        along_h: float32 [h, H] BOX weights of the vertical pass (left factor).
        nearest: int64 [H * W] flat index into the [h, w] small image of each output pixel
            (imagenet: NEAREST, source floor((i + 0.5) * small / size) per axis; cifar: BOX,
            whose upsampling weights are one 1 per output pixel, so also a copy).
    """
    c = parameters(profile, "pixelate", severity)
    small_h, small_w = int(height * c), int(width * c)

    def nearest(size: int, small: int) -> np.ndarray:
        if profile == "cifar":
            return _box_matrix(small, size).argmax(axis=1).astype(np.int64)
        return np.minimum(((np.arange(size) + 0.5) * (small / size)).astype(np.int64), small - 1)

    flat = nearest(height, small_h)[:, None] * small_w + nearest(width, small_w)[None, :]
    along_w = torch.from_numpy(_box_matrix(width, small_w).T.copy()).to(device, torch.float32)
    along_h = torch.from_numpy(_box_matrix(height, small_h)).to(device, torch.float32)
    half_w = torch.full((small_w,), 0.5, dtype=torch.float32, device=device)
    return along_w, half_w, along_h, torch.from_numpy(flat.reshape(-1)).to(device)


def _pixelate(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    # PIL: BOX down to int(size * c) (horizontal pass, rounded half up to uint8, vertical
    # pass, rounded), NEAREST (cifar: BOX) back up. The two passes are GEMMs on the small image (the
    # horizontal one adds the 0.5 rounding offset itself); the upsampling only copies
    # values, so it is one uint8 gather through a cached index map.
    n, c, height, width = images.shape
    along_w, half_w, along_h, nearest = _pixelate_ops(height, width, severity, profile, str(images.device))
    rows = torch.addmm(half_w, images.to(torch.float32).view(-1, width), along_w).floor_()
    small = torch.matmul(along_h, rows.view(n, c, height, -1)).add_(0.5).floor_().to(torch.uint8)
    return torch.gather(small.view(n * c, -1), 1, nearest.expand(n * c, -1)).view(n, c, height, width)


def _gaussian_blur(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    # scipy's Gaussian (radius int(4 sigma + 0.5), edge replication), separable
    sigma = float(parameters(profile, "gaussian_blur", severity))
    return to_uint8(torch_warp.gaussian_filter(images.to(torch.float32) / 255.0, sigma, sigma, 4.0, "nearest"))


@functools.lru_cache(maxsize=16)
def defocus_kernel(severity: int, profile: str = "imagenet") -> np.ndarray:
    """float32 [k, k]: the reference's anti-aliased disk for ``defocus_blur``.

    A binary disk of the severity's radius on a window of half-width max(8, radius),
    normalised to sum 1, then smoothed by a 3 x 3 (radius <= 8) or 5 x 5 Gaussian of
    the severity's sigma, with mirrored (reflect-101) borders inside the window.
    """
    radius, alias_sigma = parameters(profile, "defocus_blur", severity)
    half = max(8, radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    taps = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(taps**2) / (2 * alias_sigma**2))
    g /= g.sum()
    pad = ksize // 2
    padded = np.pad(disk.astype(np.float64), pad, mode="reflect")
    rows = sum(g[t] * padded[t : t + disk.shape[0], :] for t in range(ksize))
    out = sum(g[t] * rows[:, t : t + disk.shape[1]] for t in range(ksize))
    return out.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _defocus_spectral_ops(
    height: int, width: int, severity: int, profile: str, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Cached operands of the spectral ``defocus_blur`` on H x W images, or None.

    The kernel is even along each axis, so its correlation with a reflect-101 padded image
    equals a circular convolution of the image's whole-sample symmetric extension (period
    2 (n - 1)), which the DCT-I basis ``V[i, k] = cos(pi i k / (n - 1))`` diagonalises:
    ``out = V_h (S * (V_h^-1 X V_w^-T)) V_w^T`` with ``S[k, l]`` the kernel's cosine
    transform (exact up to float rounding; valid while the kernel half-width < n).

    Returns:
        (V_h^-1 [H, H], V_w^-T [W, W], S / 255 [H, W], V_h [H, H], V_w^T [W, W]), float32,
        or None where the dense transform costs more than the direct convolution
        (``2 (H + W) > k * k``) or the kernel is not even along each axis.
    """
    kernel = defocus_kernel(severity, profile).astype(np.float64)
    ksize = kernel.shape[0]
    half = ksize // 2
    symmetric = np.array_equal(kernel, kernel[::-1, :]) and np.array_equal(kernel, kernel[:, ::-1])
    if 2 * (height + width) > ksize * ksize or min(height, width) <= half or not symmetric:
        return None
    offsets = np.arange(-half, half + 1)

    def basis(size: int) -> tuple[np.ndarray, np.ndarray]:
        freq = np.arange(size)
        v = np.cos(np.pi * np.outer(freq, freq) / (size - 1))
        return v, np.cos(np.pi * np.outer(freq, offsets) / (size - 1))  # [n, n], [n, k]

    v_h, cos_h = basis(height)
    v_w, cos_w = basis(width)
    spectrum = cos_h @ kernel @ cos_w.T / 255.0  # [H, W]; the 1/255 of the reference's x / 255
    ops = (np.linalg.inv(v_h), np.linalg.inv(v_w).T, spectrum, v_h, v_w.T)
    return tuple(torch.from_numpy(np.ascontiguousarray(m)).to(device, torch.float32) for m in ops)


def _defocus_blur(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    _, _, height, width = images.shape
    spectral = _defocus_spectral_ops(height, width, severity, profile, str(images.device))
    if spectral is not None:  # small images: four GEMMs instead of a dense k x k convolution
        inv_h, inv_w_t, spectrum, v_h, v_w_t = spectral
        coeffs = torch.matmul(inv_h, images.to(torch.float32) @ inv_w_t).mul_(spectrum)
        return to_uint8(torch.matmul(v_h, coeffs) @ v_w_t)
    kernel = _defocus_support(severity, profile).to(images.device)
    half = kernel.shape[0] // 2
    x = images.to(torch.float32) / 255.0
    padded = F.pad(x, (half, half, half, half), mode="reflect")  # reflect-101, as OpenCV's default
    if kernel.shape[0] > _DEFOCUS_DIRECT_MAX:  # large disks: a product of spectra, as OpenCV's DFT path
        spectrum = _defocus_spectrum(padded.shape[-2], padded.shape[-1], severity, profile, str(images.device))
        full = torch.fft.irfft2(torch.fft.rfft2(padded) * spectrum, s=padded.shape[-2:])
        return to_uint8(full[..., 2 * half :, 2 * half :].contiguous())
    weight = kernel.view(1, 1, *kernel.shape).expand(x.shape[1], 1, *kernel.shape)
    return to_uint8(F.conv2d(padded, weight, groups=x.shape[1]))


#: Widest defocus kernel convolved directly on large images; wider ones go through the FFT.
_DEFOCUS_DIRECT_MAX = 7


@functools.lru_cache(maxsize=16)
def _defocus_support(severity: int, profile: str) -> torch.Tensor:
    """float32 [k, k]: the defocus kernel cut to its non-zero centred square (small disks of the
    cifar profile fill a few pixels of the 17 x 17 window; zero taps add nothing)."""
    kernel = defocus_kernel(severity, profile)
    half = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    keep = int(max(np.abs(rows - half).max(), np.abs(cols - half).max()))
    return torch.from_numpy(np.ascontiguousarray(kernel[half - keep : half + keep + 1, half - keep : half + keep + 1]))


@functools.lru_cache(maxsize=16)
def _defocus_spectrum(height: int, width: int, severity: int, profile: str, device: str) -> torch.Tensor:
    """complex64 [H, W // 2 + 1]: the defocus kernel's spectrum for a circular convolution of
    H x W padded images. The kernel is even, so convolution equals the reference's correlation;
    output (i, j) of the circular product is the window with its top-left corner at
    (i - k + 1, j - k + 1), so the valid outputs start at (k - 1, k - 1)."""
    kernel = _defocus_support(severity, profile).to(torch.float64)
    placed = torch.zeros(height, width, dtype=torch.float64)
    placed[: kernel.shape[0], : kernel.shape[1]] = kernel
    return torch.fft.rfft2(placed).to(device, torch.complex64)


def _jpeg_compression(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    # torchvision's libjpeg round trip with PIL's defaults (4:2:0, the IJG quality tables) writes the
    # same bytes as PIL's save(quality=q) and decodes them to the same pixels (tested). It runs on
    # the CPU: a GPU codec (nvjpeg) is not guaranteed to produce libjpeg's pixels. torchvision 0.29
    # deprecates its image codecs; without them the same round trip goes through PIL per image.
    quality = int(parameters(profile, "jpeg_compression", severity))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_jpeg, encode_jpeg

            decoded = decode_jpeg(encode_jpeg(list(images.cpu()), quality=quality))
        return torch.stack(decoded).to(images.device)
    except ImportError:  # pragma: no cover - torchvision without image codecs
        from prunecheck.data.corruptions.cifar_c import jpeg_compression
        from PIL import Image

        out = [jpeg_compression(Image.fromarray(im.permute(1, 2, 0).numpy()), severity, profile=profile)
               for im in images.cpu()]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(images.device)


_RANDOM_FNS = {
    "motion_blur": torch_spatial.motion_blur,
    "fog": torch_spatial.fog,
    "glass_blur": torch_warp.glass_blur,
    "elastic_transform": torch_warp.elastic_transform,
    "frost": torch_weather.frost,
    "snow": torch_weather.snow,
    "spatter": torch_spatter.spatter,
}
_DETERMINISTIC_FNS = {
    "zoom_blur": torch_spatial.zoom_blur,
    "jpeg_compression": _jpeg_compression,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturate": _saturate,
    "pixelate": _pixelate,
    "gaussian_blur": _gaussian_blur,
    "defocus_blur": _defocus_blur,
}


def corrupt_batch(
    images: torch.Tensor,
    indices: torch.Tensor | np.ndarray,
    name: str,
    severity: int,
    seed: int,
    profile: str = "imagenet",
) -> torch.Tensor:
    """One corruption on a batch of images, on the images' device.

    Args:
        images: uint8 [N, 3, H, W] (NCHW, RGB), H and W at least 32.
        indices: int [N], the dataset row index of each image (the determinism key).
        name: one of ``TORCH_CORRUPTIONS``.
        severity: 1..5.
        seed: run seed.
        profile: "imagenet" or "cifar" (:mod:`prunecheck.data.corruptions.profiles`).

    Returns:
        uint8 [N, 3, H, W] on ``images.device``; row i depends only on
        (images[i], indices[i], name, severity, seed, profile).

    Raises:
        ValueError: for a name this backend does not cover, a bad severity, dtype or shape.
    """
    if name not in TORCH_CORRUPTIONS:
        raise ValueError(
            f"torch corruption backend: expected one of {', '.join(TORCH_CORRUPTIONS)}, found {name!r} "
            "(the other corruptions use the imagecorruptions backend)"
        )
    severity = check_severity(severity)
    check_profile(profile)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"corrupt_batch: expected uint8 images [N, 3, H, W], found {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[2] < 32 or images.shape[3] < 32:
        raise ValueError(
            f"corrupt_batch: expected images of at least 32x32 pixels, found {images.shape[2]}x{images.shape[3]}"
        )
    indices = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    if indices.shape != (images.shape[0],) or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(
            f"corrupt_batch: expected integer indices [{images.shape[0]}], found {indices.dtype} {tuple(indices.shape)}"
        )
    if images.shape[0] == 0:
        return images.clone()
    indices = indices.to(images.device)
    # On the CPU, work in chunks whose intermediates stay in cache.
    pixels = images.shape[2] * images.shape[3]
    step = images.shape[0] if images.device.type != "cpu" else max(1, min(CPU_CHUNK, CPU_CHUNK_PIXELS // pixels))
    with torch.inference_mode():
        parts = []
        for start in range(0, images.shape[0], step):
            chunk, keys = images[start : start + step], indices[start : start + step]
            if name in NOISE:
                parts.append(_noise(chunk, keys, name, severity, seed, profile))
            elif name in _RANDOM_FNS:
                parts.append(_RANDOM_FNS[name](chunk, keys, severity, seed, profile))
            else:
                parts.append(_DETERMINISTIC_FNS[name](chunk, severity, profile))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class TorchCorruptedDataset(CorruptedDataset):
    """A generated corruption view made by :func:`corrupt_batch`, cached like the reference's.

    Same cache folder and file format as :class:`CorruptedDataset`; the key names
    the backend and ``TORCH_GENERATOR_VERSION``, so the two backends never share files.

    Args:
        base, name, severity, seed, cache_dir, progress: as :class:`CorruptedDataset`.
        device: where the corruption runs ("cpu", "cuda", "cuda:N").
    """

    def __init__(
        self,
        base: ImageDataset,
        name: str,
        severity: int,
        seed: int,
        cache_dir: Path,
        progress: Progress | None = None,
        *,
        device: str | torch.device = "cpu",
        profile: str = "auto",
    ):
        if name not in TORCH_CORRUPTIONS:
            raise ValueError(
                f"torch corruption backend: expected one of {', '.join(TORCH_CORRUPTIONS)}, found {name!r}"
            )
        super().__init__(base, name, severity, seed, cache_dir, progress, profile)
        self.device = torch.device(device)
        self._fingerprint = digest(
            base.fingerprint(), "corruption", name, self.severity, self.seed, self.profile, "torch",
            TORCH_GENERATOR_VERSION,
        )
        stem = (
            f"{self.path.name.split('-' + name)[0]}-{name}-s{self.severity}-{self.profile}-seed{self.seed}"
            f"-torch-{self._fingerprint}"
        )
        self.path = self.cache_dir / f"{stem}.npy"
        self.sidecar = self.cache_dir / f"{stem}.json"

    def _corrupt_rows(self, rows: np.ndarray) -> np.ndarray:
        images = self.base.images(rows).to(self.device)
        out = corrupt_batch(images, torch.from_numpy(rows), self.corruption, self.severity, self.seed, self.profile)
        return out.cpu().numpy()
