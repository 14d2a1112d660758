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


def write_project(pytester: pytest.Pytester, *, drop_classes: int, extra: str = "", n: int = 500) -> Path:
    """A project with a CIFAR-10 file, a parent and a pruned RedChannelNet, and the accuracy suite.

    The pruned model has the rows of its last ``drop_classes`` classes zeroed, so it
    misclassifies exactly those classes: accuracy 1 - drop_classes/10, parent 1.0. With the
    default n, each class has 50 images: enough for the per-class gate's min_class_images.
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
    # efficiency facts and PIEs pass; the margin and the per-class gate (class 9: 1.0 -> 0.0) fail
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*test_accuracy_margin*colour-pair*",
        "*[[]colour-pair[]] accuracy drop 0.1000 > max_drop 0.005 (parent 1.0000, pruned 0.9000)*",
    ])
    result.stdout.fnmatch_lines([
        "*prunecheck gates*", "accuracy_margin / colour-pair: 1 FAIL",
        "  FAIL   accuracy drop*0.1000*<= 0.005 max_drop*-0.0950",
    ])
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert report["schema"] == "prunecheck-report" and report["summary"]["gates_failed"] == 2
    (gate,) = [g for g in report["gates"] if g["name"] == "accuracy_margin"]
    assert gate["parent"] == pytest.approx(1.0) and gate["pruned"] == pytest.approx(0.9)
    assert (root / "reports" / "prunecheck.md").read_text().startswith("# prunecheck report: FAILED")


def test_identical_models_pass_and_second_run_predicts_nothing(pytester):
    root = write_project(pytester, drop_classes=0)
    first = pytester.runpytest("suites", "-p", "no:cacheprovider", "-s")
    first.assert_outcomes(passed=4)
    # identical weights share a fingerprint, so the pair costs one prediction
    assert "prunecheck: predicting parent on colours" in first.stdout.str()
    second = pytester.runpytest("suites", "-p", "no:cacheprovider", "-s")
    second.assert_outcomes(passed=4)
    assert "predicting" not in second.stdout.str()
    facts = json.loads((root / "reports" / "prunecheck.json").read_text())["data"]
    assert facts[0]["section"] == "efficiency" and facts[0]["payload"]["parent"]["parameters"] == 20


def test_confident_mode_from_the_command_line(pytester):
    # Drop 0.1 with a CI well above 0.005: fails in every mode; lenient too.
    write_project(pytester, drop_classes=1)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--prunecheck-mode", "lenient")
    result.assert_outcomes(passed=2, failed=2)  # the per-class gate fails in lenient mode too
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
    assert "expected auto, cpu, cuda, cuda:N or mps, found 'tpu'" in result.stderr.str()


def test_bad_ini_value_names_its_source(pytester):
    write_project(pytester, drop_classes=0)
    pytester.makeini("[pytest]\nprunecheck_batch_size = zero\n")
    result = pytester.runpytest("suites")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "prunecheck_batch_size" in result.stderr.str() and "'zero'" in result.stderr.str()


def test_model_that_does_not_load_stops_the_run_before_any_test(pytester):
    # The session-start deep check (prunecheck.session.validation) reports it once, not once per test.
    root = write_project(pytester, drop_classes=0)
    (root / "pruned.pt").write_bytes(b"not a checkpoint")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *prunecheck.toml: 1 problem found by the deep check:",
                                 "  models.pruned: cannot read *pruned.pt as a state dict*"])
    err = result.stderr.str()
    assert "During handling" not in err and "Traceback" not in err and "\x1b[" not in err
    assert err.count("models.pruned: cannot read") == 1  # once, not once per test
    # No test ran, yet the reports are written and say why the run failed.
    doc = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert doc["summary"]["verdict"] == "FAILED" and doc["session"]["exitstatus"] == 4
    assert [t["nodeid"] for t in doc["tests"]] == ["<setup> models.pruned"]
    assert "cannot read" in doc["tests"][0]["message"]
    assert "models.pruned" in (root / "reports" / "prunecheck.html").read_text()


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
    result.assert_outcomes(passed=4, deselected=1, skipped=0)


# -- the device is checked once, at startup ------------------------------------------------
@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(("device", "words"), [
    ("cuda", ["CUDA is not available", "available: cpu"]),
    ("cuda:1", ["CUDA is not available", "available: cpu"]),
    ("mps", ["Apple MPS is not available here", "available: cpu"]),
])
def test_unavailable_device_option_is_one_usage_error(pytester, no_gpu, device, words):
    write_project(pytester, drop_classes=0)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--prunecheck-device", device)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--prunecheck-device = '{device}'" in err
    for word in words:
        assert word in err
    assert "Traceback" not in err and err.count("prunecheck device error") == 1
    result.stdout.no_fnmatch_line("*collected*")  # nothing ran


def test_cuda_index_out_of_range_names_the_config_key(pytester, two_gpus):
    root = write_project(pytester, drop_classes=0)
    toml = root / "prunecheck.toml"
    toml.write_text(toml.read_text().replace('device = "cpu"', 'device = "cuda:5"'))
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{toml}, key 'run.device' = 'cuda:5'" in err
    assert "there is no CUDA device 5: this machine has 2 (cuda:0 to cuda:1); available: cpu, cuda:0, cuda:1" in err


def test_cpu_and_auto_need_no_check(pytester, no_gpu):
    write_project(pytester, drop_classes=0)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--prunecheck-device", "auto")
    result.assert_outcomes(passed=4)


def test_short_summary_line_carries_the_gate_message_as_the_readme_shows(pytester, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # pytest cuts summary lines to the terminal width
    write_project(pytester, drop_classes=1)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-rf")
    line = ("FAILED suites/test_accuracy_margin.py::test_accuracy_margin[colour-pair] - Failed: prunecheck gate "
            "failed: [colour-pair] accuracy drop 0.1000 > max_drop 0.005 (parent 1.0000, pruned 0.9000)")
    assert line in result.stdout.lines
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shape = "FAILED suites/test_accuracy_margin.py::test_accuracy_margin[{}] - Failed: prunecheck gate failed: [{}] "
    assert shape.format("resnet-wt80", "resnet-wt80") + "accuracy drop 0.0132 > max_drop 0.005" in readme


def test_backend_at_its_old_place_is_a_deprecation_warning_in_the_summary(pytester):
    write_project(pytester, drop_classes=0, extra='[gates.corruptions]\nbackend = "imagecorruptions"')
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "*PrunecheckDeprecationWarning*key 'gates.corruptions.backend': deprecated location*"
        "corruption_backend = 'imagecorruptions' under [[]run[]]*",
    ])


def test_axes_fill_suite_tests_only_and_a_tests_own_parametrize_wins(pytester):
    """eps comes from [gates.functional] for a suite test; a test's own eps values, or a plain test
    (no pair / family argument) that happens to call an argument eps, are left alone; methods are the pair's."""
    root = write_project(pytester, drop_classes=0, extra='methods = ["msp", "mc_dropout"]')
    with open(root / "prunecheck.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[gates.functional]\neps = [0.0, 0.25]\n')
    (root / "suites" / "test_axes.py").write_text(textwrap.dedent("""
        import pytest

        def test_levels(pair, eps):
            pass

        @pytest.mark.parametrize("eps", [0.5])
        def test_own_levels(pair, eps):
            pass

        @pytest.mark.parametrize("eps", [7])
        def test_plain(eps):
            pass

        def test_methods(pair, method):
            pass
    """))
    result = pytester.runpytest("suites/test_axes.py", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "suites/test_axes.py::test_levels[[]colour-pair-eps0[]]",
        "suites/test_axes.py::test_levels[[]colour-pair-eps0.25[]]",
        "suites/test_axes.py::test_own_levels[[]colour-pair-0.5[]]",
        "suites/test_axes.py::test_plain[[]7[]]",
        "suites/test_axes.py::test_methods[[]colour-pair-msp[]]",
        "suites/test_axes.py::test_methods[[]colour-pair-mc_dropout[]]",
    ])
    assert "6 tests collected" in result.stdout.str()


def _add_restricted_pair(root: Path, suites: str) -> None:
    """A second pair over the same models, checked only by the suite files ``suites`` names."""
    with open(root / "prunecheck.toml", "a", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(f"""
            [[pairs]]
            name = "restricted"
            parent = "parent"
            pruned = "pruned"
            dataset = "colours"
            suites = {suites}
        """))
    (root / "suites" / "test_other.py").write_text("def test_other(pair, gate):\n    pass\n")


def test_a_pair_restricted_to_some_suite_files_is_left_out_of_the_others(pytester):
    root = write_project(pytester, drop_classes=0)
    _add_restricted_pair(root, '["test_other.py"]')
    result = pytester.runpytest("suites", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0
    ids = [line for line in result.stdout.lines if "::" in line]
    assert [i for i in ids if "restricted" in i] == ["suites/test_other.py::test_other[restricted]"]
    assert sum("colour-pair" in i for i in ids) == 5  # four accuracy-suite tests + test_other
    run = pytester.runpytest("suites", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=6)
    note = "pairs checked by some suites only (pairs[].suites): restricted: test_other.py"
    run.stdout.fnmatch_lines([note])
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert report["session"]["restricted_pairs"] == {"restricted": ["test_other.py"]}
    assert f"- {note}" in (root / "reports" / "prunecheck.md").read_text()
    assert "Pairs checked by some suites only" in (root / "reports" / "prunecheck.html").read_text()


def test_a_suites_entry_naming_no_suite_file_is_a_collection_error(pytester):
    root = write_project(pytester, drop_classes=0)
    _add_restricted_pair(root, '["test_accuracy.py"]')  # the file is test_accuracy_margin.py
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines([
        "*prunecheck configuration error: *prunecheck.toml: pair 'restricted': suites names test_accuracy.py, "
        "but *suites has no such file (it has test_accuracy_margin.py, test_other.py)*",
    ])
