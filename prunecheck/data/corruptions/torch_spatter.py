"""Batched torch spatter: water drops (OpenCV edge pipeline) and mud.

Conventions as in :mod:`prunecheck.data.corruptions.torch_backend` (which dispatches here).
The reference is :func:`prunecheck.data.corruptions.compat.spatter` (imagecorruptions'
spatter with the 0 / 0 fix). Its only randomness is one normal field per image; given
that field every step below reproduces the reference's arithmetic, integer for integer
where OpenCV works on integers (tested against OpenCV and the reference fed numpy's
draws):

* the field is smoothed as scipy's ``gaussian_filter`` (mode ``nearest``, truncate 4):
  axis 0 then axis 1, each tap pair summed in scipy's order, in float64 (float32 for
  the mud mask, rounded after each axis as scipy writes a float32 output);
* water: ``cv2.Canny(liquid8, 50, 150)`` (3 x 3 Sobel with replicated borders, L1
  magnitude, OpenCV's integer non-maximum suppression, hysteresis by iterated 3 x 3
  dilation inside the candidate pixels until nothing changes);
  ``cv2.distanceTransform(DIST_L2, 5)``, which is the 5 x 5 chamfer distance (weights
  1, 1.4, 2.1969), not the Euclidean one, summed in float32 move by move as OpenCV's
  two raster passes do: relaxation of the forward-pass moves, then of the backward-pass
  ones, until nothing changes (see :func:`chamfer_distance`); the 3 x 3 box filters, ``equalizeHist`` (per-image histogram and LUT, float32
  scale, rounding half to even) and the emboss filter, all with reflect-101 borders;
* mud: the smoothed float32 mask, its 0.8 cut and the brown blend (float64).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from prunecheck.data.corruptions.profiles import parameters
from prunecheck.data.corruptions.torch_random import standard_normal

#: Colours of the reference (RGB order of the image array), 0..255.
WATER_COLOUR = (175, 238, 238)
MUD_COLOUR = (63, 42, 20)
#: cv2.Canny thresholds of the reference.
CANNY_LOW, CANNY_HIGH = 50, 150
#: OpenCV's DIST_L2 5 x 5 chamfer weights (float32): axial (1, 0), diagonal (1, 1), knight (2, 1).
_AXIAL, _DIAGONAL, _KNIGHT = (float(np.float32(w)) for w in (1.0, 1.4, 2.1969))
#: Moves (dy, dx) of OpenCV's forward pass (from the rows above and the pixel to the left);
#: the backward pass uses their opposites.
_FORWARD_MOVES = (((2, 1), _KNIGHT), ((2, -1), _KNIGHT), ((1, 2), _KNIGHT), ((1, 1), _DIAGONAL),
                  ((1, 0), _AXIAL), ((1, -1), _DIAGONAL), ((1, -2), _KNIGHT), ((0, 1), _AXIAL))
_BACKWARD_MOVES = tuple(((-dy, -dx), w) for (dy, dx), w in _FORWARD_MOVES)
#: The reference truncates distances at 20 pixels.
DIST_CAP = 20
#: Pixels per group of images on the CPU (the edge and distance passes stay in cache).
CPU_GROUP_PIXELS = 1 << 18
#: Frame around each image in the distance transform (the longest chamfer move).
_FRAME = 2
#: Whole-image sweeps of each distance pass before sweeping from the changed pixels only.
_DENSE_SWEEPS = 8
#: cvRound(tan(22.5 deg) * 2^15), OpenCV's sector test.
_TG22 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
_EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))


def spatter_field(indices: torch.Tensor, height: int, width: int, loc: float, scale: float,
                  severity: int, seed: int) -> torch.Tensor:
    """float64 [N, H, W]: the liquid's normal field (mean ``loc``, std ``scale``), inverse-CDF draws."""
    z = standard_normal(indices, height * width, "spatter", severity, seed)
    return (z * scale + loc).view(-1, height, width)


# -- scipy's Gaussian --------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _scipy_gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy's 1-D Gaussian weights (its formula, so the same float64 values), centre first."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    phi = phi / phi.sum()
    return tuple(float(v) for v in phi[radius:])


def _gaussian_axis(x: torch.Tensor, sigma: float, dim: int) -> torch.Tensor:
    """scipy's symmetric ``correlate1d`` with mode ``nearest`` along ``dim`` of float64 x:
    ``x[i] w0 + (x[i - r] + x[i + r]) w_r + ... + (x[i - 1] + x[i + 1]) w_1``, in that order."""
    weights = _scipy_gaussian_weights(sigma)
    radius = len(weights) - 1
    size = x.shape[dim]
    index = torch.arange(-radius, size + radius, device=x.device).clamp_(0, size - 1)
    padded = x.index_select(dim, index)
    out = x * weights[0]
    for r in range(radius, 0, -1):
        pair = padded.narrow(dim, radius - r, size) + padded.narrow(dim, radius + r, size)
        out = out + pair * weights[r]  # separate multiply and add: no fused rounding
    return out


def scipy_gaussian(x: torch.Tensor, sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter(x, sigma, mode="nearest")`` of [N, H, W] images, output ``dtype``
    (float32: rounded after each axis, as scipy writing into a float32 output)."""
    out = _gaussian_axis(x.to(torch.float64), sigma, 1).to(dtype)
    return _gaussian_axis(out.to(torch.float64), sigma, 2).to(dtype)


# -- small integer filters ---------------------------------------------------------------------
def _pad(x: torch.Tensor, mode: str) -> torch.Tensor:
    """[N, H, W] padded by one pixel: ``replicate`` (aaa|abc|ccc) or ``reflect101`` (b|abc|b)."""
    height, width = x.shape[1:]

    def index(size: int) -> torch.Tensor:
        i = torch.arange(-1, size + 1, device=x.device)
        if mode == "replicate":
            return i.clamp_(0, size - 1)
        return torch.where(i < 0, -i, torch.where(i >= size, 2 * (size - 1) - i, i))

    return x.index_select(1, index(height)).index_select(2, index(width))


def _correlate3(x: torch.Tensor, kernel, mode: str) -> torch.Tensor:
    """3 x 3 correlation of integer [N, H, W] with an integer kernel (exact, int32)."""
    height, width = x.shape[1:]
    p = _pad(x.to(torch.int32), mode)
    out = torch.zeros(x.shape, dtype=torch.int32, device=x.device)
    for dy in range(3):
        for dx in range(3):
            w = int(kernel[dy][dx])
            if w:
                out += p[:, dy : dy + height, dx : dx + width] * w
    return out


_BOX = ((1, 1, 1), (1, 1, 1), (1, 1, 1))


def _box_sum_float64(x: torch.Tensor) -> torch.Tensor:
    """float64 3 x 3 sums of float32 [N, H, W] with reflect-101 borders (exact for these values)."""
    height, width = x.shape[1:]
    p = _pad(x.to(torch.float64), "reflect101")
    rows = p[:, :, 0:width] + p[:, :, 1 : width + 1] + p[:, :, 2 : width + 2]
    return rows[:, 0:height] + rows[:, 1 : height + 1] + rows[:, 2 : height + 2]


# -- Canny --------------------------------------------------------------------------------------
def _neighbour(p: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """From a one-pixel padded [N, H + 2, W + 2]: the value at (y + dy, x + dx) for every pixel."""
    height, width = p.shape[1] - 2, p.shape[2] - 2
    return p[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]


def canny(gray: torch.Tensor, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> torch.Tensor:
    """bool [N, H, W]: ``cv2.Canny(gray, low, high)`` (aperture 3, L1 gradient) of uint8 [N, H, W].

    Sobel derivatives with replicated borders; a pixel is a candidate when its magnitude
    exceeds ``low`` and its neighbours across the gradient sector (OpenCV's integer
    tan 22.5 test; zero outside the image); strong when it also exceeds ``high``; the edges
    are the candidates 8-connected to a strong one.
    """
    height, width = gray.shape[1:]
    g = _pad(gray.to(torch.int16), "replicate")  # |derivatives| <= 1020: int16 is exact
    smooth_rows = g[:, 0:height] + 2 * g[:, 1 : height + 1] + g[:, 2 : height + 2]  # [N, H, W + 2]
    gx = smooth_rows[:, :, 2:] - smooth_rows[:, :, :width]
    smooth_cols = g[:, :, 0:width] + 2 * g[:, :, 1 : width + 1] + g[:, :, 2 : width + 2]  # [N, H + 2, W]
    gy = smooth_cols[:, 2:] - smooth_cols[:, :height]
    ax, ay = gx.abs(), gy.abs()
    mag = ax + ay
    pm = torch.nn.functional.pad(mag, (1, 1, 1, 1))  # magnitude 0 outside the image
    ax, ay = ax.to(torch.int32), ay.to(torch.int32) << 15
    tg22x = ax * _TG22
    horizontal = ay < tg22x
    axial = horizontal | (ay > tg22x + (ax << 16))  # horizontal or vertical sector
    same_sign = (gx ^ gy) >= 0
    # the two neighbours across the sector: (left, right), (up, down), (up-left, down-right)
    # for a diagonal with dx, dy of one sign, else (up-right, down-left)
    before = torch.where(horizontal, _neighbour(pm, 0, -1), torch.where(
        axial, _neighbour(pm, -1, 0), torch.where(same_sign, _neighbour(pm, -1, -1), _neighbour(pm, -1, 1))))
    after = torch.where(horizontal, _neighbour(pm, 0, 1), torch.where(
        axial, _neighbour(pm, 1, 0), torch.where(same_sign, _neighbour(pm, 1, 1), _neighbour(pm, 1, -1))))
    # OpenCV: strictly above the first, at least the second (strictly both on diagonals)
    peak = (mag > before) & ((mag > after) | ((mag == after) & axial))
    candidate = peak & (mag > low)
    edges = candidate & (mag > high)
    return _hysteresis(edges, candidate)


def _dilate3(x: torch.Tensor) -> torch.Tensor:
    """bool [N, H, W]: 3 x 3 dilation (outside the image counts as False), separable."""
    height, width = x.shape[1:]
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    rows = p[:, :, 0:width] | p[:, :, 1 : width + 1] | p[:, :, 2 : width + 2]
    return rows[:, 0:height] | rows[:, 1 : height + 1] | rows[:, 2 : height + 2]


def _hysteresis(edges: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Grow ``edges`` inside ``candidate`` by 3 x 3 dilation until it stops changing."""
    grown = edges
    while True:
        before = grown
        for _ in range(4):  # a few steps per convergence check (each check syncs a GPU)
            grown = _dilate3(grown) & candidate
        if torch.equal(before, grown):
            return grown


# -- OpenCV's 5 x 5 chamfer distance -----------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _chamfer_steps(height: int, width: int, device: str):
    """The moves of each pass on the flat framed layout, and the frame penalty.

    The images are laid out flat with a 2-pixel frame (every move reaches at most 2
    pixels), so a move is one contiguous shifted slice; frame targets get a huge weight,
    which keeps the frame at the cap: paths cannot leave the image, as in OpenCV.

    Returns:
        ((per move: (flat offset, weight, float32 [L - |offset|] weight + penalty of each
        target)) for the forward and the backward pass, float32 [L] frame penalty).
    """
    stride = width + 2 * _FRAME
    size = (height + 2 * _FRAME) * stride
    frame = torch.ones(height + 2 * _FRAME, stride, dtype=torch.bool)
    frame[_FRAME:-_FRAME, _FRAME:-_FRAME] = False
    penalty = frame.reshape(-1).to(torch.float32) * 1e6
    passes = []
    for moves in (_FORWARD_MOVES, _BACKWARD_MOVES):
        steps = []
        for (dy, dx), weight in moves:
            offset = dy * stride + dx  # target = source + offset
            lo, hi = max(offset, 0), size + min(offset, 0)
            steps.append((offset, weight, (penalty[lo:hi] + weight).to(device)))
        passes.append(tuple(steps))
    return tuple(passes), penalty.to(device)


def _relax(flat: torch.Tensor, steps, buffer: torch.Tensor) -> None:
    """In place on [N, L]: target = min(target, source + weight) for each move, float32 sums."""
    size = flat.shape[1]
    for offset, _, weight in steps:
        lo, hi = max(offset, 0), size + min(offset, 0)
        target = flat[:, lo:hi]
        candidate = buffer[:, lo:hi]
        torch.add(flat[:, lo - offset : hi - offset], weight, out=candidate)
        torch.minimum(target, candidate, out=target)


def _relax_from(flat: torch.Tensor, sources: torch.Tensor, steps, penalty: torch.Tensor) -> torch.Tensor:
    """In place on [N, L]: the same moves, from the listed sources only (flat indices into
    N * L; sources are image pixels, so every target lies in the same framed image).

    Returns:
        int64 [M]: the distinct pixels whose value went down (the next sweep's sources).
    """
    size = flat.shape[1]
    values = flat.view(-1)
    offsets = torch.tensor([offset for offset, _, _ in steps], device=sources.device)
    targets = sources.view(1, -1) + offsets.view(-1, 1)  # [moves, K]
    before = values.index_select(0, targets.view(-1))
    start = values.index_select(0, sources)
    for move, (_, weight, _) in enumerate(steps):
        candidate = (start + weight) + penalty.index_select(0, targets[move] % size)
        values.scatter_reduce_(0, targets[move], candidate, reduce="amin")
    lowered = values.index_select(0, targets.view(-1)) < before
    return torch.unique(targets.view(-1)[lowered])


def chamfer_distance(edges: torch.Tensor) -> torch.Tensor:
    """float32 [N, H, W]: ``cv2.distanceTransform(255 - edges, DIST_L2, 5)`` truncated at 20.

    OpenCV's two raster passes give each pixel the smallest float32 sum, accumulated
    move by move from an edge pixel, over paths of forward-mask moves (the forward pass)
    followed by backward-mask moves (the backward pass). Each pass's moves form an acyclic
    graph, so those minima are the unique fixed point of relaxing the pass's moves in any
    order until nothing changes: here a few whole-image sweeps, then sweeps from the pixels
    the previous sweep lowered (a few percent of the image by then). Starting from the cap
    (20) instead of infinity gives the truncated result directly: no path through a capped
    pixel gets below the cap, and a distance up to the cap takes at most ``cap`` moves, so
    each pass needs at most ``cap`` sweeps.
    """
    n, height, width = edges.shape
    framed = torch.full((n, height + 2 * _FRAME, width + 2 * _FRAME), float(DIST_CAP), device=edges.device)
    framed[:, _FRAME:-_FRAME, _FRAME:-_FRAME].masked_fill_(edges, 0.0)
    flat = framed.view(n, -1)
    buffer = torch.empty_like(flat)
    passes, penalty = _chamfer_steps(height, width, str(edges.device))
    for steps in passes:
        for _ in range(_DENSE_SWEEPS - 1):
            _relax(flat, steps, buffer)
        before = flat.clone()
        _relax(flat, steps, buffer)
        sources = (flat.view(-1) != before.view(-1)).nonzero().flatten()
        for _ in range(DIST_CAP - _DENSE_SWEEPS):
            if sources.numel() == 0:
                break
            sources = _relax_from(flat, sources, steps, penalty)
    return framed[:, _FRAME:-_FRAME, _FRAME:-_FRAME]


# -- histogram equalisation --------------------------------------------------------------------
def equalize_hist(gray: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W]: ``cv2.equalizeHist`` of each uint8 image (256-bin LUT per image)."""
    n = gray.shape[0]
    flat = gray.reshape(n, -1).to(torch.int64)
    total = flat.shape[1]
    hist = torch.zeros(n, 256, dtype=torch.int64, device=gray.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int8).argmax(dim=1, keepdim=True)  # the lowest value present
    first_count = hist.gather(1, first)
    # float32 scale 255 / (total - hist[first]); lut[v] = round(sum_{first < u <= v} hist[u] * scale)
    denominator = (total - first_count).clamp_(min=1).to(torch.float32)
    scale = torch.full_like(denominator, 255.0) / denominator
    above = torch.arange(256, device=gray.device).view(1, -1) > first
    running = torch.cumsum(hist * above, dim=1)
    lut = torch.round(running.to(torch.float32) * scale).clamp_(0, 255).to(torch.uint8)
    lut = torch.where(first_count == total, first.to(torch.uint8).expand(-1, 256), lut)  # one value only
    return lut.gather(1, flat).view_as(gray)


# -- spatter ------------------------------------------------------------------------------------
def _water_shade(liquid8: torch.Tensor) -> torch.Tensor:
    """float32 [N, H, W]: the reference's ``liquid8 * dist`` drop shading."""
    dist = chamfer_distance(canny(liquid8))
    # cv2.blur on float32: exact float64 sums, times 1 / 9, to float32; then astype(uint8)
    sums = _box_sum_float64(dist)
    dist8 = torch.floor((sums * (1.0 / 9)).to(torch.float32)).to(torch.uint8)
    dist8 = equalize_hist(dist8)
    embossed = _correlate3(dist8, _EMBOSS, "reflect101").clamp_(0, 255)
    # cv2.blur on uint8: rounded mean
    blurred = torch.div(_correlate3(embossed, _BOX, "reflect101") * 2 + 9, 18, rounding_mode="floor")
    return liquid8.to(torch.float32) * blurred.to(torch.float32)


def spatter_from_field(images: torch.Tensor, field: torch.Tensor, severity: int, profile: str) -> torch.Tensor:
    """The reference's spatter of uint8 [N, 3, H, W] given each image's normal field [N, H, W]."""
    _, _, smooth, threshold, intensity, mud = parameters(profile, "spatter", severity)
    liquid = scipy_gaussian(field, smooth)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if not mud:
        # numpy's float -> uint8 cast keeps the low 8 bits of the truncated value
        liquid8 = ((liquid * 255).to(torch.int64) & 255).to(torch.uint8)
        shade = _water_shade(liquid8)
        peak = shade.amax(dim=(1, 2), keepdim=True)
        shade = torch.where(peak > 0, shade / torch.where(peak > 0, peak, torch.ones_like(peak)),
                            torch.zeros_like(shade))
        shade = (shade * torch.tensor(intensity, dtype=torch.float32)).unsqueeze(1)
        colour = (torch.tensor(WATER_COLOUR, dtype=torch.float64) / 255.0).to(torch.float32)
        x = images.to(torch.float32) / 255.0
        out = (x + shade * colour.to(images.device).view(1, 3, 1, 1)).clamp_(0.0, 1.0) * 255.0
        return out.to(torch.uint8)
    mask = scipy_gaussian((liquid > threshold).to(torch.float32), intensity, torch.float32)
    mask = torch.where(mask < torch.tensor(0.8, dtype=torch.float32), torch.zeros_like(mask), mask).unsqueeze(1)
    colour = torch.tensor(MUD_COLOUR, dtype=torch.float64, device=images.device).view(1, 3, 1, 1) / 255.0
    x = (images.to(torch.float32) / 255.0) * (1 - mask)
    out = (x.to(torch.float64) + colour * mask.to(torch.float64)).clamp_(0.0, 1.0) * 255.0
    return out.to(torch.uint8)


def spatter(images: torch.Tensor, indices: torch.Tensor, severity: int, seed: int, profile: str) -> torch.Tensor:
    """Water drops (severities whose profile entry says water) or mud, per image."""
    loc, scale = parameters(profile, "spatter", severity)[:2]
    n, _, height, width = images.shape
    # on the CPU, groups whose many intermediate passes stay in cache
    step = n if images.device.type != "cpu" else max(1, CPU_GROUP_PIXELS // (height * width))
    parts = []
    for start in range(0, n, step):
        field = spatter_field(indices[start : start + step], height, width, loc, scale, severity, seed)
        parts.append(spatter_from_field(images[start : start + step], field, severity, profile))
    return parts[0] if len(parts) == 1 else torch.cat(parts)
