"""Gaussian-blurred view of a dataset (seed 003's data-quality axis).

The blur is computed on the fly, on whole batches, in torch: a separable
Gaussian with standard deviation ``radius`` pixels (the meaning of ``radius`` in
PIL's ``ImageFilter.GaussianBlur``), truncated at 4 sigma, with reflect padding
(``d c b | a b c d | c b a``), rounded and clamped back to uint8. It is
deterministic, so no cache is needed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from prunecheck.core.views import blur as blur_view
from prunecheck.data.base import DerivedDataset, ImageDataset, digest

#: Bump when the blur's output changes (part of the fingerprint).
BLUR_VERSION = "1"
#: Kernel half-width in standard deviations.
TRUNCATE = 4.0


def gaussian_kernel1d(radius: float, *, truncate: float = TRUNCATE) -> torch.Tensor:
    """Normalised 1-D Gaussian, float64 [2 * ceil(truncate * radius) + 1].

    ``k[i] ∝ exp(-(i - h)^2 / (2 radius^2))`` with ``h = ceil(truncate * radius)``;
    radius 0 gives the identity kernel ``[1.]``.
    """
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"blur radius: expected a finite number >= 0, found {radius!r}")
    if radius == 0:
        return torch.ones(1, dtype=torch.float64)
    half = int(math.ceil(truncate * radius))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / radius) ** 2)
    return k / k.sum()


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices [n + 2 pad] into a length-n axis, reflected at both ends (any pad size)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def gaussian_blur_batch(images: torch.Tensor, radius: float) -> torch.Tensor:
    """Blur a batch of uint8 images with a Gaussian of standard deviation ``radius``.

    Args:
        images: uint8 [B, C, H, W].
        radius: standard deviation in pixels, >= 0 (0 returns the input unchanged).

    Returns:
        uint8 [B, C, H, W]: ``clamp(round(G_radius * images), 0, 255)``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"gaussian_blur_batch: expected uint8 [B, C, H, W], found {images.dtype} {tuple(images.shape)}"
        )
    kernel = gaussian_kernel1d(float(radius))
    if kernel.numel() == 1:
        return images.clone()
    b, c, h, w = images.shape
    pad = kernel.numel() // 2
    device = images.device
    x = images.to(torch.float32)
    k = kernel.to(device=device, dtype=torch.float32)
    # Along W: gather reflected columns, then a 1-D convolution over rows of pixels.
    x = x.index_select(3, _reflect_index(w, pad, device))
    x = F.conv1d(x.reshape(b * c * h, 1, w + 2 * pad), k.view(1, 1, -1)).reshape(b, c, h, w)
    # Along H: same on the transposed image.
    x = x.index_select(2, _reflect_index(h, pad, device))
    x = x.permute(0, 1, 3, 2).reshape(b * c * w, 1, h + 2 * pad)
    x = F.conv1d(x, k.view(1, 1, -1)).reshape(b, c, w, h).permute(0, 1, 3, 2)
    return x.round_().clamp_(0, 255).to(torch.uint8).contiguous()


class BlurredDataset(DerivedDataset):
    """``base`` with every image Gaussian-blurred by ``radius`` pixels (0 = identity).

    Args:
        base: the nominal dataset.
        radius: standard deviation in pixels, >= 0.
    """

    def __init__(self, base: ImageDataset, radius: float):
        gaussian_kernel1d(float(radius))  # validates
        super().__init__(base, blur_view(float(radius)))
        self.radius = float(radius)
        self._fingerprint = (
            base.fingerprint()
            if self.radius == 0
            else digest(base.fingerprint(), "blur", self.radius, TRUNCATE, BLUR_VERSION)
        )

    def images(self, indices: np.ndarray) -> torch.Tensor:
        return gaussian_blur_batch(self.base.images(indices), self.radius)

    def fingerprint(self) -> str:
        return self._fingerprint
