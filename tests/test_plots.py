"""Plots and the HTML page, on small hand-written payloads of the suites' shapes."""

from __future__ import annotations

import base64
import io
import re

import pytest

from prunecheck.report import plots
from prunecheck.report.html import render_html

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.colors import to_hex  # noqa: E402
from PIL import Image  # noqa: E402


def gate(name, subject, metric, status, view="nominal"):
    return {"name": name, "subject": subject, "metric": metric, "status": status, "view": view,
            "passed": status == "PASS"}


def prune_entry():
    # view "fog-1": members at 0.8 and 0.9 fall below parent - delta -> P = 0.5 < deployed 0.8
    return {"section": "prune_potential", "subject": "fam", "payload": {
        "parent": "p", "members": ["m50", "m80", "m90"], "ratios": [0.5, 0.8, 0.9],
        "views": ["nominal", "fog-1"], "parent_accuracy": [0.90, 0.60],
        "accuracy": [[0.91, 0.90, 0.80], [0.60, 0.50, 0.40]], "delta": 0.005, "delta_band": [0.895, 0.595],
        "potentials": {"nominal": 0.8, "fog-1": 0.5}, "summary": {}, "policy": "mean", "policy_potential": 0.65,
        "excess_error": {}, "deployed": "m80", "deployed_ratio": 0.8}}


def drift_entry():
    def stats(ece):
        return {"accuracy": 0.9, "ause": 0.01, "ece": ece, "nll": 0.3, "brier": 0.1, "members": 1,
                "sparsification": {"fractions": [0.0, 0.5], "pred_errors": [0.1, 0.05], "oracle_errors": [0.1, 0.0]},
                "reliability": {"edges": [0.0, 0.5, 1.0], "counts": [0, 10], "accuracy": [None, 0.8],
                                "confidence": [None, 0.9]}}
    return {"section": "uncertainty", "subject": "pr", "payload": {
        "kind": "drift", "method": "msp", "uncertainty": "msp", "parent_name": "p", "pruned_name": "q",
        "dataset": "d", "n": 10, "parent": stats(0.05), "pruned": stats(0.1)}}


def noise_entries():
    def point(model, agreements):
        return {"model": model, "agreement": agreements, "distance": [0.1] * len(agreements),
                "mean_agreement": sum(agreements) / len(agreements), "mean_distance": 0.1,
                "std_agreement": 0.0, "std_distance": 0.0}
    return [{"section": "functional", "subject": "pr", "payload": {
        "kind": "noise", "eps": eps, "repetitions": 1, "images": 10, "parent": "p",
        "pruned": point("q", [a]), "reference": point("r", [b]), "min_agreement": 0.9}}
        for eps, a, b in ((0.0, 0.97, 0.95), (0.2, 0.85, 0.90))]


def instability_entry():
    steps = [{"index": k + 1, "total": 2, "before": "p", "after": f"s{k}", "kind": "schedule",
              "acc_before_source": "parent", "acc_before": 0.9, "acc_after": 0.9 * (1 - v), "instability": v}
             for k, v in enumerate((0.1, 0.7))]
    return {"section": "instability", "subject": "pr", "payload": {
        "parent": "p", "pruned": "q", "mask_mode": "unstructured", "source": "schedule", "max_instability": 0.5,
        "steps": steps}}


def doc(gates=()):
    return {"data": [prune_entry(), drift_entry(), *noise_entries(), instability_entry()], "gates": list(gates)}


def visible_axes(figure):
    return [ax for ax in figure.axes if ax.get_visible()]


def test_render_plots_gives_one_png_per_item():
    images = plots.render_plots(doc())
    # one figure per pair/family: a grid cell each, never one wide row of every pair
    assert [i.name for i in images] == ["prune_potential-fam", "uncertainty-pr-msp", "functional-pr", "instability-pr"]
    assert [i.subject for i in images] == ["fam", "pr", "pr", "pr"]
    for image in images:
        assert image.png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = Image.open(io.BytesIO(image.png)).size
        assert width > 300 and height > 200


def test_prune_potential_marks_views_below_the_deployed_ratio():
    figure = plots.prune_potential_figure(prune_entry(), [])
    nominal, fog = visible_axes(figure)
    assert "P = 80.0%" in nominal.get_title() and "< deployed" not in nominal.get_title()
    assert "P = 50.0%" in fog.get_title() and "< deployed" in fog.get_title()
    assert to_hex(fog.title.get_color()) == plots.BAD
    # members under the band are red crosses: fog-1 has two (0.8 and 0.9), nominal one (0.9)
    def crosses(ax):
        return sum(len(c.get_offsets()) for c in ax.collections if c.get_label() == "member below the band")
    assert (crosses(nominal), crosses(fog)) == (1, 2)
    assert nominal.get_ylabel() == "accuracy (%)" and fog.get_xlabel() == "prune ratio (%)"
    assert {t.get_text() for t in figure.legends[0].get_texts()} >= {"parent accuracy", "prune potential P"}


def test_uncertainty_figure_has_labelled_axes_and_flags_failed_gates():
    gates = [gate("uncertainty", "pr", "ECE increase [msp]", "FAIL"),
             gate("uncertainty", "pr", "ECE increase [mc_dropout]", "FAIL")]  # another method: not this figure's
    figure = plots.uncertainty_figure(drift_entry(), gates)
    axes = visible_axes(figure)
    assert len(axes) == 3 and all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)
    assert "ECE 0.0500" in axes[0].get_title() and "ECE 0.1000" in axes[1].get_title()
    title = figure.get_suptitle()
    assert "FAILED: pr: ECE increase [msp]" in title and "mc_dropout" not in title
    assert to_hex(figure._suptitle.get_color()) == plots.BAD
    labels = [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert labels[0] == "parent: by uncertainty (AUSE 0.0100)" and "pruned: oracle" in labels


def test_functional_figure_marks_points_below_the_threshold_and_the_reference():
    figure = plots.functional_figure(noise_entries(), [])
    top = visible_axes(figure)[0]
    marked = {c.get_label(): [tuple(map(float, xy)) for xy in c.get_offsets()] for c in top.collections
              if c.get_label() in ("pruned below threshold", "pruned agrees less than reference")}
    assert marked == {"pruned below threshold": [(0.2, 0.85)], "pruned agrees less than reference": [(0.2, 0.85)]}


def test_instability_bars_over_the_threshold_are_red():
    figure = plots.instability_figure([instability_entry()], [gate("instability", "pr", "step 2", "XFAIL")])
    ax = visible_axes(figure)[0]
    colours = [to_hex(bar.get_facecolor()) for bar in ax.patches]
    assert colours == [plots.PRUNED, plots.BAD]
    assert "XFAIL" in ax.get_title() and ax.get_ylabel().startswith("instability")


def test_html_embeds_every_plot_and_highlights_failing_rows():
    report = {
        "config": "<cfg>", "demo": False, "created": "now", "prunecheck_version": "0",
        "session": {"exitstatus": 1, "interrupted": False, "reason": ""},
        "summary": {"verdict": "FAILED", "gates": 2, "gates_passed": 1, "gates_failed": 1, "gates_xfailed": 0,
                    "errors": 0, "tests": {}},
        "gates": [
            {"status": "FAIL", "name": "accuracy_margin", "subject": "pr", "view": "nominal", "metric": "drop <b>",
             "parent": 1.0, "pruned": 0.9, "value": 0.1, "ci": None, "direction": "max", "threshold": 0.005,
             "threshold_name": "max_drop", "margin": -0.095, "message": "drop 0.1 > 0.005", "nodeid": "t::a"},
            {"status": "PASS", "name": "accuracy_margin", "subject": "ok", "view": "nominal", "metric": "drop",
             "parent": 1.0, "pruned": 1.0, "value": 0.0, "ci": None, "direction": "max", "threshold": 0.005,
             "threshold_name": "max_drop", "margin": 0.005, "message": "fine", "nodeid": "t::b"},
        ],
        "data": doc()["data"], "tests": [],
    }
    images = plots.render_plots(report)
    page = render_html(report, images)
    assert page.count("<figure") == len(images) == 4
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [i.png for i in images]
    assert '<tr class="FAIL">' in page and '<tr class="PASS">' in page
    assert "drop &lt;b&gt;" in page and "&lt;cfg&gt;" in page  # text is escaped
    assert "<h3>Prune potential</h3>" in page and "<h3>Pruning instability</h3>" in page
    assert "pip install prunecheck[plots]" in render_html(report, None)


# -- fail closed: gates without values, and plots that cannot be drawn ---------------------
def test_plots_cope_with_failed_closed_gates():
    """Missing model statistics, NaN values and empty series draw (with a note), never raise."""
    drift = drift_entry()
    del drift["payload"]["pruned"]  # the pruned model's statistics could not be computed
    nan_drift = drift_entry()
    nan_drift["payload"]["pruned"]["ece"] = float("nan")
    unstable = instability_entry()
    unstable["payload"]["steps"][1]["instability"] = float("nan")
    noise = noise_entries()
    noise[1]["payload"]["pruned"] = None
    family = prune_entry()
    family["payload"]["accuracy"][1] = [float("nan")] * 3
    family["payload"]["potentials"] = {}
    family["payload"]["policy_potential"] = float("nan")
    report = {"data": [family, drift, nan_drift, *noise, unstable], "gates": []}
    images = plots.render_plots(report)
    assert [i.skipped for i in images] == [""] * len(images), [i.skipped for i in images]
    assert all(i.png.startswith(b"\x89PNG") for i in images)
    figure = plots.uncertainty_figure(drift, [])
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any("not computed" in t for t in texts)


def test_a_plot_that_fails_is_skipped_with_its_reason_and_the_page_says_so():
    broken = prune_entry()
    del broken["payload"]["views"]  # a payload no plot can be drawn from
    report = {"data": [broken, drift_entry()], "gates": []}
    images = plots.render_plots(report)
    assert [i.name for i in images] == ["prune_potential-fam", "uncertainty-pr-msp"]
    assert images[0].skipped == "KeyError: 'views'" and images[0].png == b""
    assert images[1].skipped == "" and images[1].png.startswith(b"\x89PNG")
    page = render_html({**doc_for_page(), "data": report["data"]}, images)
    assert "Plot skipped: Prune-accuracy curves of family fam: could not be drawn (KeyError: &#x27;views&#x27;)" in page
    assert page.count("<figure") == 1


def doc_for_page():
    return {
        "config": "c.toml", "demo": False, "created": "now", "prunecheck_version": "0",
        "session": {"exitstatus": 1, "interrupted": False, "reason": ""},
        "summary": {"verdict": "FAILED", "gates": 0, "gates_passed": 0, "gates_failed": 0, "gates_xfailed": 0,
                    "errors": 0, "tests": {}},
        "gates": [], "data": [], "tests": [],
    }
