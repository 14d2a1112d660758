"""The axes suite tests are parametrised over, besides ``pair`` and ``family``.

A suite names an axis by taking a fixture argument of that name; the plugin fills it
from the settings, so suite files never compute their own parameters:

- ``shift``: the corrupted / noisy views of ``[gates.corruptions]`` (ids ``fog-3``, ``noise0.1``);
- ``eps``: the noise levels of ``[gates.functional] eps`` (ids ``eps0.1``);
- ``method``: the uncertainty methods of the pair (``pairs[].methods``); it depends on the
  pair, so it is parametrised together with it (ids ``<pair>-<method>``).
"""

from __future__ import annotations

from typing import Any, Callable

from prunecheck.config.settings import PairSpec, Settings


def _shifts(settings: Settings) -> list[tuple[str, Any]]:
    from prunecheck.gates.robustness import configured_shifts

    return [(shift.id, shift) for shift in configured_shifts(settings.gates["corruptions"])]


def _noise_levels(settings: Settings) -> list[tuple[str, Any]]:
    return [(f"eps{eps:g}", float(eps)) for eps in settings.gates["functional"].eps]


#: axis name -> (settings -> [(id, value)]), for axes that do not depend on the pair.
AXES: dict[str, Callable[[Settings], list[tuple[str, Any]]]] = {"shift": _shifts, "eps": _noise_levels}

#: axis name -> ((pair spec, settings) -> values), for axes parametrised together with ``pair``.
PAIR_AXES: dict[str, Callable[[PairSpec, Settings], tuple[Any, ...]]] = {
    "method": lambda spec, settings: tuple(spec.methods),
}
