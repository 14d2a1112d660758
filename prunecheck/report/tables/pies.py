"""Pruning identified exemplars per pair (Hooker et al. 2019): count, classes, first images."""

from __future__ import annotations

from typing import Any

from prunecheck.report.format import class_cell
from prunecheck.report.table import Block, Strong, Table

TITLE = "Pruning identified exemplars (PIEs)"
HEADERS = ["pair", "unpruned population", "pruned population", "PIEs", "fraction", "classes (label: PIEs / images)"]
FIRST_HEADERS = ["pair", "image", "label", "unpruned modal", "pruned modal"]
NUMERIC = ["PIEs", "fraction"]
FIRST_NUMERIC = ["image"]
#: Classes listed per pair in the summary row.
TOP_CLASSES = 8


def _population(models: list[dict[str, Any]]) -> str:
    return " + ".join(m["model"] + (f" ({m['members']} members)" if m["members"] > 1 else "") for m in models)


def _classes(payload: dict[str, Any]) -> str:
    shown = [f"{class_cell(c)}: {c['pies']}/{c['images']}" for c in payload["classes"][:TOP_CLASSES]]
    rest = len(payload["classes"]) - len(shown)
    return ", ".join(shown) + (f", +{rest} more classes" if rest > 0 else "")


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """The PIE count per pair, then the first PIEs of every pair (their thumbnails are in the HTML page)."""
    rows, first = [], []
    for entry in entries:
        p = entry["payload"]
        if "error" in p:
            rows.append([entry["subject"], "", "", "not computed", "", p["error"]])
            continue
        fraction: str | Strong = f"{p['fraction']:.4f}"
        limit = p.get("max_pie_fraction")
        if limit is not None and p["fraction"] > limit:
            fraction = Strong(f"{fraction} > {limit:g}")
        rows.append([entry["subject"], _population(p["unpruned"]), _population(p["pruned"]), p["pies"],
                     fraction, _classes(p) or "none"])
        for item in p["first"]:
            first.append([entry["subject"], item["index"], item["label"],
                          "/".join(map(str, item["unpruned_modal"])), "/".join(map(str, item["pruned_modal"]))])
    note = ("A PIE is an image whose modal (most voted) prediction differs between the unpruned and the pruned "
            "population; with tied votes the modal prediction is the set of tied classes (a/b) and the image counts "
            "only when the two sets share no class.")
    blocks: list[Block] = [Table(HEADERS, rows, numeric=NUMERIC, notes=(note,))]
    if first:
        blocks.append(Table(FIRST_HEADERS, first, numeric=FIRST_NUMERIC,
                            title=("First PIEs (thumbnails in the HTML report):",)))
    return blocks

