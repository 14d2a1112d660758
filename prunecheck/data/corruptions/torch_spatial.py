"""Batched torch zoom_blur, motion_blur and fog (the corruptions that move or add structure).

Same conventions as :mod:`prunecheck.data.corruptions.torch_backend` (which dispatches here):
uint8 [N, 3, H, W] in and out, constants from :mod:`prunecheck.data.corruptions.profiles`,
random draws from :mod:`prunecheck.data.corruptions.torch_random` (per image index, so an
image's output depends on nothing else in its batch).

* ``zoom_blur`` (deterministic): scipy's order-1 zoom of the central crop is a two-tap
  linear interpolation per axis, done as gathers for all zoom factors at once; the
  zoomed layer is cut at the top-left (imagenet, imagecorruptions) or about the centre
  (cifar, make_cifar_c.py). Float32 instead of the reference's float32-after-float64.
* ``motion_blur`` (random angle): imagecorruptions' kernel, a Gaussian-weighted sum of
  the image shifted along the angle with edge replication, as one flat gather per tap over
  the batch; taps stop where a shift leaves the image, as in the reference.
* ``fog`` (random plasma): the diamond-square plasma of every image of the batch at
  once, with uniform draws discretised to 2^16 levels.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from prunecheck.data.corruptions.profiles import parameters
from prunecheck.data.corruptions.torch_random import to_uint8, uniform01

#: Upper bound on elements of one zoom_blur intermediate (images are processed in sub-chunks).
_ZOOM_MAX_ELEMENTS = 1 << 24


# -- zoom_blur --------------------------------------------------------------------------------
def _zoom_taps(
    size: int, factor: float, centre_trim: bool, keep_all: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel (0..size-1): the two source indices and the weight of the second.

    The central ``ceil(size / factor)`` pixels (offset ``(size - crop) // 2``) are zoomed to
    ``round(crop * factor)`` with scipy's mapping ``in = out (crop - 1) / (zoomed - 1)``;
    the kept window starts at 0 (imagecorruptions) or at ``(zoomed - size) // 2`` (cifar);
    ``keep_all`` keeps all ``zoomed`` output pixels (imagecorruptions' snow layer).
    """
    crop = int(np.ceil(size / float(factor)))
    top = (size - crop) // 2
    zoomed = int(round(crop * factor))
    start = (zoomed - size) // 2 if centre_trim else 0
    out = np.arange(start, start + size, dtype=np.float64) if not keep_all else np.arange(zoomed, dtype=np.float64)
    coord = out * (crop - 1) / (zoomed - 1) if zoomed > 1 else np.zeros_like(out)
    low = np.clip(np.floor(coord), 0, crop - 1)
    high = np.minimum(low + 1, crop - 1)
    weight = coord - low
    return (low + top).astype(np.int64), (high + top).astype(np.int64), weight


@functools.lru_cache(maxsize=32)
def _zoom_ops(height: int, width: int, severity: int, profile: str, device: str):
    """Concatenated taps of all zoom factors: rows [F*H] (i0, i1, w1) and columns [F, W] likewise."""
    start, stop, step = parameters(profile, "zoom_blur", severity)
    factors = np.arange(start, stop, step)
    centre = profile == "cifar"
    rows = [_zoom_taps(height, f, centre) for f in factors]
    cols = [_zoom_taps(width, f, centre) for f in factors]

    def stack(parts, axis_join):
        i0 = torch.from_numpy(axis_join([p[0] for p in parts])).to(device)
        i1 = torch.from_numpy(axis_join([p[1] for p in parts])).to(device)
        w1 = torch.from_numpy(axis_join([p[2] for p in parts])).to(device, torch.float32)
        return i0, i1, w1

    return len(factors), stack(rows, np.concatenate), stack(cols, np.stack)


def zoom_blur(images: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    """``(x + sum_f zoom_f(x)) / (F + 1)``, truncated to uint8."""
    n, c, height, width = images.shape
    count, (r0, r1, rw), (c0, c1, cw) = _zoom_ops(height, width, severity, profile, str(images.device))
    step = max(1, _ZOOM_MAX_ELEMENTS // (count * c * height * width))
    outs = []
    for begin in range(0, n, step):
        x = images[begin : begin + step].to(torch.float32) / 255.0
        m = x.shape[0]
        # along H for all factors: [m, c, F*H, W]
        y = x.index_select(2, r0).mul_(1 - rw.view(-1, 1)).add_(x.index_select(2, r1).mul_(rw.view(-1, 1)))
        y = y.view(m, c, count, height, width)
        # along W, per factor: gather with [F, W] indices
        i0 = c0.view(1, 1, count, 1, width).expand(m, c, count, height, width)
        i1 = c1.view(1, 1, count, 1, width).expand(m, c, count, height, width)
        w1 = cw.view(1, 1, count, 1, width)
        z = torch.gather(y, 4, i0).mul_(1 - w1).add_(torch.gather(y, 4, i1).mul_(w1))
        outs.append(to_uint8((x + z.sum(dim=2)) / (count + 1)))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


# -- motion_blur ------------------------------------------------------------------------------
#: From this many pixels per image on, motion_sum shifts by slicing one image at a time.
_MOTION_SLICE_MIN_PIXELS = 64 * 64


def _motion_taps(radius: float, sigma: float) -> tuple[int, np.ndarray]:
    """imagecorruptions' motion kernel: width 2 radius + 1, Gaussian weights over 0..width-1."""
    width = int(radius * 2 + 1)
    taps = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    return width, kernel / kernel.sum()


def motion_blur(
    images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str
) -> torch.Tensor:
    """Gaussian-weighted shifts along an angle ~ U(-45, 45) degrees per image."""
    radius, sigma = parameters(profile, "motion_blur", severity)
    degrees = uniform01(indices, 1, "motion_blur", severity, seed)[:, 0] * 90.0 - 45.0
    return motion_blur_at(images, degrees, radius, sigma)


def motion_blur_at(images: torch.Tensor, degrees: torch.Tensor, radius: float, sigma: float) -> torch.Tensor:
    """imagecorruptions' motion blur of each image at its angle (float64 [N], degrees), to uint8."""
    out = motion_sum(images.to(torch.float32), degrees, radius, sigma)
    return out.clamp_(0.0, 255.0).to(torch.uint8)


def motion_sum(images: torch.Tensor, degrees: torch.Tensor, radius: float, sigma: float) -> torch.Tensor:
    """The motion-blur sum of float [N, C, H, W] (no clipping, no conversion)."""
    n, c, height, width = images.shape
    device = images.device
    taps, kernel = _motion_taps(radius, sigma)
    angle = torch.deg2rad(degrees.to(device, torch.float64))
    # the reference: point = (taps sin, taps cos) / hypot -> unit direction (sin, cos)
    i = torch.arange(taps, dtype=torch.float64, device=device)
    dy = -torch.ceil(i.view(1, -1) * torch.sin(angle).view(-1, 1) - 0.5).to(torch.int64)  # [n, taps]
    dx = -torch.ceil(i.view(1, -1) * torch.cos(angle).view(-1, 1) - 0.5).to(torch.int64)
    inside = (dy.abs() < height) & (dx.abs() < width)
    inside = torch.cumprod(inside.to(torch.int64), dim=1).bool()  # the reference stops at the first exit
    ys = torch.arange(height, device=device).view(1, -1)
    xs = torch.arange(width, device=device).view(1, -1)
    weights = torch.from_numpy(kernel).to(device, images.dtype)
    out = torch.zeros_like(images)
    if height * width >= _MOTION_SLICE_MIN_PIXELS and device.type == "cpu":
        # large images on the CPU: each shift is a window of the edge-replicated image
        # (contiguous rows) instead of a gather; the same values and the same sums
        pad = taps - 1
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
        first_rows, first_cols = (pad - dy).tolist(), (pad - dx).tolist()
        active_taps = inside.sum(dim=1).tolist()
        for i in range(n):
            for tap in range(active_taps[i]):
                top, left = first_rows[i][tap], first_cols[i][tap]
                out[i].add_(padded[i, :, top : top + height, left : left + width] * weights[tap])
        return out
    flat = images.reshape(n, c, height * width)
    for tap in range(taps):
        active = inside[:, tap]
        if not bool(active.any()):
            break
        # shifted[y, x] = image[clamp(y - dy), clamp(x - dx)] (edge rows / columns replicated):
        # one gather per tap through a per-image flat index
        src_y = (ys - dy[:, tap].view(-1, 1)).clamp_(0, height - 1).mul_(width)
        src_x = (xs - dx[:, tap].view(-1, 1)).clamp_(0, width - 1)
        source = (src_y.view(n, height, 1) + src_x.view(n, 1, width)).view(n, 1, -1).expand(n, c, -1)
        shifted = torch.gather(flat, 2, source).view(n, c, height, width)
        scale = (weights[tap] * active.to(images.dtype)).view(n, 1, 1, 1)
        out.add_(shifted.mul_(scale))
    return out


# -- fog --------------------------------------------------------------------------------------
def plasma_batch(
    indices: torch.Tensor, size: int, decay: float, severity: int, seed: int
) -> torch.Tensor:
    """float64 [N, size, size] diamond-square height maps in [0, 1], one per image index.

    The reference's recursion (``compat.plasma_fractal``) with a leading batch dimension;
    each level's perturbations ``amp * U(-amp, amp)`` come from their own counter stream.
    """
    if size < 1 or size & (size - 1):
        raise ValueError(f"plasma_batch: expected a power-of-two size, found {size}")
    n = indices.shape[0]
    grid = torch.zeros((n, size, size), dtype=torch.float64, device=indices.device)
    step, amp, level = size, 100.0, 0

    def perturbed(total: torch.Tensor, part: str) -> torch.Tensor:
        u = uniform01(indices, total[0].numel(), f"fog|{level}|{part}", severity, seed).view_as(total)
        return total / 4 + amp * (u * (2 * amp) - amp)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0::step, 0::step]
        total = corners + torch.roll(corners, -1, dims=1)
        total = total + torch.roll(total, -1, dims=2)
        grid[:, half::step, half::step] = perturbed(total, "square")
        centres = grid[:, half::step, half::step]
        corners = grid[:, 0::step, 0::step]
        rows = (centres + torch.roll(centres, 1, dims=1)) + (corners + torch.roll(corners, -1, dims=2))
        grid[:, 0::step, half::step] = perturbed(rows, "rows")
        cols = (centres + torch.roll(centres, 1, dims=2)) + (corners + torch.roll(corners, -1, dims=1))
        grid[:, half::step, 0::step] = perturbed(cols, "cols")
        step, amp, level = half, amp / decay, level + 1
    grid -= grid.amin(dim=(1, 2), keepdim=True)
    return grid / grid.amax(dim=(1, 2), keepdim=True)


def fog(images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str) -> torch.Tensor:
    """``clip((x + s plasma) max(x) / (max(x) + s), 0, 1)``, per image, plasma side the next
    power of two of max(H, W, 3), cropped to the image."""
    strength, decay = parameters(profile, "fog", severity)
    n, _, height, width = images.shape
    size = 1 << (max(height, width, 3) - 1).bit_length()
    haze = plasma_batch(indices, size, decay, severity, seed)[:, :height, :width].unsqueeze(1)
    x = images.to(torch.float64) / 255.0
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return to_uint8((x + strength * haze) * peak / (peak + strength))



def zoom_plane(x: torch.Tensor, factor: float, centre_trim: bool) -> torch.Tensor:
    """One order-1 zoom of float [N, H, W] about the centre: trimmed to H x W (``centre_trim``)
    or, as imagecorruptions' ``clipped_zoom``, the whole zoomed crop."""
    n, height, width = x.shape
    r0, r1, rw = (torch.from_numpy(a).to(x.device) for a in _zoom_taps(height, factor, centre_trim, not centre_trim))
    c0, c1, cw = (torch.from_numpy(a).to(x.device) for a in _zoom_taps(width, factor, centre_trim, not centre_trim))
    rw, cw = rw.to(x.dtype), cw.to(x.dtype)
    y = x.index_select(1, r0) * (1 - rw.view(-1, 1)) + x.index_select(1, r1) * rw.view(-1, 1)
    return y.index_select(2, c0) * (1 - cw) + y.index_select(2, c1) * cw
