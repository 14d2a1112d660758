"""The per-class accuracy gate, PIEs and relative margins: pure gate functions and pytester runs.

The planted pair is RedChannelNet on constant-colour images (prunecheck.testing):
zeroing the last row of the pruned model's classifier makes it miss exactly class 9
and nothing else, so every expected number below is worked out by hand.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from prunecheck.config.options import ClassAccuracyOptions
from prunecheck.core.views import NOMINAL
from prunecheck.engine.predictor import Predictions
from prunecheck.gates.decide import GateResult, decide, with_relative_drop
from prunecheck.gates.perclass import PiePopulations, class_accuracy, pie_report, png_thumbnail
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"


def predictions(model: str, predicted: list[int], labels: list[int], num_classes: int) -> Predictions:
    probs = torch.full((len(labels), num_classes), 0.0)
    probs[torch.arange(len(labels)), torch.tensor(predicted)] = 1.0
    return Predictions(model=model, dataset="d", view=NOMINAL, log_probs=probs.clamp_min(1e-30).log()[None],
                       labels=torch.tensor(labels))


def options(**changes):
    return {**ClassAccuracyOptions(), **changes}


def class_accuracy_gate(*args, **kwargs) -> tuple[GateResult, dict]:
    """The gate's one result and its one report entry."""
    outcome = class_accuracy(*args, **kwargs)
    (result,) = outcome.results
    ((section, subject, payload),) = outcome.records
    assert section == "class_accuracy" and subject == kwargs["subject"]
    return result, payload


def pies(populations, options, subject="pair") -> tuple[list[GateResult], dict]:
    """The PIE report's results and its one report entry."""
    outcome = pie_report(populations, options, subject=subject)
    ((section, entry_subject, payload),) = outcome.records
    assert section == "pies" and entry_subject == subject
    return list(outcome.results), payload


# ---------------------------------------------------------------- class_accuracy_gate
def test_worst_gated_class_decides_and_small_classes_are_reported_only():
    # class 0: 60 images, pruned misses 12 (drop 0.2); class 1: 60 images, misses 3 (0.05);
    # class 2: 10 images, all missed (drop 1.0) but below min_class_images = 50.
    labels = [0] * 60 + [1] * 60 + [2] * 10
    pruned = [1] * 12 + [0] * 48 + [0] * 3 + [1] * 57 + [0] * 10
    result, payload = class_accuracy_gate(
        predictions("p", labels, labels, 3), predictions("q", pruned, labels, 3), options(), subject="pair"
    )
    assert not result.passed
    assert result.value == pytest.approx(0.2) and result.parent == 1.0 and result.pruned == pytest.approx(0.8)
    assert result.message == "accuracy drop of class 0 (60 images) 0.2000 > max_class_drop 0.1 (parent 1.0000, pruned 0.8000)"
    rows = {row["class"]: row for row in payload["classes"]}
    assert rows[2]["gated"] is False and rows[2]["drop"] == 1.0 and rows[2]["pruned_correct"] == 0
    assert rows[1]["pruned_correct"] == 57 and payload["worst_class"] == 0


def test_class_names_of_the_dataset_name_the_worst_class():
    labels = [0] * 60 + [1] * 60
    pruned = [0] * 60 + [0] * 30 + [1] * 30
    named = dataclasses.replace(predictions("p", labels, labels, 2), classes=("cat", "dog"))
    result, payload = class_accuracy_gate(named, predictions("q", pruned, labels, 2), options(), subject="pair")
    assert result.message.startswith("accuracy drop of class 1 'dog' (60 images) 0.5000 > max_class_drop 0.1")
    assert [row["name"] for row in payload["classes"]] == ["cat", "dog"]
    unnamed, payload = class_accuracy_gate(predictions("p", labels, labels, 2), predictions("q", pruned, labels, 2),
                                           options(), subject="pair")
    assert unnamed.message.startswith("accuracy drop of class 1 (60 images)")
    assert [row["name"] for row in payload["classes"]] == [None, None]


def test_no_class_large_enough_fails_closed_with_the_threshold():
    labels = [0] * 10 + [1] * 10
    result, _ = class_accuracy_gate(
        predictions("p", labels, labels, 2), predictions("q", labels, labels, 2), options(), subject="pair"
    )
    assert not result.passed
    assert "no class has at least min_class_images = 50 images (the largest has 10)" in result.message


def test_confident_mode_gates_the_class_with_the_worst_upper_bound():
    # class 0: 400 images, drop 0.085 (SE ~0.014); class 1: 50 images, drop 0.08 (SE ~0.038):
    # point mode passes on class 0; confident mode's worst upper bound (~0.16) is class 1's.
    labels = [0] * 400 + [1] * 50
    pruned = [1] * 34 + [0] * 366 + [0] * 4 + [1] * 46
    parent = predictions("p", labels, labels, 2)
    point, _ = class_accuracy_gate(parent, predictions("q", pruned, labels, 2), options(), subject="s")
    assert point.passed and point.details["class"] == 0
    sure, payload = class_accuracy_gate(
        parent, predictions("q", pruned, labels, 2), options(mode="confident"), subject="s", n_resamples=500
    )
    assert sure.details["class"] == 1 and not sure.passed and sure.ci[1] > 0.13
    assert all(row["ci"] is not None for row in payload["classes"])


# ---------------------------------------------------------------- PIEs on hand-made populations
def test_pies_from_hand_made_populations_without_a_workspace():
    from prunecheck.config.options import PiesOptions
    from prunecheck.data.base import TensorDataset

    # 6 images of classes 0, 0, 1, 1, 2, 2; the pruned model moves images 1 and 4 to another class
    labels = [0, 0, 1, 1, 2, 2]
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 4, 4).contiguous()
    dataset = TensorDataset("d", images, torch.tensor(labels), 3, (0, 0, 0), (1, 1, 1))
    populations = PiePopulations(
        [predictions("p", labels, labels, 3)], [predictions("q", [0, 2, 1, 1, 0, 2], labels, 3)], dataset)
    results, payload = pies(populations, {**PiesOptions(), "thumbnails": 1, "thumbnail_size": 8})
    assert results == []  # max_pie_fraction not set: reported only
    assert payload["pies"] == 2 and payload["images"] == 6 and payload["fraction"] == pytest.approx(1 / 3)
    assert payload["classes"] == [{"class": 0, "pies": 1, "images": 2, "name": None},
                                  {"class": 2, "pies": 1, "images": 2, "name": None}]  # hand-made: no class names
    (first,) = payload["first"]
    assert (first["index"], first["label"], first["unpruned_modal"], first["pruned_modal"]) == (1, 0, [0], [2])
    (gated,), _ = pies(populations, {**PiesOptions(), "max_pie_fraction": 0.25})
    assert not gated.passed and gated.message == "PIE fraction (2 of 6 images) 0.3333 > max_pie_fraction 0.25"


def test_pies_fail_closed_with_the_reason_in_the_report_entry():
    from prunecheck.config.options import PiesOptions
    from prunecheck.config.settings import PairSpec
    from prunecheck.core.errors import ModelError
    from prunecheck.gates.decide import Unavailable
    from prunecheck.session.pairs import Pair

    class Unloadable:  # a workspace whose reference does not load
        def predict_pair(self, spec):
            raise ModelError("model 'reference': weights file not found")

    unloadable = Pair(PairSpec("pair", "parent", "pruned", "d"), Unloadable()).pie_populations()
    assert isinstance(unloadable, Unavailable)
    (result,), payload = pies(unloadable, PiesOptions())
    assert not result.passed and result.threshold_name == "max_pie_fraction"
    assert result.message == ("pruning identified exemplars: cannot be computed (model 'reference': weights file "
                              "not found); the gate fails closed")
    assert payload == {"error": "model 'reference': weights file not found"}


# ---------------------------------------------------------------- relative margins
def absolute(value, parent, threshold=0.05, mode="point", ci=None):
    return decide(name="accuracy_margin", metric="accuracy drop", value=value, threshold=threshold,
                  threshold_name="max_drop", mode=mode, ci=ci, parent=parent, pruned=parent - value)


def test_relative_drop_must_hold_as_well():
    # drop 0.02 of a parent at 0.5 is 4 % relative: within max_drop 0.05, over max_relative_drop 0.01.
    result = with_relative_drop(absolute(0.02, 0.5), 0.01)
    assert not result.passed and result.threshold_name == "max_relative_drop"
    assert result.value == pytest.approx(0.04)
    assert result.message == "relative accuracy drop 0.0400 > max_relative_drop 0.01 (parent 0.5000, pruned 0.4800)"
    assert result.details["also"]["threshold_name"] == "max_drop" and result.details["also"]["passed"]
    both = with_relative_drop(absolute(0.02, 0.5), 0.05)
    assert both.passed and both.threshold_name == "max_drop" and both.details["also"]["value"] == pytest.approx(0.04)
    assert with_relative_drop(absolute(0.1, 0.5), 0.5).threshold_name == "max_drop"  # absolute fails first
    assert with_relative_drop(absolute(0.02, 0.5), None).details == {}


def test_relative_interval_scales_with_the_parent():
    # absolute CI [0.01, 0.03] of a parent at 0.5 -> relative CI [0.02, 0.06]; confident compares 0.06.
    result = with_relative_drop(absolute(0.02, 0.5, mode="confident", ci=(0.01, 0.03)), 0.07)
    assert result.passed and result.details["also"]["value"] == pytest.approx(0.04)
    relative = with_relative_drop(absolute(0.02, 0.5, mode="confident", ci=(0.01, 0.03)), 0.055)
    assert not relative.passed
    assert relative.message.startswith("relative accuracy drop (confident: 95% CI [0.0200, 0.0600], estimate 0.0400)")


def test_relative_drop_of_a_zero_parent_fails_closed():
    assert "undefined" in with_relative_drop(absolute(0.0, 0.0), 0.01).message


@pytest.mark.parametrize("suite,line", [("accuracy_margin", "max_relative_drop = 5"), ("pies", "max_pie_fraction = 1.5")])
def test_optional_fractions_out_of_range_are_config_errors_naming_the_key(tmp_path, suite, line):
    """The options schema checks them once, at load; the gates read them as they are."""
    from prunecheck.config.loader import load_settings
    from prunecheck.core.errors import ConfigError
    from prunecheck.testing import minimal_config

    path = tmp_path / "prunecheck.toml"
    path.write_text(minimal_config() + f"\n[gates.{suite}]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"<= 1") as info:
        load_settings(path)
    assert info.value.key == f"gates.{suite}.{line.split()[0]}" and info.value.source == str(path)


# ---------------------------------------------------------------- thumbnails
def test_thumbnail_is_a_png_of_the_requested_size():
    from PIL import Image

    image = np.zeros((3, 32, 16), np.uint8)
    image[0] = 200
    png = Image.open(io.BytesIO(png_thumbnail(image, 64)))
    assert png.format == "PNG" and png.size == (32, 64) and png.getpixel((5, 5)) == (200, 0, 0)


# ---------------------------------------------------------------- pytester, planted pair
def write_project(root: Path, gates: str = "", per_class: int = 60) -> Path:
    """Parent exact on 10 colour classes; pruned = class 9 zeroed (collapses to 0 %, others unchanged)."""
    weights = red_channel_weights()
    pruned = {k: v.clone() for k, v in weights.items()}
    pruned["fc.weight"][-1:] = 0
    pruned["fc.bias"][-1:] = 0
    config = model_table("parent", "parent.pt") + model_table("pruned", "pruned.pt") + textwrap.dedent("""
        [[pairs]]
        name = "collapse"
        parent = "parent"
        pruned = "pruned"
        dataset = "colours"
    """) + textwrap.dedent(gates)
    return write_planted_project(
        root, config=config, datasets={"colours": class_colour_images(10 * per_class)},
        checkpoints={"parent": weights, "pruned": pruned}, suites=(SUITE,),
    )


def test_collapsed_class_passes_the_margin_and_fails_the_class_gate(pytester):
    # Total drop 60/600 = 0.1 is within this project's max_drop 0.12; class 9 drops 1.0 > 0.1.
    root = write_project(pytester.path, gates="[gates.accuracy_margin]\nmax_drop = 0.12\n")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        # the class name comes from the CIFAR file's batches.meta (CIFAR-10's class 9 is 'truck')
        "*[[]collapse[]] accuracy drop of class 9 'truck' (60 images) 1.0000 > max_class_drop 0.1 (parent 1.0000, pruned 0.0000)*"
    ])
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    status = {(g["name"], g["status"]) for g in report["gates"]}
    assert status == {("accuracy_margin", "PASS"), ("class_accuracy", "FAIL")}
    md = (root / "reports" / "prunecheck.md").read_text()
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| collapse |")]
    assert ["collapse", "9 (truck)", "60", "60", "0", "1.0000", "0.0000", "**1.0000 > 0.1**", ""] in rows

    # PIEs: exactly the 60 images of class 9 (one model per population: plain argmax disagreement).
    (pies,) = [d["payload"] for d in report["data"] if d["section"] == "pies"]
    assert (pies["pies"], pies["images"], pies["fraction"]) == (60, 600, 0.1)
    assert pies["classes"] == [{"class": 9, "pies": 60, "images": 60, "name": "truck"}]
    assert "9 (truck): 60/60" in md
    first = pies["first"]
    assert len(first) == 16 and all(item["label"] == 9 and item["unpruned_modal"] == [9] for item in first)
    assert [item["index"] for item in first] == [9 + 10 * k for k in range(16)]
    page = (root / "reports" / "prunecheck.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 16 and "First PIEs of <code>collapse</code>" in page
    from PIL import Image

    thumb = Image.open(io.BytesIO(base64.b64decode(first[0]["png"])))
    assert thumb.size == (64, 64) and thumb.getpixel((0, 0))[0] == 9 * 25  # class 9's red level


def test_pie_fraction_gate_and_relative_margin(pytester):
    write_project(pytester.path, gates="""
        [gates.accuracy_margin]
        max_drop = 0.12
        max_relative_drop = 0.05
        [gates.pies]
        max_pie_fraction = 0.05
        [gates.class_accuracy]
        max_class_drop = 1.0
    """)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*[[]collapse[]] relative accuracy drop 0.1000 > max_relative_drop 0.05 (parent 1.0000, pruned 0.9000)*",
    ])
    result.stdout.fnmatch_lines(["*[[]collapse[]] PIE fraction (60 of 600 images) 0.1000 > max_pie_fraction 0.05*"])


def test_bad_optional_threshold_is_a_configuration_error_naming_the_key(pytester):
    write_project(pytester.path, gates='[gates.accuracy_margin]\nmax_relative_drop = "one percent"\n')
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # refused at load, before any test runs
    assert "key 'gates.accuracy_margin.max_relative_drop': expected a number, found string 'one percent'" in result.stderr.str()


def test_per_class_gate_and_pies_add_no_forward_pass(tmp_path):
    from prunecheck.config.loader import load_settings
    from prunecheck.session.pairs import Pair
    from prunecheck.session.workspace import Workspace

    write_project(tmp_path)
    settings = load_settings(tmp_path / "prunecheck.toml")
    workspace = Workspace(settings)
    pair = Pair(settings.pairs[0], workspace)
    parent, pruned = pair.predictions()  # what test_accuracy_margin computes
    passes = workspace.engine.forward_passes
    assert passes > 0
    result, _ = class_accuracy_gate(parent, pruned, settings.gates["class_accuracy"], subject=pair.name)
    _, payload = pies(pair.pie_populations(), settings.gates["pies"], subject=pair.name)
    assert workspace.engine.forward_passes == passes
    assert not result.passed and payload["pies"] == 60


def test_reference_joins_the_unpruned_population_and_is_predicted_once(tmp_path):
    # Reference = parent with class 8 zeroed. Class-9 images: parent and reference say 9, pruned
    # does not -> PIE. Class-8 images: the unpruned votes tie {8, reference's pick}, pruned says 8
    # -> a shared class, not a PIE. So still exactly the 60 class-9 images.
    from prunecheck.config.loader import load_settings
    from prunecheck.session.pairs import Pair
    from prunecheck.session.workspace import Workspace

    root = write_project(tmp_path)
    reference = red_channel_weights()
    reference["fc.weight"][8] = 0
    reference["fc.bias"][8] = 0
    torch.save(reference, root / "reference.pt")
    toml = root / "prunecheck.toml"
    toml.write_text(model_table("reference", "reference.pt") + toml.read_text().replace(
        'pruned = "pruned"\n', 'pruned = "pruned"\nreference = "reference"\n'))
    settings = load_settings(toml)
    workspace = Workspace(settings)
    pair = Pair(settings.pairs[0], workspace)
    pair.predictions()
    before = workspace.engine.forward_passes
    _, payload = pies(pair.pie_populations(), settings.gates["pies"], subject=pair.name)
    reference_batches = -(-600 // 64)  # one leaf model over 600 images in batches of 64
    assert workspace.engine.forward_passes - before == reference_batches
    _, again = pies(pair.pie_populations(), settings.gates["pies"], subject=pair.name)
    assert workspace.engine.forward_passes - before == reference_batches  # cached from then on
    assert [m["model"] for m in payload["unpruned"]] == ["parent", "reference"]
    assert payload["pies"] == 60 and payload["classes"] == [{"class": 9, "pies": 60, "images": 60, "name": "truck"}]
    assert again == payload


def test_bad_pie_option_is_a_configuration_error_naming_the_key(pytester):
    write_project(pytester.path, gates="[gates.pies]\nthumbnails = -1\n")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "exemplars")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "key 'gates.pies.thumbnails': expected an integer >= 0, found integer -1" in result.stderr.str()
