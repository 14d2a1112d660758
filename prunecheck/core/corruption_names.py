"""Corruption names of the Hendrycks & Dietterich benchmark (ImageNet-C / CIFAR-10-C).

The order is the benchmark's: noise (3), blur (4), weather (4), digital (4), then
the four extra "validation" corruptions.
"""

from __future__ import annotations

import numbers
from typing import Sequence

#: The 15 corruptions of the benchmark, in the benchmark's order.
BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

#: The four held-out corruptions released alongside the benchmark.
EXTRA_CORRUPTIONS: tuple[str, ...] = (
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)

#: Benchmark followed by extra corruptions (19 names).
ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

#: Severities defined by the benchmark.
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ALL_CORRUPTIONS,
    "benchmark": BENCHMARK_CORRUPTIONS,
    "extra": EXTRA_CORRUPTIONS,
}


def resolve_corruptions(value: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a config value into a tuple of corruption names.

    Args:
        value: ``"all"`` (19 names), ``"benchmark"`` (the 15), ``"extra"`` (the 4),
            a single corruption name, or a sequence mixing names and group words.

    Returns:
        The names, in the order given, duplicates removed (first occurrence kept).

    Raises:
        ValueError: for an unknown name, listing the valid ones; for an empty list;
            for a value that is neither a string nor a sequence of strings.

    Example:
        >>> resolve_corruptions(["fog", "benchmark"])[:2]
        ('fog', 'gaussian_noise')
    """
    items: Sequence[object]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValueError(
            f"corruptions: expected 'all', 'benchmark', 'extra', a name or a list of names, "
            f"found {type(value).__name__} {value!r}"
        )
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(
                f"corruptions: expected corruption names as strings, found {type(item).__name__} {item!r}"
            )
        key = item.strip()
        names = _GROUPS.get(key.lower(), (key,))
        for name in names:
            if name not in ALL_CORRUPTIONS:
                raise ValueError(
                    f"unknown corruption {item!r}; expected 'all', 'benchmark', 'extra' or one of: "
                    + ", ".join(ALL_CORRUPTIONS)
                )
            if name not in out:
                out.append(name)
    if not out:
        raise ValueError("corruptions: expected at least one corruption name, found an empty list")
    return tuple(out)


def check_severity(severity: object) -> int:
    """Return ``severity`` as an int, or raise ValueError unless it is an integer in 1..5."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Real) or int(severity) != severity:
        raise ValueError(f"corruption severity: expected an integer in 1..5, found {severity!r}")
    if int(severity) not in SEVERITIES:
        raise ValueError(f"corruption severity: expected an integer in 1..5, found {severity!r}")
    return int(severity)
