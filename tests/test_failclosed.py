"""Fail closed without crashing: a pruned model whose outputs are NaN, run through every suite.

Every gate that needs the NaN model fails with a reason, and every report (JSON,
Markdown, HTML, the terminal summary) is still written; the HTML page says which
plots could not be drawn and why.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("test_*.py"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_nan_project(pytester: pytest.Pytester) -> Path:
    weights = red_channel_weights()
    nan_model = {k: v.clone() for k, v in weights.items()}
    nan_model["fc.bias"][:] = float("nan")  # every logit NaN: probabilities cannot be formed
    mild = {k: v.clone() for k, v in weights.items()}
    config = (
        model_table("parent", "parent.pt") + model_table("nan", "nan.pt") + model_table("mild", "mild.pt")
        + model_table("reference", "reference.pt")
        + textwrap.dedent("""
            [[pairs]]
            name = "nan-pair"
            parent = "parent"
            pruned = "nan"
            reference = "reference"
            dataset = "colours"

            [[families]]
            name = "nan-family"
            parent = "parent"
            dataset = "colours"
            members = [{ model = "mild", ratio = 0.5 }, { model = "nan", ratio = 0.8 }]
            deployed = "nan"

            [gates.corruptions]
            corruptions = []
            noise_levels = [0.1]

            [gates.uncertainty]
            blur_radii = [0.0, 1.0, 2.0]

            [gates.functional]
            eps = [0.0, 0.1]
            repetitions = 1
        """)
    )
    return write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(100)},
        checkpoints={"parent": weights, "nan": nan_model, "mild": mild, "reference": weights}, suites=tuple(SUITES),
    )


def test_nan_model_fails_gates_and_every_report_is_written(pytester: pytest.Pytester) -> None:
    root = write_nan_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-p", "no:randomly")
    assert result.ret == 1
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out and "KeyError" not in out
    assert not ANSI.search(out)
    # the terminal summary was written, after the gates failed with their reasons
    assert "prunecheck gates" in out and "reports: " in out
    assert "not finite" in out or "cannot be computed" in out

    reports = root / "reports"
    doc = json.loads((reports / "prunecheck.json").read_text())
    gates = doc["gates"]
    # Every gate on the NaN model's outputs fails. (One-shot mask damage is the parent with the
    # pruned model's zero mask: the NaN bias has no zeros, so that gate rightly passes.)
    nan_gates = [g for g in gates if g["subject"] in ("nan-pair", "nan-family") and g["name"] != "instability"]
    assert {g["name"] for g in nan_gates} == {
        "accuracy_margin", "class_accuracy", "pies", "uncertainty", "corruptions", "functional"}
    assert not any(g["passed"] for g in nan_gates)
    assert all(g["reason"] for g in nan_gates), [g["message"] for g in nan_gates if not g["reason"]]

    markdown = (reports / "prunecheck.md").read_text()
    assert markdown.startswith("# prunecheck report: FAILED") and "nan-pair" in markdown
    html_page = (reports / "prunecheck.html").read_text()
    assert "nan-pair" in html_page and "</html>" in html_page
    for text in (markdown, html_page):
        assert not ANSI.search(text)
        assert "-0.0000" not in text


def test_error_text_is_plain_without_terminal_colour_codes() -> None:
    from prunecheck.core.errors import ModelError
    from prunecheck.gates.decide import cannot_compute

    coloured = "Weights only load failed. \x1b[1mRe-running with weights_only=False\x1b[0m will likely succeed"
    assert str(ModelError(f"model 'm': {coloured}")) == (
        "model 'm': Weights only load failed. Re-running with weights_only=False will likely succeed")
    assert "\x1b" not in cannot_compute(RuntimeError(coloured))
