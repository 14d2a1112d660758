"""Severity constants of the corruption benchmarks, one table per profile.

Two profiles (SPEC 5), each a table ``corruption -> five per-severity entries``:

* ``imagenet``: the ImageNet-C constants, as in imagecorruptions 1.1.2 (which equal
  those of Hendrycks' ``make_imagenet_c.py`` for every corruption; imagecorruptions'
  ``elastic_transform`` is its own variant without the random affine step and with
  size-relative constants, kept here as imagecorruptions defines it).
* ``cifar``: the CIFAR-10-C / CIFAR-100-C constants of Hendrycks' ``make_cifar_c.py``.
  That script defines all 19 corruptions (the 15 of the benchmark and the 4 extra
  ones), so every corruption has CIFAR constants.

Both the reference path (:mod:`prunecheck.data.corruptions.compat`) and the batched torch
backend read their constants from here; nothing else holds a copy.

``auto`` (the default of ``[datasets.<name>] corruption_profile``) resolves to
``cifar`` for images of at most ``CIFAR_MAX_SIDE`` pixels per side, else ``imagenet``.
"""

from __future__ import annotations

from typing import Any

from prunecheck.core.corruption_names import ALL_CORRUPTIONS, check_severity

PROFILES: tuple[str, ...] = ("imagenet", "cifar")
#: Accepted values of ``corruption_profile``.
PROFILE_CHOICES: tuple[str, ...] = ("auto", *PROFILES)
#: ``auto`` picks ``cifar`` when both sides are at most this many pixels.
CIFAR_MAX_SIDE = 64

_IMAGENET: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # std on [0, 1]
    "shot_noise": (60, 25, 12, 5, 3),  # Poisson photons per unit intensity
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # fraction of values set to 0 or 1
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),  # std of the multiplicative noise
    "gaussian_blur": (1, 2, 3, 4, 6),  # sigma, pixels
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),  # sigma, delta, passes
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # disk radius, alias sigma
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),  # radius, sigma
    # zoom factors np.arange(start, stop, step)
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    # loc, scale, zoom, threshold, motion radius, motion sigma, image weight
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),  # image weight, frost weight
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),  # strength, plasma decay
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to HSV value
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),  # factor around the per-channel mean
    # imagecorruptions' variant: alpha; sigma = 0.01 * side, displacement draws U(+-0.005 * H)
    "elastic_transform": (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),  # downsampling factor
    "jpeg_compression": (25, 18, 15, 10, 7),  # PIL quality
    # loc, scale, sigma, threshold, intensity (water) | mud sigma, 0 water | 1 mud
    "spatter": (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),  # HSV s -> clip(a s + b)
}

_CIFAR: dict[str, tuple[Any, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # make_cifar_c's variant, as fractions of the image side (IMSIZE = 32 there):
    # alpha, sigma, affine jitter
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}

_TABLES: dict[str, dict[str, tuple[Any, ...]]] = {"imagenet": _IMAGENET, "cifar": _CIFAR}

#: Where each profile's constants come from (shown in docs and reports).
SOURCES: dict[str, str] = {
    "imagenet": "ImageNet-C constants (imagecorruptions 1.1.2 / make_imagenet_c.py)",
    "cifar": "CIFAR-10-C constants (make_cifar_c.py)",
}


def check_profile(profile: object, *, allow_auto: bool = False) -> str:
    """Return ``profile`` if it names a profile (or ``auto`` when allowed), else raise ValueError."""
    choices = PROFILE_CHOICES if allow_auto else PROFILES
    if not isinstance(profile, str) or profile not in choices:
        raise ValueError(
            "corruption profile: expected one of " + ", ".join(repr(c) for c in choices) + f", found {profile!r}"
        )
    return profile


def resolve_profile(profile: str, height: int, width: int) -> str:
    """The concrete profile for images of ``height`` x ``width``: ``auto`` -> cifar | imagenet.

    Example:
        >>> resolve_profile("auto", 32, 32), resolve_profile("auto", 224, 224)
        ('cifar', 'imagenet')
    """
    check_profile(profile, allow_auto=True)
    if profile != "auto":
        return profile
    return "cifar" if max(int(height), int(width)) <= CIFAR_MAX_SIDE else "imagenet"


def parameters(profile: str, name: str, severity: int) -> Any:
    """The constant(s) of corruption ``name`` at ``severity`` in ``profile``.

    Example:
        >>> parameters("cifar", "gaussian_noise", 3), parameters("imagenet", "gaussian_noise", 3)
        (0.08, 0.18)
    """
    table = _TABLES[check_profile(profile)]
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of: " + ", ".join(ALL_CORRUPTIONS))
    return table[name][check_severity(severity) - 1]


def table(profile: str) -> dict[str, tuple[Any, ...]]:
    """A copy of the whole table of ``profile`` (corruption -> five entries)."""
    return dict(_TABLES[check_profile(profile)])
