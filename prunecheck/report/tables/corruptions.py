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

from prunecheck.report.table import Block, BulletList, Code, Paragraph, Table

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


def pairs_table(entries: list[dict[str, Any]]) -> Table:
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
    return Table(["pair", *views], rows, numeric=views, title=("Pruned accuracy (%) per pair and view",))


def sources_list(entries: list[dict[str, Any]]) -> BulletList:
    """One line per image source of the corrupted views: ``source: view, view, ...``."""
    by_source: dict[str, list[str]] = {}
    for entry in entries:
        payload = entry["payload"]
        source = payload.get("source")
        if source and payload["view"] not in by_source.setdefault(source, []):
            by_source[source].append(payload["view"])
    return BulletList.of(*(f"{source}: {', '.join(views)}" for source, views in by_source.items()))


def family_table(subject: str, payload: dict[str, Any]) -> Table:
    """Prune-accuracy curves of one family: a row per prune ratio, a column per view."""
    views = payload["views"]
    rows = [[f"parent: {payload['parent']}", "0 (parent)", *(_pct(a) for a in payload["parent_accuracy"])]]
    for k, (member, ratio) in enumerate(zip(payload["members"], payload["ratios"])):
        rows.append([
            member, f"{100.0 * ratio:.1f}",
            *(_cell(payload["accuracy"][v][k], payload["parent_accuracy"][v]) for v in range(len(views))),
        ])
    title = ("Family ", Code(subject), ": prune-accuracy curves, accuracy (%) per view")
    return Table(["model", "prune ratio (%)", *views], rows, numeric=["prune ratio (%)", *views], title=title)


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """The pairs' table and image sources, a table per family, then the note on the cells."""
    pairs = [e for e in entries if e["payload"].get("kind") == "pair"]
    families = [e for e in entries if e["payload"].get("kind") == "family"]
    blocks: list[Block] = []
    if pairs:
        blocks.append(pairs_table(pairs))
        sources = sources_list(pairs)
        if sources.items:
            blocks += [Paragraph.of("Images of the corrupted views (profile = the constants of generated "
                                    "corruptions)"), sources]
    blocks += [family_table(e["subject"], e["payload"]) for e in families]
    blocks.append(Paragraph.of("Cells: accuracy in percent; in parentheses the difference to the parent on the "
                               "same view, in percentage points (negative = worse than the parent)."))
    return blocks

