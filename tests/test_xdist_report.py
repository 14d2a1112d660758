"""The plugin's reports end to end (pytester): failing gates, interrupted runs,
GitHub step summary, and one merged report under pytest-xdist equal to a serial run's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from prunecheck.report.record import validate_report
from prunecheck.testing import class_colour_images, red_channel_weights, write_cifar10

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"


def write_project(pytester: pytest.Pytester) -> Path:
    """Three pairs on a 10-class colour dataset: 'good' (identical weights), 'bad' (the
    last class zeroed: accuracy drop 0.1, class 9 collapses) and 'known' (the same, listed in
    expect_fail). Classes have 10 images, so the per-class gate is told to gate classes that small."""
    root = pytester.path
    images, labels = class_colour_images(100)
    write_cifar10(root / "data", images, labels)
    weights = red_channel_weights()
    torch.save(weights, root / "parent.pt")
    pruned = {k: v.clone() for k, v in weights.items()}
    pruned["fc.weight"][-1:] = 0
    pruned["fc.bias"][-1:] = 0
    torch.save(pruned, root / "pruned.pt")
    models = "".join(
        f'[models.{name}]\nfactory = "prunecheck.testing:RedChannelNet"\nweights = "{file}"\n\n'
        for name, file in (("parent", "parent.pt"), ("same", "parent.pt"), ("pruned", "pruned.pt"))
    )
    (root / "prunecheck.toml").write_text(textwrap.dedent("""
        [run]
        device = "cpu"

        [datasets.colours]
        kind = "cifar10"
        root = "data"
        mean = [0.0, 0.0, 0.0]
        std = [1.0, 1.0, 1.0]

        [gates.class_accuracy]
        min_class_images = 10

    """) + models + textwrap.dedent("""
        [[pairs]]
        name = "good"
        parent = "parent"
        pruned = "same"
        dataset = "colours"

        [[pairs]]
        name = "bad"
        parent = "parent"
        pruned = "pruned"
        dataset = "colours"

        [[pairs]]
        name = "known"
        parent = "parent"
        pruned = "pruned"
        dataset = "colours"
        expect_fail = ["accuracy_margin", "class_accuracy"]
    """))
    (root / "suites").mkdir()
    (root / "suites" / "test_accuracy_margin.py").write_text(SUITE.read_text())
    return root


def read_report(root: Path) -> dict:
    doc = json.loads((root / "reports" / "prunecheck.json").read_text())
    validate_report(doc)
    return doc


def comparable(doc: dict) -> dict:
    """The report without what legitimately differs between two runs (the time)."""
    return {key: value for key, value in doc.items() if key != "created"}


def test_failing_gates_give_a_complete_report(pytester):
    root = write_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.assert_outcomes(passed=8, failed=2, xfailed=2)  # 3 efficiency and 3 PIE tests pass
    doc = read_report(root)
    assert [(g["name"], g["subject"], g["status"]) for g in doc["gates"]] == [
        ("accuracy_margin", "bad", "FAIL"), ("class_accuracy", "bad", "FAIL"),
        ("accuracy_margin", "known", "XFAIL"), ("class_accuracy", "known", "XFAIL"),
        ("accuracy_margin", "good", "PASS"), ("class_accuracy", "good", "PASS"),
    ]
    assert doc["summary"]["verdict"] == "FAILED" and doc["session"] == {"exitstatus": 1, "interrupted": False, "reason": "",
                                                                             "deselected": 0, "selection": "",
                                                                             "restricted_pairs": {}}
    assert sorted((e["section"], e["subject"]) for e in doc["data"] if e["section"] == "efficiency") == [
        ("efficiency", "bad"), ("efficiency", "good"), ("efficiency", "known")]
    assert len(doc["data"]) == 9  # efficiency, class_accuracy and pies per pair
    result.stdout.fnmatch_lines([
        "*prunecheck gates*",
        "accuracy_margin / bad: 1 FAIL",
        "  FAIL   accuracy drop*",
        "accuracy_margin / known: 1 XFAIL",
        "accuracy_margin / good: 1 PASS",
        "FAILED: 6 gates: 2 failed, 2 known failures (expect_fail), 2 passed",
        "reports: *prunecheck.json, *prunecheck.md, *prunecheck.html*",
    ])
    html = (root / "reports" / "prunecheck.html").read_text()
    assert '<tr class="FAIL">' in html and '<tr class="XFAIL">' in html and "<h3>Efficiency</h3>" in html


def test_stopped_with_x_the_report_holds_what_ran(pytester):
    root = write_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-x", "-k", "test_accuracy_margin")
    assert result.ret == 1
    doc = read_report(root)
    assert doc["session"]["interrupted"] and "stopping after 1 failures" in doc["session"]["reason"]
    # 'good' passes, 'bad' fails, the run stops before 'known'
    assert [(g["subject"], g["status"]) for g in doc["gates"]] == [("bad", "FAIL"), ("good", "PASS")]
    assert (root / "reports" / "prunecheck.md").read_text().startswith(
        "# prunecheck report: FAILED (run interrupted: incomplete)")
    assert "run interrupted (stopping after 1 failures)" in " ".join(result.stdout.str().split())


def test_keyboard_interrupt_still_writes_the_report(pytester):
    root = write_project(pytester)
    (root / "suites" / "test_zz_interrupt.py").write_text(
        "def test_interrupt(pair):\n    raise KeyboardInterrupt\n")
    # no_reraise_ctrlc: pytester would re-raise the inner run's KeyboardInterrupt in this session
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = read_report(root)
    assert doc["session"] == {"exitstatus": 2, "interrupted": True, "reason": "KeyboardInterrupt",
                              "deselected": 0, "selection": "",
                              "restricted_pairs": {}}
    assert len(doc["gates"]) == 6  # the suite ran before the interrupt
    assert (root / "reports" / "prunecheck.html").exists()


def test_github_step_summary_gets_the_markdown(pytester, monkeypatch):
    root = write_project(pytester)
    summary = root / "step_summary.md"
    summary.write_text("## earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.runpytest("suites", "-p", "no:cacheprovider")
    text = summary.read_text()
    assert text.startswith("## earlier step\n# prunecheck report: FAILED\n")
    assert "accuracy drop 0.1000 > max_drop 0.005" in text


def test_xdist_writes_one_merged_report_equal_to_a_serial_run(pytester):
    pytest.importorskip("xdist")
    root = write_project(pytester)
    serial = pytester.runpytest("suites", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=8, failed=2, xfailed=2)
    serial_doc = read_report(root)
    (root / "reports" / "prunecheck.json").unlink()
    parallel = pytester.runpytest("suites", "-p", "no:cacheprovider", "-n", "2")
    parallel.assert_outcomes(passed=8, failed=2, xfailed=2)
    parallel_doc = read_report(root)
    assert comparable(parallel_doc) == comparable(serial_doc)
    assert len(parallel_doc["gates"]) == 6 and len(parallel_doc["tests"]) == 12
    # the controller printed the one summary; no worker wrote a report of its own
    assert parallel.stdout.str().count("== prunecheck gates ==") == 1
    assert sorted(p.name for p in (root / "reports").iterdir()) == ["prunecheck.html", "prunecheck.json",
                                                                     "prunecheck.md"]
