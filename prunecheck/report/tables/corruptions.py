"""Accuracy under corruption (SPEC 4.3, seed 002 Fig. 6a): per pair, and per family as prune-accuracy curves.

Entries (``gate.record("corruptions", subject, payload)``) come in two kinds:

- ``{"kind": "pair", "view", "parent_accuracy", "pruned_accuracy", "source"}``: one per pair and
  view, from ``test_corruption_margin``; rendered as one row per pair, one column per view.
  ``source`` says where a corrupted view's images come from ("generated, cifar profile",
  "released files in <root>"); the report lists it under the table.
- ``{"kind": "family", "parent", "members", "ratios", "views", "parent_accuracy", "accuracy",
  "delta"}``: a family's prune-accuracy curves; rendered as one table per family with a row
  per prune ratio and a column per view.

Cells show accuracy in percent and, in parentheses, the difference to the parent in
percentage points (negative = the pruned model is worse).
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

TITLE = "Accuracy under corruption"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100.0 * value:.1f}"


def _cell(accuracy: Any, parent: Any) -> str:
    if accuracy is None or parent is None:
        return "n/a"
    if not (math.isfinite(accuracy) and math.isfinite(parent)):
        return "n/a"
    diff = 100.0 * (accuracy - parent) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{100.0 * accuracy:.1f} ({diff:+.1f})"


def render_pairs(entries: list[dict[str, Any]]) -> str:
    """One row per pair, one column per view: pruned accuracy % (difference to the parent, pp)."""
    views: list[str] = []
    cells: dict[str, dict[str, str]] = {}
    for entry in entries:
        payload = entry["payload"]
        view = payload["view"]
        if view not in views:
            views.append(view)
        cells.setdefault(entry["subject"], {})[view] = _cell(payload.get("pruned_accuracy"), payload.get("parent_accuracy"))
    rows = [[pair, *(row.get(v, "") for v in views)] for pair, row in cells.items()]
    return tabulate(rows, headers=["pair", *views], tablefmt="github", disable_numparse=True)


def render_sources(entries: list[dict[str, Any]]) -> str:
    """One line per image source of the corrupted views: ``source: view, view, ...``."""
    by_source: dict[str, list[str]] = {}
    for entry in entries:
        payload = entry["payload"]
        source = payload.get("source")
        if source and payload["view"] not in by_source.setdefault(source, []):
            by_source[source].append(payload["view"])
    return "\n".join(f"- {source}: {', '.join(views)}" for source, views in by_source.items())


def render_family(subject: str, payload: dict[str, Any]) -> str:
    """Prune-accuracy curves of one family: a row per prune ratio, a column per view."""
    views = payload["views"]
    rows = [[f"parent: {payload['parent']}", "0 (parent)", *(_pct(a) for a in payload["parent_accuracy"])]]
    for k, (member, ratio) in enumerate(zip(payload["members"], payload["ratios"])):
        rows.append([
            member, f"{100.0 * ratio:.1f}",
            *(_cell(payload["accuracy"][v][k], payload["parent_accuracy"][v]) for v in range(len(views))),
        ])
    table = tabulate(rows, headers=["model", "prune ratio (%)", *views], tablefmt="github", disable_numparse=True)
    return f"Family `{subject}`: prune-accuracy curves, accuracy (%) per view\n\n{table}"


def render(entries: list[dict[str, Any]]) -> str:
    pairs = [e for e in entries if e["payload"].get("kind") == "pair"]
    families = [e for e in entries if e["payload"].get("kind") == "family"]
    blocks = []
    if pairs:
        blocks.append("Pruned accuracy (%) per pair and view\n\n" + render_pairs(pairs))
        sources = render_sources(pairs)
        if sources:
            blocks.append("Images of the corrupted views (profile = the constants of generated corruptions)\n\n"
                          + sources)
    blocks += [render_family(e["subject"], e["payload"]) for e in families]
    note = ("Cells: accuracy in percent; in parentheses the difference to the parent on the same view, "
            "in percentage points (negative = worse than the parent).")
    return "\n\n".join(blocks + [note])
