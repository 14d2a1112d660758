"""Keeping pruned parameters at zero while a pruned model is fine-tuned.

A *keep-mask* is ``{parameter name: bool tensor of the parameter's shape}``
(True = kept, False = must stay 0), as :class:`~prunecheck.pruning.PruneResult`
returns it. Names are ``model.named_parameters()`` names (``"features.0.weight"``).

Use :func:`keep_mask` around a training loop::

    with keep_mask(model, mask):
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

Inside the block the masked entries' gradients are zeroed (so SGD, momentum,
weight decay, Adam and AdamW leave a zero weight at zero) and the mask is
re-applied before every forward pass and once more on exit (so even an
optimiser that moves zero-gradient weights cannot make them count).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import nn

__all__ = ["keep_mask", "apply_keep_mask", "mask_violations", "weight_mask", "mask_sparsity"]

Mask = Mapping[str, torch.Tensor]


def _resolve(model: nn.Module, mask: Mask) -> list[tuple[str, nn.Parameter, torch.Tensor]]:
    params = dict(model.named_parameters())
    unknown = [name for name in mask if name not in params]
    if unknown:
        raise ValueError(
            f"mask: names {unknown[:5]} are not parameters of the model; "
            f"parameters include {list(params)[:8]}"
        )
    out = []
    for name, keep in mask.items():
        p = params[name]
        if tuple(keep.shape) != tuple(p.shape):
            raise ValueError(f"mask['{name}']: expected shape {tuple(p.shape)}, found {tuple(keep.shape)}")
        out.append((name, p, keep.to(device=p.device, dtype=torch.bool)))
    return out


def apply_keep_mask(model: nn.Module, mask: Mask) -> nn.Module:
    """Zero, in place, every parameter entry the mask drops; returns ``model``.

    Call it after ``optimizer.step()`` in loops that do not use :func:`keep_mask`.

    Raises:
        ValueError: A mask entry names no parameter, or has another shape.
    """
    with torch.no_grad():
        for _, p, keep in _resolve(model, mask):
            p.masked_fill_(~keep, 0.0)
    return model


@contextlib.contextmanager
def keep_mask(model: nn.Module, mask: Mask) -> Iterator[nn.Module]:
    """Keep the masked parameters of ``model`` at exactly zero inside the block.

    On entry the mask is applied; inside, gradients of masked entries are
    zeroed and the mask is re-applied before each forward pass; on exit it is
    applied once more and the hooks are removed.

    Args:
        model: The network being fine-tuned (modified in place).
        mask: ``{parameter name: bool keep}``.

    Yields:
        ``model``.
    """
    entries = _resolve(model, mask)
    apply_keep_mask(model, mask)
    handles = []
    for _, p, keep in entries:
        if p.requires_grad:
            handles.append(p.register_hook(lambda g, keep=keep: g.masked_fill(~keep.to(g.device), 0.0)))

    def reapply(_module: nn.Module, _inputs: object) -> None:
        with torch.no_grad():
            for _, p, keep in entries:
                if keep.device != p.device:  # the model was moved inside the block
                    keep = keep.to(p.device)
                p.masked_fill_(~keep, 0.0)

    handles.append(model.register_forward_pre_hook(reapply))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        apply_keep_mask(model, mask)


def mask_violations(model: nn.Module, mask: Mask) -> dict[str, int]:
    """Masked entries that are not zero, per parameter (empty when the mask holds)."""
    out = {}
    for name, p, keep in _resolve(model, mask):
        n = int(((p.detach() != 0) & ~keep).sum())
        if n:
            out[name] = n
    return out


def weight_mask(mask: Mask, model: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of a keep-mask that :func:`prunecheck.nn.models.apply_mask` accepts.

    That is, the Conv/Linear ``.weight`` entries (biases and BatchNorm
    parameters of structured methods are dropped).
    """
    from prunecheck.nn.models import prunable_weights

    names = set(prunable_weights(model))
    return {name: keep for name, keep in mask.items() if name in names}


def mask_sparsity(mask: Mask) -> float:
    """Fraction of False entries over all entries of the mask (0.0 for an empty mask)."""
    total = sum(k.numel() for k in mask.values())
    dropped = sum(int((~k.bool()).sum()) for k in mask.values())
    return dropped / total if total else 0.0
