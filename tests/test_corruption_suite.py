"""suites/test_corruptions.py end to end with pytester, on planted RedChannelNet models.

The planted family (constant-colour CIFAR-10 images, red level = class; 200 images,
20 per class; normalisation mean 0, std 1 so the red feature is red/255):

- ``parent``: exact weights, accuracy 1.0 on every view below.
- ``clean``: the parent's weights again, ratio measured from its zeros: the class-0 row of
  fc.weight is 0 in :func:`red_channel_weights`, so 1 of 10 prunable weights -> ratio 0.1.
- ``mild`` (ratio 0.4): exact weights, noise_gain 130. Class 9's logit gains 130 * (spatial
  std of red). Neighbouring class logits differ by 100 * s * (9 - y)^2 with s = 25/255,
  i.e. 9.8 for y = 8. Under noise eps 0.1 the std is 0.1/sqrt(3) = 0.0577 -> +7.5 < 9.8:
  still 1.0; under eps 0.2 -> +15.0 > 9.8 but < 39.2 (y = 7): class 8 lost, 0.9.
- ``noisy`` (ratio 0.5): exact weights, noise_gain 1000: +57.7 at eps 0.1 beats
  9.8 * (9 - y)^2 for y = 7, 8 (39.2) but not y = 6 (88.2) -> 0.8; +115.5 at eps 0.2 also
  beats y = 6 (88.2) but not y = 5 (156.8) -> 0.7. On clean images the std is 0: 1.0.
- ``dropped`` (ratio 0.7): class-9 row zeroed, no gain: 0.9 on every view.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from prunecheck.data.corruptions.compat import load_imagecorruptions
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

# Pytester drops modules first imported inside a run, and numpy.fft's extension (used by
# the corruption stack) cannot be imported twice in one process: load it at collection.
load_imagecorruptions()

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_corruptions.py"

MODELS = {
    "parent": ({}, "exact"),
    "clean": ({}, "exact"),
    "mild": ({"noise_gain": 130.0}, "exact"),
    "noisy": ({"noise_gain": 1000.0}, "exact"),
    "dropped": ({}, "dropped"),
}


def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_project(
    pytester: pytest.Pytester,
    *,
    corruptions=(),
    noise_levels=(0.1, 0.2),
    severities=(3,),
    pair_pruned: str = "noisy",
    deployed: str | None = "mild",
    gates: dict | None = None,
    n: int = 200,
) -> Path:
    exact = red_channel_weights()
    dropped = {k: v.clone() for k, v in exact.items()}
    dropped["fc.weight"][-1] = 0
    dropped["fc.bias"][-1] = 0
    models = "\n".join(model_table(name, f"{weights}.pt", **kwargs) for name, (kwargs, weights) in MODELS.items())
    options = {
        "corruptions": list(corruptions), "severities": list(severities), "noise_levels": [0.0, *noise_levels],
        **(gates or {}),
    }
    gate_table = "\n".join(f"{k} = {_toml_value(v)}" for k, v in options.items())
    config = (
        models
        + textwrap.dedent(f"""
            [[pairs]]
            name = "colour-pair"
            parent = "parent"
            pruned = "{pair_pruned}"
            dataset = "colours"

            [[families]]
            name = "colour-fam"
            parent = "parent"
            dataset = "colours"
            members = ["clean", {{ model = "mild", ratio = 0.4 }}, {{ model = "noisy", ratio = 0.5 }},
                       {{ model = "dropped", ratio = 0.7 }}]
        """)
        + (f'deployed = "{deployed}"\n' if deployed else "")
        + f"\n[gates.corruptions]\n{gate_table}\n"
    )
    return write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(n)},
        checkpoints={"exact": exact, "dropped": dropped}, suites=(SUITE,),
    )


def _report(root: Path) -> dict:
    return json.loads((root / "reports" / "prunecheck.json").read_text())


def test_noise_sensitive_pair_passes_the_nominal_gate_and_fails_noise_with_clear_message(pytester):
    root = write_project(pytester, noise_levels=(0.1,), deployed=None)
    margin_suite = SUITE.parent / "test_accuracy_margin.py"
    (root / "suites" / "test_accuracy_margin.py").write_text(margin_suite.read_text())
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "margin and not efficiency and not class_accuracy and not exemplars", "-v")
    # The noisy model equals the parent on clean images, so the nominal accuracy gate
    # (SPEC 4.1) passes it, but it loses classes 7 and 8 under eps = 0.1.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_accuracy_margin.py::test_accuracy_margin[[]colour-pair[]] PASSED*",
        "*test_corruption_margin[[]colour-pair-noise0.1[]] FAILED*",
        "*[[]colour-pair/noise0.1-r0[]] accuracy drop 0.2000 > max_drop 0.005 (parent 1.0000, pruned 0.8000)*",
    ])
    report = _report(root)
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["accuracy_margin"]["passed"] and gates["accuracy_margin"]["value"] == 0.0
    corrupted = gates["corruptions"]
    assert not corrupted["passed"] and corrupted["view"] == "noise0.1-r0"
    (entry,) = [d for d in report["data"] if d["section"] == "corruptions"]
    assert entry["payload"] == {"kind": "pair", "view": "noise0.1", "parent_accuracy": 1.0, "pruned_accuracy": 0.8,
                                "source": "uniform L-inf noise in normalised input space"}


def test_family_prune_potential_and_excess_error_match_the_hand_worked_family(pytester):
    root = write_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-v", "-k", "not margin")
    # Curves pass (report only); deployed "mild" (0.4) vs potentials nominal 0.5,
    # noise0.1 0.4 (mild still perfect), noise0.2 0.1 (only "clean"): mean 0.25 -> fail.
    # Excess errors: parent 0, mild (0 + 0.1)/2 - 0 = 0.05 -> difference 0.05 > 0.01 -> fail.
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*test_prune_accuracy_curves[[]colour-fam[]] PASSED*",
        "*test_prune_potential[[]colour-fam[]] FAILED*",
        "*test_excess_error[[]colour-fam[]] FAILED*",
    ])
    out = result.stdout.str()
    assert "deployed prune ratio (mild; nominal prune potential 0.500, lowest noise0.2 0.100) 0.4000 > " \
           "mean prune potential over 2 corruptions (delta 0.005) 0.25" in out
    assert "excess error difference (mild - parent, mean over 2 corruptions) 0.0500 > max_excess_error_diff 0.01 " \
           "(parent 0.0000, pruned 0.0500)" in out
    report = _report(root)
    (payload,) = [d["payload"] for d in report["data"] if d["section"] == "prune_potential"]
    assert payload["members"] == ["clean", "mild", "noisy", "dropped"]
    assert payload["ratios"] == pytest.approx([0.1, 0.4, 0.5, 0.7])
    assert payload["views"] == ["nominal", "noise0.1", "noise0.2"]
    assert payload["accuracy"] == [
        pytest.approx([1.0, 1.0, 1.0, 0.9]),
        pytest.approx([1.0, 1.0, 0.8, 0.9]),
        pytest.approx([1.0, 0.9, 0.7, 0.9]),
    ]
    assert payload["parent_accuracy"] == pytest.approx([1.0, 1.0, 1.0])
    assert payload["potentials"] == pytest.approx({"nominal": 0.5, "noise0.1": 0.4, "noise0.2": 0.1})
    assert payload["summary"] == {
        "train": pytest.approx({"average": 0.5, "minimum": 0.5}),
        "test": pytest.approx({"average": 0.25, "minimum": 0.1}),
    }
    assert payload["excess_error"]["difference"] == pytest.approx([0.0, 0.05, 0.25, 0.0])
    markdown = (root / "reports" / "prunecheck.md").read_text()
    assert "## Prune potential" in markdown and "## Accuracy under corruption" in markdown


def test_min_policy_and_a_safe_deployed_member_pass(pytester):
    # "clean" (0.1) is within every potential and has no excess error.
    write_project(pytester, deployed="clean", gates={"policy": "min"})
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "not margin")
    result.assert_outcomes(passed=3)


def test_family_gates_run_in_confident_mode_and_report_the_interval(pytester):
    # "clean" (0.1) has error 0 on every view: in every resample it stays within delta, so the
    # lower 95% bound of the mean potential is still >= 0.1; its excess error difference is 0.
    root = write_project(pytester, deployed="clean", gates={"mode": "confident"})
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "not margin")
    result.assert_outcomes(passed=3)
    gates = {g["metric"].split(" (")[0]: g for g in _report(root)["gates"] if g["subject"] == "colour-fam"}
    potential, excess = gates["deployed prune ratio"], gates["excess error difference"]
    low, high = potential["details"]["potential_ci"]
    assert potential["mode"] == "confident" and 0.1 <= low <= 0.25 <= high and potential["threshold"] == low
    assert excess["mode"] == "confident" and excess["ci"] == [0.0, 0.0]
    assert "95% CI" in (root / "reports" / "prunecheck.md").read_text()


def test_generated_corruption_runs_per_severity(pytester):
    # gaussian_noise at severity 1 barely moves the mean red level (the parent stays exact)
    # but gives every image a spatial spread, which the noise-gain model turns into class 9.
    root = write_project(pytester, corruptions=["gaussian_noise"], severities=[1], noise_levels=(), deployed=None, n=100)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-v", "-k", "margin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_corruption_margin[[]colour-pair-gaussian_noise-1[]] FAILED*"])
    (gate,) = _report(root)["gates"]
    assert gate["view"] == "gaussian_noise-1" and gate["parent"] == pytest.approx(1.0) and gate["pruned"] < 0.9


def test_unknown_corruption_is_a_config_error_naming_file_and_key(pytester):
    write_project(pytester, corruptions=["gaussian_noise", "fogg"], deployed=None)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # found when the config is loaded, before collection
    err = result.stderr.str()
    assert "prunecheck.toml, key 'gates.corruptions.corruptions[1]': expected one of 'benchmark', 'extra', 'all'" in err
    assert "found string 'fogg' (did you mean 'fog'?)" in err
    assert "Traceback" not in err


def test_families_without_deployed_member_get_no_gate_nodes(pytester):
    write_project(pytester, deployed=None)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::" in line]
    assert ids == [
        "suites/test_corruptions.py::test_corruption_margin[colour-pair-noise0.1]",
        "suites/test_corruptions.py::test_corruption_margin[colour-pair-noise0.2]",
        "suites/test_corruptions.py::test_prune_accuracy_curves[colour-fam]",
    ]
