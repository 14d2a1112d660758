"""Efficiency facts are cached by weight fingerprint: a warm run compresses nothing (counted)."""

from __future__ import annotations

import json
import textwrap
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from prunecheck.nn import efficiency
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"


@pytest.fixture
def compressions(monkeypatch) -> list[int]:
    """Sizes of every buffer the efficiency facts deflate, in call order."""
    calls: list[int] = []

    def counting(data, level=-1):
        calls.append(len(data))
        return zlib.compress(data, level)

    monkeypatch.setattr(efficiency, "zlib", SimpleNamespace(compress=counting))
    return calls


def run_twice(pytester, root: Path, compressions: list[int]) -> tuple[int, int, dict, dict]:
    only = ("-k", "not class_accuracy and not exemplars")  # the other accuracy-suite gates are not the point
    cold = pytester.runpytest("suites", "-p", "no:cacheprovider", *only)
    cold.assert_outcomes(passed=2)
    cold_calls = len(compressions)
    first = json.loads((root / "reports" / "prunecheck.json").read_text())["data"][0]["payload"]
    warm = pytester.runpytest("suites", "-p", "no:cacheprovider", *only)
    warm.assert_outcomes(passed=2)
    second = json.loads((root / "reports" / "prunecheck.json").read_text())["data"][0]["payload"]
    return cold_calls, len(compressions) - cold_calls, first, second


def test_warm_run_reads_the_facts_back(pytester, compressions):
    weights = red_channel_weights()
    pruned = {k: v.clone() for k, v in weights.items()}
    pruned["fc.weight"][-3:] = 0
    config = model_table("parent", "parent.pt") + model_table("pruned", "pruned.pt") + textwrap.dedent("""
        [[pairs]]
        parent = "parent"
        pruned = "pruned"
        dataset = "colours"
        [gates.accuracy_margin]
        max_drop = 1.0
    """)
    root = write_planted_project(pytester.path, config=config, datasets={"colours": class_colour_images(50)},
                                 checkpoints={"parent": weights, "pruned": pruned}, suites=(SUITE,))
    cold, warm, first, second = run_twice(pytester, root, compressions)
    assert (cold, warm) == (2, 0)  # parent and pruned once each, then never again
    assert first == second  # the cached figures are the measured ones
    assert first["pruned"]["nonzero_parameters"] == first["parent"]["nonzero_parameters"] - 3


@pytest.mark.slow
def test_resnet18_pair_warm_run_performs_no_compression(pytester, compressions):
    pytest.importorskip("torchvision")
    from torchvision.models import resnet18

    torch.manual_seed(0)
    parent = resnet18(num_classes=10).state_dict()
    pruned = {k: v.clone() for k, v in parent.items()}
    for name, tensor in pruned.items():  # 50 % of every conv/linear weight zeroed, by magnitude
        if name.endswith("weight") and tensor.ndim in (2, 4):
            tensor[tensor.abs() <= tensor.abs().flatten().median()] = 0
    factory = "torchvision.models:resnet18"
    config = (
        model_table("resnet18", "resnet18.pt", factory="x", num_classes=10).replace("prunecheck.testing:x", factory)
        + model_table("resnet18-wt50", "resnet18-wt50.pt", factory="x", num_classes=10).replace(
            "prunecheck.testing:x", factory)
        + textwrap.dedent("""
            [[pairs]]
            parent = "resnet18"
            pruned = "resnet18-wt50"
            dataset = "colours"
            [gates.accuracy_margin]
            max_drop = 1.0
        """)
    )
    root = write_planted_project(pytester.path, config=config, datasets={"colours": class_colour_images(20)},
                                 checkpoints={"resnet18": parent, "resnet18-wt50": pruned}, suites=(SUITE,))
    cold, warm, first, second = run_twice(pytester, root, compressions)
    assert cold == 2 and warm == 0
    assert first == second and first["compression_ratio"] > 1.5
