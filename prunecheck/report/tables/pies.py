"""Pruning identified exemplars per pair (Hooker et al. 2019): count, classes, first images."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

TITLE = "Pruning identified exemplars (PIEs)"
HEADERS = ["pair", "unpruned population", "pruned population", "PIEs", "fraction", "classes (label: PIEs / images)"]
FIRST_HEADERS = ["pair", "image", "label", "unpruned modal", "pruned modal"]
#: Classes listed per pair in the summary row.
TOP_CLASSES = 8


def _population(models: list[dict[str, Any]]) -> str:
    return " + ".join(m["model"] + (f" ({m['members']} members)" if m["members"] > 1 else "") for m in models)


def _classes(payload: dict[str, Any]) -> str:
    shown = [f"{c['class']}: {c['pies']}/{c['images']}" for c in payload["classes"][:TOP_CLASSES]]
    rest = len(payload["classes"]) - len(shown)
    return ", ".join(shown) + (f", +{rest} more classes" if rest > 0 else "")


def render(entries: list[dict[str, Any]]) -> str:
    rows, first = [], []
    for entry in entries:
        p = entry["payload"]
        if "error" in p:
            rows.append([entry["subject"], "", "", "not computed", "", p["error"]])
            continue
        fraction = f"{p['fraction']:.4f}"
        limit = p.get("max_pie_fraction")
        if limit is not None and p["fraction"] > limit:
            fraction = f"**{fraction} > {limit:g}**"
        rows.append([entry["subject"], _population(p["unpruned"]), _population(p["pruned"]), p["pies"],
                     fraction, _classes(p) or "none"])
        for item in p["first"]:
            first.append([entry["subject"], item["index"], item["label"],
                          "/".join(map(str, item["unpruned_modal"])), "/".join(map(str, item["pruned_modal"]))])
    text = tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True)
    text += (
        "\n\nA PIE is an image whose modal (most voted) prediction differs between the unpruned and the pruned "
        "population; with tied votes the modal prediction is the set of tied classes (a/b) and the image counts "
        "only when the two sets share no class."
    )
    if first:
        text += "\n\nFirst PIEs (thumbnails in the HTML report):\n\n"
        text += tabulate(first, headers=FIRST_HEADERS, tablefmt="github", disable_numparse=True)
    return text
