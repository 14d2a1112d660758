"""Per-class accuracy drop per pair (Hooker et al. 2019): the most damaged classes."""

from __future__ import annotations

from typing import Any

from prunecheck.report.format import class_cell
from prunecheck.report.table import Block, Code, Paragraph, Run, Strong, Table

TITLE = "Per-class accuracy (most damaged classes)"
HEADERS = ["pair", "class", "images", "parent correct", "pruned correct", "parent acc", "pruned acc", "drop", "95% CI"]
NUMERIC = HEADERS[2:]


def _drop(row: dict[str, Any], limit: float) -> Run:
    shown = f"{row['drop']:.4f}"
    if not row["gated"]:
        return shown + " (not gated)"
    return Strong(f"{shown} > {limit:g}") if row["drop"] > limit else shown


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """The ``report_classes`` largest drops of each pair, worst first."""
    rows = []
    notes = []
    for entry in entries:
        payload = entry["payload"]
        limit = payload["max_class_drop"]
        ranked = sorted(payload["classes"], key=lambda r: (-r["drop"], r["class"]))
        for row in ranked[: payload["report_classes"]]:
            ci = row.get("ci")
            rows.append([
                entry["subject"], class_cell(row), row["images"], row["parent_correct"], row["pruned_correct"],
                f"{row['parent_accuracy']:.4f}", f"{row['pruned_accuracy']:.4f}", _drop(row, limit),
                f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "",
            ])
        small = [r["class"] for r in payload["classes"] if not r["gated"]]
        if small:
            notes.append((Code(entry["subject"]), f": {len(small)} classes with fewer than "
                          f"{payload['min_class_images']} images are reported, not gated."))
    note = Paragraph.of(
        "drop = accuracy(parent) - accuracy(pruned) among the images of that class; the worst gated class "
        "is compared with max_class_drop; rows sorted by drop, the report_classes largest per pair."
    )
    return [Table(HEADERS, rows, numeric=NUMERIC, notes=(note, Paragraph.of(*notes)) if notes else (note,))]

