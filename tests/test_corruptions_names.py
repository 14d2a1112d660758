"""Corruption name tables and the config resolver."""

from __future__ import annotations

import pytest

from prunecheck.core.corruption_names import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    check_severity,
    resolve_corruptions,
)


def test_tables():
    assert len(BENCHMARK_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert ALL_CORRUPTIONS == BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert len(set(ALL_CORRUPTIONS)) == 19
    assert BENCHMARK_CORRUPTIONS[0] == "gaussian_noise" and BENCHMARK_CORRUPTIONS[-1] == "jpeg_compression"


def test_tables_match_imagecorruptions():
    from prunecheck.data.corruptions.compat import load_imagecorruptions

    ic = load_imagecorruptions()
    assert tuple(ic.get_corruption_names("common")) == BENCHMARK_CORRUPTIONS
    assert tuple(ic.get_corruption_names("validation")) == EXTRA_CORRUPTIONS


def test_resolve_groups():
    assert resolve_corruptions("all") == ALL_CORRUPTIONS
    assert resolve_corruptions("benchmark") == BENCHMARK_CORRUPTIONS
    assert resolve_corruptions("extra") == EXTRA_CORRUPTIONS
    assert resolve_corruptions("fog") == ("fog",)
    assert resolve_corruptions(["snow", "fog", "snow"]) == ("snow", "fog")
    assert resolve_corruptions(("saturate", "benchmark"))[:2] == ("saturate", "gaussian_noise")
    assert len(resolve_corruptions(["extra", "all"])) == 19


@pytest.mark.parametrize("value", ["fogg", ["fog", "blur"], "gaussian-noise"])
def test_unknown_name_lists_valid(value):
    with pytest.raises(ValueError, match="unknown corruption.*gaussian_noise, shot_noise"):
        resolve_corruptions(value)


@pytest.mark.parametrize("value", [[], 3, None, ["fog", 2]])
def test_bad_values(value):
    with pytest.raises(ValueError, match="corruptions"):
        resolve_corruptions(value)


def test_check_severity():
    assert check_severity(3) == 3
    import numpy as np

    assert check_severity(np.int64(5)) == 5
    for bad in (0, 6, 2.5, True, "3", None):
        with pytest.raises(ValueError, match="1..5"):
            check_severity(bad)
