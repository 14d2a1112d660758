"""The functional-similarity and instability suites end to end, with pytester on planted projects.

Models are ``RedChannelNet`` (prunecheck.testing) on constant-colour CIFAR-format
images with mean 0 / std 1 normalisation, so every number is known by hand:

- the parent is exact (accuracy 1);
- ``scaled``: the parent's weights at ``scale = 3``: same argmax everywhere, so it
  agrees with the parent on every input (a reference that is "too close");
- ``noisy``: ``noise_gain = 1000``: identical on clean images (their spatial std is 0),
  but under eps = 0.1 noise the red channel's std (~0.058) adds ~58 to the last
  logit, which beats the true class for classes 7 and 8 (margin 100*s*(9-c)^2,
  s = 25/255), so agreement drops to 0.8;
- ``pre``: 8 of 10 class rows zeroed: predicts class 1 for every class >= 1 and
  class 0 for class 0 (ties go to the first index): accuracy 0.2, instability 0.8.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITES = Path(__file__).resolve().parents[1] / "suites"
FILES = ("test_functional_similarity.py", "test_instability.py")


def write_project(pytester: pytest.Pytester, pairs: str, *, gates: str = "", n: int = 100) -> Path:
    weights = red_channel_weights()
    pre = {k: v.clone() for k, v in weights.items()}
    pre["fc.weight"][2:] = 0
    pre["fc.bias"][2:] = 0
    models = "\n".join([
        model_table("parent", "parent.pt"),
        model_table("same", "parent.pt"),
        model_table("scaled", "parent.pt", scale=3.0),
        model_table("noisy", "parent.pt", noise_gain=1000.0),
        model_table("pre", "pre.pt"),
    ])
    config = models + textwrap.dedent("""
        [gates.functional]
        eps = [0.0, 0.1]
        repetitions = 2
        max_images = 60
    """) + textwrap.dedent(gates) + textwrap.dedent(pairs)
    return write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(n)},
        checkpoints={"parent": weights, "pre": pre}, suites=tuple(SUITES / name for name in FILES),
    )


def report(root: Path) -> dict:
    return json.loads((root / "reports" / "prunecheck.json").read_text())


def test_pruned_model_equal_to_parent_passes_with_agreement_one_and_instability_zero(pytester):
    root = write_project(pytester, """
        [[pairs]]
        name = "same-pair"
        parent = "parent"
        pruned = "same"
        dataset = "colours"
        reference = "noisy"
    """)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-v")
    # agreement x2 eps, closer-than-reference x2 eps, instability x1; BackSelect deselected
    result.assert_outcomes(passed=5, deselected=1)
    result.stdout.fnmatch_lines(["*test_agreement_with_parent?same-pair-eps0.1? PASSED*"])
    data = report(root)
    noise = [d["payload"] for d in data["data"] if d["section"] == "functional"]
    assert sorted(p["eps"] for p in noise) == [0.0, 0.1]
    for payload in noise:
        assert payload["pruned"]["agreement"] == [1.0] * payload["repetitions"]
        assert payload["pruned"]["distance"] == [0.0] * payload["repetitions"]
        assert payload["repetitions"] == (1 if payload["eps"] == 0 else 2) and payload["images"] == 60
    by_eps = {p["eps"]: p for p in noise}
    assert by_eps[0.1]["reference"]["mean_agreement"] == pytest.approx(0.8)  # classes 7, 8 flip
    (inst,) = [d["payload"] for d in data["data"] if d["section"] == "instability"]
    (step,) = inst["steps"]
    assert inst["source"] == "mask" and step["instability"] == 0.0 and step["acc_before"] == 1.0
    md = (root / "reports" / "prunecheck.md").read_text()
    assert "## Functional similarity" in md and "## Pruning instability" in md


def test_pre_finetune_checkpoint_that_lost_most_accuracy_fails_instability(pytester):
    root = write_project(pytester, """
        [[pairs]]
        name = "broken-step"
        parent = "parent"
        pruned = "same"
        dataset = "colours"
        pre_finetune = "pre"
    """)
    result = pytester.runpytest("suites/test_instability.py", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*[[]broken-step[]] instability parent 'parent' -> 'pre' before fine-tuning 0.8000 > "
        "max_instability 0.5 (parent 1.0000, pruned 0.2000)*",
    ])
    (gate,) = report(root)["gates"]
    assert gate["name"] == "instability" and not gate["passed"] and gate["value"] == pytest.approx(0.8)


def test_pruned_model_that_drifts_under_noise_fails_agreement_and_reference_gates(pytester):
    write_project(pytester, """
        [[pairs]]
        name = "drift"
        parent = "parent"
        pruned = "noisy"
        dataset = "colours"
        reference = "scaled"

        [[pairs]]
        name = "no-reference"
        parent = "parent"
        pruned = "same"
        dataset = "colours"
    """)
    result = pytester.runpytest("suites/test_functional_similarity.py", "-p", "no:cacheprovider", "-v")
    # drift: 2 agreement + 2 reference; no-reference: 2 agreement, its 2 reference tests not
    # generated; BackSelect (off by default) has no pair at all: its one node is deselected
    result.assert_outcomes(passed=4, failed=2, deselected=1)
    out = result.stdout.str()
    assert "test_closer_than_reference[no-reference" not in out
    result.stdout.fnmatch_lines([
        "*[[]drift/noise0.1[]] agreement with parent 0.8000 < min_agreement 0.9*",
    ])
    result.stdout.fnmatch_lines([
        "*[[]drift/noise0.1[]] agreement with parent of pruned 'noisy' minus reference 'scaled' "
        "(1.0000) -0.2000 < min_reference_margin 0 (pruned 0.8000)*",
    ])


def test_schedule_reports_every_step_starting_from_the_previous_fine_tuned_model(pytester):
    root = write_project(pytester, """
        [[pairs]]
        name = "step1"
        parent = "parent"
        pruned = "scaled"
        dataset = "colours"
        pre_finetune = "same"

        [[pairs]]
        name = "step2"
        parent = "parent"
        pruned = "same"
        dataset = "colours"
        schedule = ["same", "pre"]
        expect_fail = ["instability"]
    """)
    result = pytester.runpytest("suites/test_instability.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)
    data = {d["subject"]: d["payload"] for d in report(root)["data"]}
    steps = data["step2"]["steps"]
    assert [(s["before"], s["after"], s["acc_before_source"]) for s in steps] == [
        ("parent", "same", "parent"), ("scaled", "pre", "finetuned")]
    assert [s["instability"] for s in steps] == [0.0, pytest.approx(0.8)]


def test_backselect_runs_when_enabled_and_reports_overlap(pytester):
    root = write_project(pytester, """
        [[pairs]]
        name = "same-pair"
        parent = "parent"
        pruned = "same"
        dataset = "colours"
        reference = "scaled"
    """, gates="""
        backselect = true
        backselect_images = 3
        backselect_pixels_per_round = 256
    """)
    result = pytester.runpytest("suites/test_functional_similarity.py", "-p", "no:cacheprovider",
                                "-k", "informative")
    result.assert_outcomes(passed=1, deselected=4)
    (payload,) = [d["payload"] for d in report(root)["data"] if d["payload"].get("kind") == "backselect"]
    assert payload["images"] == 3 and payload["models"]["reference"] == "scaled"
    assert payload["overlap_with_parent"]["pruned"] == 1.0  # same weights, same pixels
    assert "pixel overlap with parent" in (root / "reports" / "prunecheck.md").read_text()
