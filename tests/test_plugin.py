"""The plugin end to end, run with pytester on planted models and a real-format CIFAR-10 file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"


def write_project(pytester: pytest.Pytester, *, drop_classes: int, extra: str = "", n: int = 200) -> Path:
    """A project with a CIFAR-10 file, a parent and a pruned RedChannelNet, and the accuracy suite.

    The pruned model has the rows of its last ``drop_classes`` classes zeroed, so it
    misclassifies exactly those classes: accuracy 1 - drop_classes/10, parent 1.0.
    """
    weights = red_channel_weights()
    pruned = {k: v.clone() for k, v in weights.items()}
    if drop_classes:
        pruned["fc.weight"][-drop_classes:] = 0
        pruned["fc.bias"][-drop_classes:] = 0
    config = (
        model_table("parent", "parent.pt") + "\n" + model_table("pruned", "pruned.pt")
        + textwrap.dedent(f"""
            [[pairs]]
            name = "colour-pair"
            parent = "parent"
            pruned = "pruned"
            dataset = "colours"
            {extra}
        """)
    )
    return write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(n)},
        checkpoints={"parent": weights, "pruned": pruned}, suites=(SUITE,),
    )


def test_pruned_model_over_max_drop_fails_the_run_with_full_message(pytester):
    # Zeroing the last class of 10 costs 10% accuracy on balanced data: parent 1.0, pruned 0.9.
    root = write_project(pytester, drop_classes=1)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)  # efficiency facts pass, the margin fails
    result.stdout.fnmatch_lines([
        "*test_accuracy_margin*colour-pair*",
        "*[[]colour-pair[]] accuracy drop 0.1000 > max_drop 0.005 (parent 1.0000, pruned 0.9000)*",
    ])
    result.stdout.fnmatch_lines([
        "*prunecheck gates*", "accuracy_margin / colour-pair: 1 FAIL",
        "  FAIL   accuracy drop*0.1000*<= 0.005 max_drop*-0.0950",
    ])
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert report["schema"] == "prunecheck-report" and report["summary"]["gates_failed"] == 1
    (gate,) = report["gates"]
    assert gate["parent"] == pytest.approx(1.0) and gate["pruned"] == pytest.approx(0.9)
    assert (root / "reports" / "prunecheck.md").read_text().startswith("# prunecheck report: FAILED")


def test_identical_models_pass_and_second_run_predicts_nothing(pytester):
    root = write_project(pytester, drop_classes=0)
    first = pytester.runpytest("suites", "-p", "no:cacheprovider", "-s")
    first.assert_outcomes(passed=2)
    # identical weights share a fingerprint, so the pair costs one prediction
    assert "prunecheck: predicting parent on colours" in first.stdout.str()
    second = pytester.runpytest("suites", "-p", "no:cacheprovider", "-s")
    second.assert_outcomes(passed=2)
    assert "predicting" not in second.stdout.str()
    facts = json.loads((root / "reports" / "prunecheck.json").read_text())["data"]
    assert facts[0]["section"] == "efficiency" and facts[0]["payload"]["parent"]["parameters"] == 20


def test_confident_mode_from_the_command_line(pytester):
    # Drop 0.1 with a CI well above 0.005: fails in every mode; lenient too.
    write_project(pytester, drop_classes=1)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--prunecheck-mode", "lenient")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*accuracy drop (lenient: 95% CI*"])


def test_bad_config_is_a_usage_error_without_traceback(pytester):
    write_project(pytester, drop_classes=0)
    toml = pytester.path / "prunecheck.toml"
    toml.write_text(toml.read_text().replace('batch_size = 64', 'batch_size = "big"'))
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "prunecheck.toml" in err and "run.batch_size" in err and "Traceback" not in err


def test_bad_option_value_is_rejected_with_a_sentence(pytester):
    write_project(pytester, drop_classes=0)
    result = pytester.runpytest("suites", "--prunecheck-device", "tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected auto, cpu, cuda or cuda:N, found 'tpu'" in result.stderr.str()


def test_bad_ini_value_names_its_source(pytester):
    write_project(pytester, drop_classes=0)
    pytester.makeini("[pytest]\nprunecheck_batch_size = zero\n")
    result = pytester.runpytest("suites")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "prunecheck_batch_size" in result.stderr.str() and "'zero'" in result.stderr.str()


def test_model_that_does_not_load_stops_the_run_before_any_test(pytester):
    # The session-start deep check (prunecheck.validation) reports it once, not once per test.
    root = write_project(pytester, drop_classes=0)
    (root / "pruned.pt").write_bytes(b"not a checkpoint")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *prunecheck.toml: 1 problem found by the deep check:",
                                 "  models.pruned: cannot read *pruned.pt as a state dict*"])
    assert "During handling" not in result.stderr.str()
    assert not (root / "reports").exists()  # no test ran: nothing to report


def test_output_width_mismatch_is_reported(pytester):
    root = write_project(pytester, drop_classes=0)
    toml = root / "prunecheck.toml"
    toml.write_text(toml.read_text().replace(
        'weights = "pruned.pt"', 'weights = "pruned12.pt"\nkwargs = { num_classes = 12 }'))
    assert "pruned12.pt" in toml.read_text()
    torch.save(red_channel_weights(12), root / "pruned12.pt")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["  models.pruned: model 'pruned' outputs 12 classes but dataset 'colours' has 10"])


def test_gate_results_reach_junit_xml(pytester):
    root = write_project(pytester, drop_classes=1)
    pytester.runpytest("suites", "-p", "no:cacheprovider", "--junitxml", "out.xml")
    xml = (root / "out.xml").read_text()
    assert 'name="prunecheck_gate"' in xml and "max_drop" in xml


def test_suites_without_configured_families_are_deselected_not_skipped(pytester):
    write_project(pytester, drop_classes=0)
    (pytester.path / "suites" / "test_family.py").write_text("def test_needs_family(family):\n    pass\n")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=1, skipped=0)
