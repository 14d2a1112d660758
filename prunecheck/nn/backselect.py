"""BackSelect (Carter et al.), as seed 002 (Sec. 4.1) uses it to compare what models look at.

Greedy backward selection: pixels are masked (all channels set to ``mask_value``,
0 = the dataset mean in normalised space) in the order that lowers the confidence
of the model's own predicted class the least; the pixels masked last are the most
informative. Instead of one pixel per round, ``pixels_per_round`` pixels are
removed per round (those whose single removal lowers the confidence least), and all
images are processed as one batch (:func:`backselect_order`).
:func:`informative_pixels` keeps the top ``keep_fraction`` (seed 002: 10%, a
sparsity of 90%), :func:`pixel_overlap` compares two models' sets and
:func:`cross_confidence` evaluates a model on another model's informative pixels
(seed 002, Fig. 3).

The algorithms take a ``forward`` function (inputs -> probabilities), so they run
on any network or on a hand-written function; :func:`model_probs` is that function
for a loaded model. Running them on a pair's models is the session's job
(:mod:`prunecheck.session.similarity`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from prunecheck.core.errors import ModelError
from prunecheck.nn.models import LoadedModel

__all__ = ["Forward", "model_probs", "backselect_order", "informative_pixels", "pixel_overlap", "cross_confidence"]

#: Maps float [B, C, H, W] inputs to class probabilities [B, K].
Forward = Callable[[torch.Tensor], torch.Tensor]


def model_probs(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities [B, C] of a loaded model (ensembles combined as the engine does).

    The model's networks must already be on ``x``'s device and in eval mode.
    """
    networks = model.networks()
    if not networks:
        raise ModelError(f"model '{model.name}': has neither a module nor ensemble members")
    logits = [net(x).float() for net in networks]
    if len(logits) == 1:
        return torch.softmax(logits[0], dim=-1)
    if model.spec.ensemble_average == "logits":
        return torch.softmax(torch.stack([torch.log_softmax(z, -1) for z in logits]).mean(0), dim=-1)
    return torch.stack([torch.softmax(z, -1) for z in logits]).mean(0)


@torch.no_grad()
def backselect_order(
    forward: Forward,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    pixels_per_round: int,
    mask_value: float = 0.0,
    batch_size: int = 512,
) -> torch.Tensor:
    """Removal rank of every pixel by batched backward selection (BackSelect).

    Each round, for every image and every pixel still present, the image with
    that pixel also masked is scored by the probability of ``target``; the
    ``pixels_per_round`` pixels whose masking keeps it highest are masked
    (in that order). Rounds repeat until every pixel is masked.

    Args:
        forward: Maps float [M, C, H, W] inputs to probabilities [M, K].
        x: float [B, C, H, W] (normalised) images.
        target: int64 [B] class whose confidence is kept (usually the
            model's own prediction on ``x``).
        pixels_per_round: Pixels removed per round (>= 1; 1 is the exact
            greedy procedure).
        mask_value: Value of a masked pixel in every channel.
        batch_size: Masked variants per forward call.

    Returns:
        int64 [B, H*W]: 0 for the pixel masked first (least informative),
        H*W - 1 for the one masked last (most informative).

    Raises:
        ValueError: Bad shapes or a non-positive ``pixels_per_round``.
    """
    if x.ndim != 4:
        raise ValueError(f"backselect: expected images [B, C, H, W], found shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if tuple(target.shape) != (b,):
        raise ValueError(f"backselect: expected one target per image ({b}), found shape {tuple(target.shape)}")
    if isinstance(pixels_per_round, bool) or not isinstance(pixels_per_round, (int, np.integer)) or pixels_per_round < 1:
        raise ValueError(f"backselect: pixels_per_round must be an integer >= 1, found {pixels_per_round!r}")
    p = h * w
    device = x.device
    target = target.to(device)
    flat = x.reshape(b, c, p)
    removed = torch.zeros((b, p), dtype=torch.bool, device=device)
    rank = torch.full((b, p), -1, dtype=torch.int64, device=device)
    done = 0
    while done < p:
        remaining = (~removed).nonzero()[:, 1].view(b, p - done)  # [B, r], same r for every image
        r = remaining.shape[1]
        current = torch.where(removed[:, None, :], torch.full_like(flat, mask_value), flat)  # [B, C, P]
        image_of = torch.arange(b, device=device).repeat_interleave(r)  # [B*r]
        pixel_of = remaining.reshape(-1)  # [B*r]
        scores = torch.empty(b * r, device=device, dtype=x.dtype)  # float64 inputs: ties stay resolvable
        for start in range(0, b * r, batch_size):
            stop = min(start + batch_size, b * r)
            variants = current[image_of[start:stop]].clone()  # [m, C, P]
            variants[torch.arange(stop - start, device=device), :, pixel_of[start:stop]] = mask_value
            probs = forward(variants.view(stop - start, c, h, w))
            scores[start:stop] = probs[torch.arange(stop - start, device=device), target[image_of[start:stop]]]
        k = min(int(pixels_per_round), r)
        chosen = scores.view(b, r).topk(k, dim=1).indices  # highest kept confidence first
        pixels = remaining.gather(1, chosen)  # [B, k]
        order = torch.arange(done, done + k, device=device).expand(b, k)
        rank.scatter_(1, pixels, order)
        removed.scatter_(1, pixels, True)
        done += k
    return rank


def informative_pixels(rank: torch.Tensor, keep_fraction: float = 0.1) -> torch.Tensor:
    """bool [B, P]: the ``ceil(keep_fraction * P)`` pixels masked last (most informative).

    Raises:
        ValueError: ``keep_fraction`` not in (0, 1].
    """
    if not 0.0 < float(keep_fraction) <= 1.0:
        raise ValueError(f"keep_fraction: expected a fraction in (0, 1], found {keep_fraction!r}")
    p = rank.shape[-1]
    keep = max(1, math.ceil(float(keep_fraction) * p))
    return rank >= p - keep


def pixel_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image |a ∩ b| / |a| of two informative-pixel sets of equal size: float [B] in [0, 1].

    Raises:
        ValueError: Shapes differ or a set is empty.
    """
    if a.shape != b.shape:
        raise ValueError(f"pixel_overlap: expected equal shapes, found {tuple(a.shape)} and {tuple(b.shape)}")
    size = a.sum(dim=-1)
    if bool((size == 0).any()):
        raise ValueError("pixel_overlap: expected non-empty pixel sets, found an empty one")
    return (a & b).sum(dim=-1).float() / size.float()


@torch.no_grad()
def cross_confidence(
    forward: Forward, x: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor, *, mask_value: float = 0.0
) -> float:
    """Mean probability of the true class when only the ``keep`` pixels are shown (seed 002, Fig. 3).

    Args:
        forward: Maps float [B, C, H, W] to probabilities [B, K].
        x: float [B, C, H, W] images.
        keep: bool [B, H*W] pixels left visible (another model's informative pixels).
        labels: int64 [B] true classes.
    """
    b, c, h, w = x.shape
    shown = torch.where(keep.view(b, 1, h, w).to(x.device), x, torch.full_like(x, mask_value))
    probs = forward(shown)
    return float(probs[torch.arange(b, device=probs.device), labels.to(probs.device)].mean())
