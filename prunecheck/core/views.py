"""Views of a dataset: nominal data, a corruption, L-inf input noise, or Gaussian blur.

A view is a small frozen value. Its ``key`` is stable text used in fingerprints and
seeds, and its ``id`` is the short form used in pytest test ids and reports. One
function interprets it: :func:`prunecheck.data.views.apply_view`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ViewKind = Literal["nominal", "corruption", "noise", "blur"]


@dataclass(frozen=True)
class View:
    """One way of presenting a dataset to a model.

    ``corruption`` and ``blur`` change the uint8 images; ``noise`` adds
    U(-eps, eps) in normalised input space, without clipping (seed 002).
    """

    kind: ViewKind = "nominal"
    name: str = ""
    severity: int = 0
    eps: float = 0.0
    repetition: int = 0
    radius: float = 0.0

    @property
    def id(self) -> str:
        if self.kind == "nominal":
            return "nominal"
        if self.kind == "corruption":
            return f"{self.name}-{self.severity}"
        if self.kind == "noise":
            return f"noise{self.eps:g}-r{self.repetition}"
        return f"blur{self.radius:g}"

    @property
    def key(self) -> str:
        return (
            f"{self.kind}|{self.name}|{self.severity}|{self.eps!r}|"
            f"{self.repetition}|{self.radius!r}"
        )


NOMINAL = View()


def corruption(name: str, severity: int) -> View:
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"corruption severity must be in 1..5, got {severity!r}")
    return View(kind="corruption", name=name, severity=int(severity))


def noise(eps: float, repetition: int = 0) -> View:
    if eps < 0:
        raise ValueError(f"noise eps must be >= 0, got {eps!r}")
    return View(kind="noise", eps=float(eps), repetition=int(repetition))


def blur(radius: float) -> View:
    if radius < 0:
        raise ValueError(f"blur radius must be >= 0, got {radius!r}")
    return View(kind="blur", radius=float(radius))
