"""Batched torch frost and snow.

Conventions as in :mod:`prunecheck.data.corruptions.torch_backend` (which dispatches here).
Both are deterministic given their draws and written to give the reference's output
when fed the reference's own draws (tested); the draws come from
:mod:`prunecheck.data.corruptions.torch_random`.

* ``frost``: the five textures are read from the installed imagecorruptions package
  (prunecheck does not ship them: their provenance is not stated) and scaled on the
  CPU once per image size, exactly as the reference path scales them; every image
  then blends a window of its texture (gathered for the whole batch; sliced per image
  for large images on the CPU) through a
  table of the float64 blend of every (pixel, texture) value pair.
* ``snow``: a normal field (from inverse-CDF draws), its order-1 centre zoom, the
  threshold, imagecorruptions' motion blur at an angle ~ U(-135, -45) degrees, 8-bit
  rounding, and the brightening blend, all batched.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from prunecheck.data.corruptions import torch_spatial
from prunecheck.data.corruptions.profiles import parameters
from prunecheck.data.corruptions.torch_random import (
    UNIFORM_BITS, standard_normal_table, to_uint8, uniform01, uniform_bits,
)

#: Textures the benchmark draws among (the first five of the six shipped with imagecorruptions).
FROST_TEXTURES = 5
#: From this many pixels per image on, frost copies each image's window by slicing.
_FROST_SLICE_MIN_PIXELS = 64 * 64


# -- frost ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _textures(height: int, width: int, profile: str, device: str) -> tuple[torch.Tensor, ...]:
    """The five scaled textures as RGB uint8 [3, h_k, w_k], scaled as the reference path does."""
    if profile == "cifar":
        from prunecheck.data.corruptions.cifar_c import _cifar_frost_texture as scaled
    else:
        from prunecheck.data.corruptions.compat import _frost_texture as scaled
    out = []
    for k in range(FROST_TEXTURES):
        bgr = scaled(k, height, width)
        out.append(torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))).to(device))
    return tuple(out)


def frost_choices(indices: torch.Tensor, sizes: list[tuple[int, int]], height: int, width: int,
                  severity: int, seed: int) -> torch.Tensor:
    """int64 [N, 3]: (texture k, top, left) per image; top ~ U{0 .. h_k - H - 1}, left likewise."""
    u = uniform01(indices, 3, "frost", severity, seed)
    k = torch.floor(u[:, 0] * FROST_TEXTURES).to(torch.int64)
    spans = torch.tensor(sizes, dtype=torch.float64, device=u.device)[k]  # [N, 2]
    top = torch.floor(u[:, 1] * (spans[:, 0] - height)).to(torch.int64)
    left = torch.floor(u[:, 2] * (spans[:, 1] - width)).to(torch.int64)
    return torch.stack((k, top, left), dim=1)


def frost(images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str) -> torch.Tensor:
    """``clip(a x + b window, 0, 255)`` (float64), truncated to uint8."""
    image_weight, frost_weight = parameters(profile, "frost", severity)
    n, c, height, width = images.shape
    textures = _textures(height, width, profile, str(images.device))
    sizes = [tuple(t.shape[1:]) for t in textures]
    choice = frost_choices(indices, sizes, height, width, severity, seed).to(images.device)
    window = torch.empty_like(images)
    if height * width >= _FROST_SLICE_MIN_PIXELS and images.device.type == "cpu":
        # large images on the CPU: one window copy per image instead of index gathers
        for i, (k, top, left) in enumerate(choice.tolist()):
            window[i] = textures[k][:, top : top + height, left : left + width]
    else:
        _gather_windows(window, textures, choice)
    # one lookup per value in a table of the reference's float64 blend of every (x, t) pair
    pair = images.to(torch.int32).mul_(256).add_(window.to(torch.int32))
    table = _frost_blend_table(image_weight, frost_weight, str(images.device))
    return table.index_select(0, pair.view(-1)).view_as(images)


def _gather_windows(window: torch.Tensor, textures: tuple[torch.Tensor, ...], choice: torch.Tensor) -> None:
    """window[i] = textures[k_i] cropped at (top_i, left_i), one gather per texture for the batch."""
    _, c, height, width = window.shape
    ys = torch.arange(height, device=window.device).view(1, -1, 1)
    xs = torch.arange(width, device=window.device).view(1, 1, -1)
    for k, texture in enumerate(textures):
        rows = (choice[:, 0] == k).nonzero().flatten()
        if rows.numel() == 0:
            continue
        tw = texture.shape[2]
        flat = ((choice[rows, 1].view(-1, 1, 1) + ys) * tw + choice[rows, 2].view(-1, 1, 1) + xs).view(len(rows), -1)
        window[rows] = texture.reshape(c, -1)[:, flat].permute(1, 0, 2).reshape(len(rows), c, height, width)


@functools.lru_cache(maxsize=16)
def _frost_blend_table(image_weight: float, frost_weight: float, device: str) -> torch.Tensor:
    """uint8 [256 * 256]: ``uint8(clip(a x + b t, 0, 255))`` (float64) at index ``256 x + t``."""
    x = torch.arange(256, dtype=torch.float64).view(-1, 1)
    mixed = image_weight * x + frost_weight * x.view(1, -1)
    return mixed.clamp_(0.0, 255.0).to(torch.uint8).reshape(-1).to(device)


# -- snow -------------------------------------------------------------------------------------
def snow_draws(indices: torch.Tensor, height: int, width: int, loc: float, scale: float,
               severity: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(normal field float64 [N, H, W] with mean ``loc`` and std ``scale``, angle [N] in degrees)."""
    # one stream: the field's H * W inverse-CDF normals, then the angle's uniform
    bits = uniform_bits(indices, height * width + 1, "snow", severity, seed)
    z = standard_normal_table(str(indices.device)).index_select(0, bits[:, :-1].reshape(-1))
    angle = (bits[:, -1].to(torch.float64) + 0.5) / (1 << UNIFORM_BITS)  # uniform01's formula
    return z.view(-1, height, width) * scale + loc, angle * 90.0 - 135.0


def snow(images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, weight = parameters(profile, "snow", severity)
    n, c, height, width = images.shape
    field, degrees = snow_draws(indices, height, width, loc, scale, severity, seed)
    cifar = profile == "cifar"
    layer = torch_spatial.zoom_plane(field, zoom, centre_trim=cifar)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp_(0.0, 1.0)
    if cifar:  # make_cifar_c hands ImageMagick an 8-bit layer
        layer = torch.floor(layer * 255) / 255.0
    blurred = torch_spatial.motion_sum(layer.unsqueeze(1), degrees, radius, sigma)[:, :, :height, :width]
    layer = torch.round(blurred.clamp(0.0, 1.0) * 255) / 255.0 if cifar else torch.round(blurred * 255) / 255.0
    x = images.to(torch.float32) / 255.0
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # OpenCV's RGB2GRAY
    x = weight * x + (1 - weight) * torch.maximum(x, grey * 1.5 + 0.5)
    return to_uint8(x.to(torch.float64) + layer + torch.flip(layer, dims=(2, 3)))
