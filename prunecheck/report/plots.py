"""Plots for the HTML report, drawn from the report document's section payloads.

matplotlib is an optional extra (``pip install prunecheck[plots]``): without it
:func:`render_plots` returns ``None`` at the cost of one failed import, and the
reports say how to get the plots. Figures are drawn with the Agg canvas directly
(``matplotlib.figure.Figure``, never ``pyplot``), so no window ever opens and the
user's matplotlib backend is left alone.

One plot per item, each a PNG:

- ``prune_potential-<family>``: prune-accuracy curves per view with the parent's
  delta band and the prune potential (seed 002, Fig. 6); views whose potential is
  below the deployed ratio are marked in red.
- ``uncertainty-<pair>-<method>``: reliability diagrams of parent and pruned model and
  their sparsification curves with the oracle (seed 000).
- ``functional-<pair>``: agreement with the parent and softmax distance vs. noise eps,
  pruned vs. reference (seed 002, Fig. 4); points under the threshold are red.
- ``instability-<pair>``: instability per pruning step with the threshold (seed 004).

Layout: one figure per pair or family (never one wide row of every pair), each a few
inches wide, so the HTML page lays them out in a grid that wraps at any number of
pairs; titles are wrapped to the figure's width and crowded tick labels are turned.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

PARENT, PRUNED, REFERENCE = "#1f77b4", "#ff7f0e", "#7f7f7f"
BAD, GOOD, KNOWN = "#d62728", "#2ca02c", "#b8860b"
STATUS_COLOURS = {"FAIL": BAD, "XFAIL": KNOWN, "PASS": "black"}


@dataclass(frozen=True)
class PlotImage:
    """One plot: a file-name-safe ``name``, a caption and the PNG bytes.

    A plot that could not be drawn has no bytes and says why in ``skipped``; the
    reports show that note in its place, and the other plots and reports are unaffected.
    """

    name: str
    section: str
    title: str
    png: bytes = b""
    skipped: str = ""  # why the plot could not be drawn ("" when it was)
    subject: str = ""  # the pair or family shown ("" for figures of several)


def matplotlib_available() -> bool:
    """True when matplotlib can be imported (the ``plots`` extra is installed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render_plots(doc: dict[str, Any]) -> list[PlotImage] | None:
    """Every plot the report's data supports, or ``None`` without matplotlib.

    Args:
        doc: The report document (``prunecheck.json``).

    Returns:
        The plots in report order (possibly empty), or ``None`` when matplotlib is missing.
    """
    if not matplotlib_available():
        return None
    by_section: dict[str, list[dict[str, Any]]] = {}
    for entry in doc["data"]:
        by_section.setdefault(entry["section"], []).append(entry)
    gates = doc["gates"]
    images: list[PlotImage] = []
    for entry in sorted(by_section.get("prune_potential", []), key=lambda e: e["subject"]):
        images.append(_png(f"prune_potential-{entry['subject']}", "prune_potential",
                           f"Prune-accuracy curves of family {entry['subject']}", prune_potential_figure, entry, gates,
                           subject=entry["subject"]))
    drift = [e for e in by_section.get("uncertainty", []) if e["payload"].get("kind", "drift") == "drift"
             and ("parent" in e["payload"] or "pruned" in e["payload"])]
    for entry in sorted(drift, key=lambda e: (e["subject"], e["payload"].get("method", ""))):
        method = entry["payload"].get("method", "msp")
        images.append(_png(f"uncertainty-{entry['subject']}-{method}", "uncertainty",
                           f"Reliability and sparsification of pair {entry['subject']} ({method})",
                           uncertainty_figure, entry, gates, subject=entry["subject"]))
    noise = [e for e in by_section.get("functional", []) if e["payload"].get("kind") == "noise"]
    for subject in sorted({e["subject"] for e in noise}):
        images.append(_png(f"functional-{subject}", "functional", f"Agreement with the parent vs. input noise, "
                           f"pair {subject}", functional_figure, [e for e in noise if e["subject"] == subject],
                           gates, subject=subject))
    steps = [e for e in by_section.get("instability", []) if e["payload"].get("steps")]
    for entry in sorted(steps, key=lambda e: e["subject"]):
        images.append(_png(f"instability-{entry['subject']}", "instability",
                           f"Pruning instability per step, pair {entry['subject']}", instability_figure, [entry],
                           gates, subject=entry["subject"]))
    return images


def _png(name: str, section: str, title: str, build: Callable[..., Any], *args, subject: str = "") -> PlotImage:
    """Draw one plot; any failure becomes a skipped plot with the reason, never a lost report."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    try:
        figure = build(*args)
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
    except Exception as exc:  # a plot is an illustration: its failure must not cost the reports
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return PlotImage(name=safe, section=section, title=title, skipped=reason, subject=subject)
    return PlotImage(name=safe, section=section, title=title, png=buffer.getvalue(), subject=subject)


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _not_computed(ax, text: str) -> None:
    """An empty panel saying what is missing (a gate that failed closed has no curve)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color=BAD, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _pct(values) -> list[float]:
    return [math.nan if v is None else 100.0 * v for v in values]


def _worst_status(gates: list[dict[str, Any]]) -> str | None:
    for status in ("FAIL", "XFAIL"):
        if any(g["status"] == status for g in gates):
            return status
    return "PASS" if gates else None


def _short(metric: str) -> str:
    """A gate's metric label without its parenthesised details, at most 45 characters."""
    return textwrap.shorten(re.sub(r"\s*\(.*?\)", "", metric), 45, placeholder=" ...")


def _status_title(figure, text: str, gates: list[dict[str, Any]]) -> None:
    """Figure title with the worst gate status of what the figure shows."""
    status = _worst_status(gates)
    failed = [g for g in gates if g["status"] == status and status != "PASS"]
    if failed:
        label = "FAILED" if status == "FAIL" else "known failure (expect_fail)"
        names = sorted({f"{g['subject']}: {_short(g['metric'])}" for g in failed})
        shown = "; ".join(names[:3]) + ("; ..." if len(names) > 3 else "")
        text = f"{text}\n{label}: {shown}"
    fontsize = 11
    figure.suptitle(fit_text(text, figure.get_figwidth(), fontsize), color=STATUS_COLOURS.get(status or "PASS", "black"),
                    fontsize=fontsize)


def fit_text(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` wrapped so that no line is wider than ``width_inches`` at ``fontsize`` points.

    An average character of the default sans-serif font is about 0.55 em wide; 0.6 em
    is used so that a title never reaches the figure's edge (where it would be cut).
    """
    chars = max(12, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


# -- prune potential (seed 002, Fig. 6) -----------------------------------------------------
def prune_potential_figure(entry: dict[str, Any], gates: list[dict[str, Any]]):
    """Accuracy vs. prune ratio per view: members, parent line, parent - delta band, potential."""
    p = entry["payload"]
    views, ratios = p["views"], _pct(p["ratios"])
    deployed = p.get("deployed_ratio")
    cols = min(4, len(views))
    rows = math.ceil(len(views) / cols)
    figure = _figure(3.2 * cols, 2.5 * rows + 0.9)
    axes = figure.subplots(rows, cols, squeeze=False, sharex=True)
    delta_pp = 100.0 * p["delta"]
    for k, view in enumerate(views):
        ax = axes[k // cols][k % cols]
        parent = 100.0 * p["parent_accuracy"][k]
        accuracy = _pct(p["accuracy"][k])
        band = 100.0 * p["delta_band"][k] if "delta_band" in p else parent - delta_pp
        ax.axhspan(band, parent + delta_pp, color=PARENT, alpha=0.18, lw=0, label=f"parent ± delta ({delta_pp:g} pp)")
        ax.axhline(parent, color=PARENT, ls="--", lw=1.2, label="parent accuracy")
        ax.plot([0.0, *ratios], [parent, *accuracy], color="0.35", lw=1.2, zorder=2)
        ok = [a >= band - 1e-9 for a in accuracy]
        ax.scatter([r for r, good in zip(ratios, ok) if good], [a for a, good in zip(accuracy, ok) if good],
                   color=GOOD, s=22, zorder=3, label="member within delta")
        ax.scatter([r for r, good in zip(ratios, ok) if not good], [a for a, good in zip(accuracy, ok) if not good],
                   color=BAD, marker="x", s=30, zorder=3, label="member below the band")
        potential = p.get("potentials", {}).get(view)
        short = potential is not None and deployed is not None and potential + 1e-9 < deployed
        if potential is not None:
            ax.axvline(100.0 * potential, color=BAD if short else GOOD, ls=":", lw=1.5, label="prune potential P")
        if deployed is not None:
            ax.axvline(100.0 * deployed, color="black", ls="-.", lw=1.0, label=f"deployed ({p.get('deployed')})")
        title = view + ("" if potential is None else f": P = {100.0 * potential:.1f}%")
        ax.set_title(fit_text(title + ("  < deployed" if short else ""), 3.0, 9), fontsize=9,
                     color=BAD if short else "black")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if k % cols == 0:
            ax.set_ylabel("accuracy (%)", fontsize=9)
        if k // cols == rows - 1 or k + cols >= len(views):
            ax.set_xlabel("prune ratio (%)", fontsize=9)
            ax.tick_params(labelbottom=True)
    for k in range(len(views), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    seen: dict[str, Any] = {}  # one legend entry per label, from whichever panel has it
    for row in axes:
        for ax in row:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, handle)
    figure.legend(list(seen.values()), list(seen.keys()), loc="outside lower center", ncol=min(len(seen), 4),
                  fontsize=9, frameon=False)
    mine = [g for g in gates if g["name"] == "corruptions" and g["subject"] == entry["subject"]]
    deployed_text = f"; deployed {p.get('deployed')} at {100.0 * deployed:.1f}%" if deployed is not None else ""
    _status_title(figure, f"Family {entry['subject']}: prune-accuracy curves per view (parent '{p['parent']}'"
                          f"{deployed_text}; gated P ({p.get('policy', 'mean')}) = "
                          f"{100.0 * p.get('policy_potential', math.nan):.1f}%)", mine)
    return figure


# -- uncertainty (seed 000) ---------------------------------------------------------------
def _usable(stats: Any) -> bool:
    """Statistics of one model that can be drawn (a model with NaN outputs has none)."""
    return isinstance(stats, dict) and "reliability" in stats and "sparsification" in stats and all(
        math.isfinite(stats.get(key, math.nan)) for key in ("ece", "ause"))


def _reliability(ax, stats: dict[str, Any], role: str, name: str, colour: str) -> None:
    if not _usable(stats):
        ax.set_title(f"{role} '{name}'", fontsize=10)
        _not_computed(ax, "not computed\n(the gate failed closed)")
        return
    rel = stats["reliability"]
    edges = rel["edges"]
    centres = [(a + b) / 2 for a, b in pairwise(edges)]
    widths = [b - a for a, b in pairwise(edges)]
    keep = [k for k, n in enumerate(rel["counts"]) if n and rel["accuracy"][k] is not None]
    ax.bar([centres[k] for k in keep], [rel["accuracy"][k] for k in keep], width=[widths[k] for k in keep],
           color=colour, alpha=0.75, edgecolor="white", label="accuracy per bin")
    ax.bar([centres[k] for k in keep], [rel["confidence"][k] - rel["accuracy"][k] for k in keep],
           bottom=[rel["accuracy"][k] for k in keep], width=[widths[k] for k in keep], color=BAD, alpha=0.25,
           edgecolor=BAD, hatch="//", lw=0.5, label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(fit_text(f"{role} '{name}': ECE {stats['ece']:.4f}", 4.2, 10), fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)


def uncertainty_figure(entry: dict[str, Any], gates: list[dict[str, Any]]):
    """Reliability diagrams (parent, pruned) and sparsification curves with oracles."""
    p = entry["payload"]
    figure = _figure(13.5, 4.2)
    ax_parent, ax_pruned, ax_sparse = figure.subplots(1, 3)
    _reliability(ax_parent, p.get("parent"), "parent", p.get("parent_name", ""), PARENT)
    _reliability(ax_pruned, p.get("pruned"), "pruned", p.get("pruned_name", ""), PRUNED)
    roles = [(role, colour) for role, colour in (("parent", PARENT), ("pruned", PRUNED)) if _usable(p.get(role))]
    for role, colour in roles:
        s = p[role]["sparsification"]
        fractions = [100.0 * f for f in s["fractions"]]
        ax_sparse.plot(fractions, _pct(s["pred_errors"]), color=colour, lw=1.8,
                       label=f"{role}: by uncertainty (AUSE {p[role]['ause']:.4f})")
        ax_sparse.plot(fractions, _pct(s["oracle_errors"]), color=colour, lw=1.2, ls="--", label=f"{role}: oracle")
    # Past the point where every curve is 0 the plot is flat: cut the axis there (with a note).
    last = max((100.0 * f for role, _ in roles for key in ("pred_errors", "oracle_errors")
                for f, e in zip(p[role]["sparsification"]["fractions"], p[role]["sparsification"][key])
                if e is not None and e > 0), default=100.0)
    cut = min(100.0, max(10.0, 1.3 * last + 2.0))
    ax_sparse.set_xlim(-0.5, cut)
    if cut < 100.0 and roles:
        end = 100.0 * max(p[roles[0][0]]["sparsification"]["fractions"])
        ax_sparse.text(0.98, 0.5, f"axis cut: every curve\nstays 0 up to {end:.0f}%", transform=ax_sparse.transAxes,
                       ha="right", va="center", fontsize=8, color="0.35")
    ax_sparse.set_xlabel("most uncertain samples removed (%)")
    ax_sparse.set_ylabel("error on the remaining samples (%)")
    ax_sparse.set_title(f"sparsification ({p.get('uncertainty', 'msp')} uncertainty)", fontsize=10)
    if roles:
        ax_sparse.legend(fontsize=8)
    else:
        _not_computed(ax_sparse, "no sparsification curve\n(the gates failed closed)")
    ax_sparse.grid(alpha=0.3)
    method = p.get("method", "msp")
    mine = [g for g in gates if g["name"] == "uncertainty" and g["subject"] == entry["subject"]
            and g["view"] == "nominal" and f"[{method}]" in g["metric"]]
    _status_title(figure, f"Pair {entry['subject']}, {method}: calibration and sparsification "
                          f"(n = {p.get('n', '?')}, {p.get('dataset', '')})", mine)
    return figure


# -- functional similarity (seed 002, Fig. 4) -----------------------------------------------
def functional_figure(entries: list[dict[str, Any]], gates: list[dict[str, Any]]):
    """Per pair: agreement with the parent (top) and softmax distance (bottom) vs. eps."""
    subjects = sorted({e["subject"] for e in entries})
    figure = _figure(max(4.2 * len(subjects), 6.0), 6.4)
    axes = figure.subplots(2, len(subjects), squeeze=False, sharex="col")
    for col, subject in enumerate(subjects):
        points = sorted((e["payload"] for e in entries if e["subject"] == subject), key=lambda q: q["eps"])
        eps = [q["eps"] for q in points]
        top, bottom = axes[0][col], axes[1][col]
        threshold = points[0].get("min_agreement")
        for role, colour, marker in (("pruned", PRUNED, "o"), ("reference", REFERENCE, "s")):
            series = [q.get(role) for q in points]
            if not any(series):
                continue
            xs = [e for e, s in zip(eps, series) if s]
            model = next(s["model"] for s in series if s)
            for key, ax in (("agreement", top), ("distance", bottom)):
                ax.errorbar(xs, [s[f"mean_{key}"] for s in series if s], yerr=[s[f"std_{key}"] for s in series if s],
                            color=colour, marker=marker, ms=5, capsize=3, lw=1.5, label=f"{role} ({model})")
        if threshold is not None:
            top.axhline(threshold, color=BAD, ls="--", lw=1, label=f"min_agreement {threshold:g}")
            below = [(q["eps"], q["pruned"]["mean_agreement"]) for q in points
                     if q.get("pruned") and q["pruned"]["mean_agreement"] < threshold]
            if below:
                top.scatter(*zip(*below), color=BAD, marker="x", s=80, zorder=4, label="pruned below threshold")
        worse = [(q["eps"], q["pruned"]["mean_agreement"]) for q in points
                 if q.get("reference") and q.get("pruned")
                 and q["pruned"]["mean_agreement"] < q["reference"]["mean_agreement"]]
        if worse:
            top.scatter(*zip(*worse), facecolors="none", edgecolors=BAD, s=160, lw=1.5, zorder=4,
                        label="pruned agrees less than reference")
        mine = [g for g in gates if g["name"] == "functional" and g["subject"] == subject]
        status = _worst_status(mine)
        top.set_title(fit_text(f"{subject}" + ("" if status in (None, "PASS") else f" ({status})"),
                               figure.get_figwidth() / len(subjects) - 0.8, 10), fontsize=10,
                      color=STATUS_COLOURS.get(status or "PASS", "black"))
        top.set_ylabel("agreement with parent")
        bottom.set_ylabel("softmax distance to parent")
        bottom.set_xlabel("input noise eps (normalised space)")
        top.legend(fontsize=8, loc="best")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.set_xticks(eps)
    mine = [g for g in gates if g["name"] == "functional" and g["subject"] in subjects]  # the pairs shown only
    images = points[0].get("images", "?") if entries else "?"
    _status_title(figure, f"Functional similarity: x + U(-eps, eps), mean ± std over repetitions ({images} images)",
                  mine)
    return figure


# -- instability (seed 004) ---------------------------------------------------------------
def instability_figure(entries: list[dict[str, Any]], gates: list[dict[str, Any]]):
    """Per pair: instability of every pruning step as bars, the threshold as a line."""
    entries = sorted(entries, key=lambda e: e["subject"])
    widths = [max(len(e["payload"]["steps"]), 2) for e in entries]
    figure = _figure(max(1.0 * sum(widths) + 1.8 * len(entries), 6.0), 4.4)
    axes = figure.subplots(1, len(entries), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
    for ax, entry in zip(axes, entries):
        p = entry["payload"]
        limit = p.get("max_instability")
        # a step whose instability could not be computed has no bar, and says so
        values = [s["instability"] if s.get("instability") is not None else math.nan for s in p["steps"]]
        labels = [f"{s['index']}\n{s['after']}" for s in p["steps"]]
        colours = [BAD if limit is not None and v > limit else PRUNED for v in values]
        bars = ax.bar(range(len(values)), values, color=colours, width=0.6)
        for bar, value in zip(bars, values):
            shown, height = (f"{value:.2f}", max(value, 0)) if math.isfinite(value) else ("n/a", 0.0)
            ax.annotate(shown, (bar.get_x() + bar.get_width() / 2, height), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        if limit is not None:
            ax.axhline(limit, color=BAD, ls="--", lw=1, label=f"max_instability {limit:g}")
            ax.legend(fontsize=8, loc="upper left")
        # about 15 characters of 8 pt text fit under one bar: turn longer labels so they never overlap
        crowded = max((len(s["after"]) for s in p["steps"]), default=0) > 14
        ax.set_xticks(range(len(values)), labels, fontsize=8, rotation=30 if crowded else 0,
                      ha="right" if crowded else "center", rotation_mode="anchor")
        ax.set_xlim(-0.6, max(len(values), 2) - 0.4)
        ax.set_xlabel("pruning step (model before fine-tuning)")
        ax.set_ylabel("instability (acc drop / acc before)")
        top = max([*_finite(values), limit or 0.0, 0.1])
        ax.set_ylim(min(0.0, min(_finite(values), default=0.0) * 1.2), top * 1.2)
        mine = [g for g in gates if g["name"] == "instability" and g["subject"] == entry["subject"]]
        status = _worst_status(mine)
        ax.set_title(fit_text(f"{entry['subject']} ({p.get('source', '')})"
                              + ("" if status in (None, "PASS") else f": {status}"), figure.get_figwidth() - 0.8, 10),
                     fontsize=10, color=STATUS_COLOURS.get(status or "PASS", "black"))
        ax.grid(alpha=0.3, axis="y")
    shown = {e["subject"] for e in entries}
    _status_title(figure, "Pruning instability per step (seed 004)",
                  [g for g in gates if g["name"] == "instability" and g["subject"] in shown])
    return figure
