"""Batched torch glass_blur and elastic_transform (the corruptions that move pixels at random).

Conventions as in :mod:`prunecheck.data.corruptions.torch_backend` (which dispatches here).
Both are deterministic given their random draws, and are written so that with the
reference's own draws they give the reference's output (tested by feeding them
numpy's draws); their draws come from :mod:`prunecheck.data.corruptions.torch_random`.

* ``glass_blur``: Gaussian blur (float64, so the intermediate uint8 truncation agrees),
  then the reference's sequential pixel "swaps" (in effect: each visited pixel, in
  descending address order, copies the current value at a random offset). A pixel
  that copies from an address visited earlier in the same pass gets that address's
  new value, so a pass is a forest of chains; they are resolved for the whole batch
  by pointer doubling (log2(H W) gathers) instead of H W sequential steps.
* ``elastic_transform``: imagecorruptions' variant (smoothed uniform displacement field,
  bilinear sampling with half-sample reflection) for ``imagenet``; ``make_cifar_c.py``'s
  (random affine warp first, bilinear like OpenCV's warpAffine on float images, with
  reflect-101 borders) for ``cifar``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from prunecheck.data.corruptions.profiles import parameters
from prunecheck.data.corruptions.torch_random import to_uint8, uniform01


@functools.lru_cache(maxsize=64)
def gaussian_matrix(size: int, sigma: float, truncate: float = 4.0, mode: str = "nearest") -> np.ndarray:
    """float64 [size, size]: scipy's 1-D Gaussian filter as a matrix.

    Radius ``int(truncate * sigma + 0.5)``; borders ``"nearest"`` (edge replicated) or
    ``"reflect"`` (half-sample symmetric, ``d c b a | a b c d | d c b a``).
    """
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * offsets.astype(np.float64) ** 2 / sigma**2) if sigma > 0 else (offsets == 0) * 1.0
    weights /= weights.sum()
    matrix = np.zeros((size, size), dtype=np.float64)
    for i in range(size):
        src = i + offsets
        if mode == "nearest":
            src = np.clip(src, 0, size - 1)
        elif mode == "reflect":
            src = np.mod(src, 2 * size)
            src = np.where(src >= size, 2 * size - 1 - src, src)
        else:
            raise ValueError(f"gaussian_matrix: expected mode 'nearest' or 'reflect', found {mode!r}")
        np.add.at(matrix[i], src, weights)
    return matrix


def _border_index(size: int, pad: int, mode: str, device: torch.device) -> torch.Tensor:
    """Indices [size + 2 pad] into a length-``size`` axis extended by scipy's ``mode``."""
    index = torch.arange(-pad, size + pad, device=device)
    if mode == "nearest":
        return index.clamp(0, size - 1)
    index = torch.remainder(index, 2 * size)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def _blur_axis(x: torch.Tensor, sigma: float, truncate: float, mode: str, dim: int) -> torch.Tensor:
    """Gaussian along ``dim`` (-1 or -2) of float [N, C, H, W]: a sum of shifted slices of the
    padded axis for narrow kernels (up to 15 taps), a dense matrix product otherwise (faster on
    the CPU from there on; same sums in another order)."""
    size = x.shape[dim]
    radius = int(truncate * sigma + 0.5)
    if 2 * radius + 1 > 15 or 2 * radius + 1 >= size:
        g = torch.from_numpy(gaussian_matrix(size, sigma, truncate, mode)).to(x.device, x.dtype)
        return x @ g.T if dim == -1 else torch.matmul(g, x)
    taps = gaussian_matrix(4 * radius + 1, sigma, truncate, mode)[2 * radius, radius : 3 * radius + 1]
    padded = x.index_select(dim, _border_index(size, radius, mode, x.device))
    out = padded.narrow(dim, 0, size) * float(taps[0])
    for k in range(1, 2 * radius + 1):
        out.add_(padded.narrow(dim, k, size), alpha=float(taps[k]))
    return out


def gaussian_filter(x: torch.Tensor, sigma_h: float, sigma_w: float, truncate: float, mode: str) -> torch.Tensor:
    """Separable Gaussian of float [..., H, W] (scipy's ``gaussian_filter`` on the two last axes)."""
    shape = x.shape
    x4 = x.reshape(-1, 1, *shape[-2:])
    return _blur_axis(_blur_axis(x4, sigma_w, truncate, mode, -1), sigma_h, truncate, mode, -2).reshape(shape).contiguous()


# -- glass_blur -------------------------------------------------------------------------------
def glass_moves(indices: torch.Tensor, count: int, delta: int, severity: int, seed: int, step: int) -> torch.Tensor:
    """int64 [N, count, 2]: (dx, dy) per visited pixel, uniform on {-delta, ..., delta - 1}."""
    u = uniform01(indices, 2 * count, f"glass_blur|{step}", severity, seed).view(-1, count, 2)
    return torch.floor(u * (2 * delta)).to(torch.int64) - delta


@functools.lru_cache(maxsize=32)
def _visited(height: int, width: int, delta: int, device: str) -> torch.Tensor:
    """Flat addresses of the pixels the reference visits, in its (descending) order."""
    rows = np.arange(height - delta, delta, -1)
    cols = np.arange(width - delta, delta, -1)
    return torch.from_numpy((rows[:, None] * width + cols[None, :]).ravel()).to(device)


def glass_blur(images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str) -> torch.Tensor:
    sigma, delta, passes = parameters(profile, "glass_blur", severity)
    n, c, height, width = images.shape
    size = height * width
    device = images.device
    first = gaussian_filter(images.to(torch.float64) / 255.0, sigma, sigma, 4.0, "nearest").mul_(255.0)
    first = first.to(torch.uint8).view(n, c, size)  # the reference's np.uint8(...) truncation
    visited = _visited(height, width, delta, str(device))
    is_visited = torch.zeros(size, dtype=torch.bool, device=device)
    is_visited[visited] = True
    source = torch.arange(size, device=device).expand(n, size).clone()
    identity = torch.arange(size, device=device).expand(n, size)
    for step in range(passes):
        moves = glass_moves(indices, visited.numel(), delta, severity, seed, step)
        target = identity.clone()
        target[:, visited] = visited + moves[..., 1] * width + moves[..., 0]
        # copies from an address visited earlier in this pass (higher address) follow its chain
        link = is_visited[target] & (target > identity)
        jump = torch.where(link, target, identity)
        for _ in range(max(1, math.ceil(math.log2(size))) + 1):
            jump = torch.gather(jump, 1, jump)
        source = torch.gather(source, 1, torch.gather(target, 1, jump))
    shuffled = torch.gather(first, 2, source.view(n, 1, size).expand(n, c, size)).view(n, c, height, width)
    return to_uint8(gaussian_filter(shuffled.to(torch.float64) / 255.0, sigma, sigma, 4.0, "nearest"))


# -- elastic_transform ------------------------------------------------------------------------
def _reflect_half(index: torch.Tensor, size: int) -> torch.Tensor:
    index = torch.remainder(index, 2 * size)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def _reflect_101(index: torch.Tensor, size: int) -> torch.Tensor:
    if size == 1:
        return torch.zeros_like(index)
    index = torch.remainder(index, 2 * size - 2)
    return torch.where(index >= size, 2 * size - 2 - index, index)


def _bilinear(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, reflect) -> torch.Tensor:
    """Sample float [N, C, H, W] at float64 coordinates [N, H, W], borders by ``reflect``."""
    n, c, height, width = x.shape
    y0, x0 = torch.floor(ys), torch.floor(xs)
    wy, wx = (ys - y0).to(x.dtype), (xs - x0).to(x.dtype)
    y0, x0 = y0.to(torch.int64), x0.to(torch.int64)
    flat = x.reshape(n, c, height * width)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        index = (reflect(yy, height) * width + reflect(xx, width)).reshape(n, 1, -1).expand(n, c, -1)
        return torch.gather(flat, 2, index).view(n, c, height, width)

    wy, wx = wy.unsqueeze(1), wx.unsqueeze(1)
    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


def _displacement(indices, shape, low, high, sigma_hw, alpha, part, severity, seed) -> torch.Tensor:
    """alpha * gaussian(U(low, high) [N, H, W], sigma, reflect, truncate 3), as float32 then float64."""
    height, width = shape
    u = uniform01(indices, height * width, f"elastic_transform|{part}", severity, seed).view(-1, height, width)
    field = gaussian_filter(u * (high - low) + low, sigma_hw[0], sigma_hw[1], 3.0, "reflect") * alpha
    return field.to(torch.float32).to(torch.float64)


def _affine_cifar(x: torch.Tensor, indices: torch.Tensor, jitter: float, severity: int, seed: int) -> torch.Tensor:
    """make_cifar_c's random affine warp: three points jittered by U(+-jitter), OpenCV warpAffine."""
    import cv2

    n, _, height, width = x.shape
    side = min(height, width)
    centre = np.float32([height, width]) // 2
    square = side // 3
    pts1 = np.float32([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    draws = uniform01(indices, 6, "elastic_transform|affine", severity, seed).cpu().numpy()
    inverse = []
    for row in draws:
        pts2 = pts1 + (row.reshape(3, 2) * (2 * jitter) - jitter).astype(np.float32)
        inverse.append(cv2.invertAffineTransform(cv2.getAffineTransform(pts1, pts2)))
    m = torch.from_numpy(np.stack(inverse)).to(x.device, torch.float64)  # [N, 2, 3]: dst -> src
    ys, xs = torch.meshgrid(
        torch.arange(height, device=x.device, dtype=torch.float64),
        torch.arange(width, device=x.device, dtype=torch.float64),
        indexing="ij",
    )
    src_x = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None]
    src_y = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]
    # OpenCV 5 samples float images at the exact coordinates (older versions: 1/32 pixel)
    return _bilinear(x, src_y, src_x, _reflect_101)


def elastic_transform(
    images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str
) -> torch.Tensor:
    n, c, height, width = images.shape
    x = images.to(torch.float32) / 255.0
    if profile == "cifar":
        side = min(height, width)
        alpha, sigma, jitter = (side * f for f in parameters(profile, "elastic_transform", severity))
        x = _affine_cifar(x, indices, jitter, severity, seed).to(torch.float32)
        low, high, sigmas = -1.0, 1.0, (sigma, sigma)
    else:
        alpha = parameters(profile, "elastic_transform", severity)
        low, high, sigmas = -height * 0.005, height * 0.005, (height * 0.01, width * 0.01)
    dx = _displacement(indices, (height, width), low, high, sigmas, alpha, "dx", severity, seed)
    dy = _displacement(indices, (height, width), low, high, sigmas, alpha, "dy", severity, seed)
    ys = torch.arange(height, device=images.device, dtype=torch.float64).view(1, -1, 1) + dy
    xs = torch.arange(width, device=images.device, dtype=torch.float64).view(1, 1, -1) + dx
    return to_uint8(_bilinear(x.to(torch.float64), ys, xs, _reflect_half))
