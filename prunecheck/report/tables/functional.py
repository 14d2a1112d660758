"""Functional similarity (SPEC 4.4; seed 002, Sec. 4 and Fig. 3/4): report tables.

Entries come from ``suites/test_functional_similarity.py``: ``kind = "noise"``
(one per pair and eps: agreement and softmax distance of the pruned model and
of the reference with the parent) and ``kind = "backselect"`` (overlap of
informative pixels and cross-confidences).
"""

from __future__ import annotations

from typing import Any

from prunecheck.report.table import Block, Strong, Table

TITLE = "Functional similarity"
NOISE_HEADERS = [
    "pair", "eps", "R", "images", "agreement pruned", "agreement reference",
    "distance pruned", "distance reference", "pruned closer",
]
BACKSELECT_HEADERS = ["pair", "model", "images", "pixel overlap with parent", "confidence on parent's pixels", "parent's confidence on its pixels"]
NOISE_NUMERIC = NOISE_HEADERS[1:-1]
BACKSELECT_NUMERIC = BACKSELECT_HEADERS[2:]


def _mean_std(point: dict[str, Any] | None, key: str) -> str:
    if not point:
        return ""
    mean, std = point[f"mean_{key}"], point[f"std_{key}"]
    return f"{mean:.4f}" if len(point[key]) == 1 else f"{mean:.4f} ± {std:.4f}"


def _noise_rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for entry in sorted(entries, key=lambda e: (e["subject"], e["payload"]["eps"])):
        p = entry["payload"]
        pruned, reference = p["pruned"], p.get("reference")
        closer: str | Strong = ""
        if reference:
            closer = "yes" if pruned["mean_agreement"] >= reference["mean_agreement"] else Strong("no")
        rows.append([
            entry["subject"], f"{p['eps']:g}", str(p["repetitions"]), str(p["images"]),
            _mean_std(pruned, "agreement"), _mean_std(reference, "agreement"),
            _mean_std(pruned, "distance"), _mean_std(reference, "distance"), closer,
        ])
    return rows


def _backselect_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        p = entry["payload"]
        cross = p["cross_confidence"]
        for role, overlap in p["overlap_with_parent"].items():
            rows.append([
                entry["subject"], f"{role}: {p['models'][role]}", str(p["images"]), f"{overlap:.4f}",
                f"{cross['parent'][role]:.4f}", f"{cross[role]['parent']:.4f}",
            ])
    return rows


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """The noise table (one row per pair and eps) and the BackSelect table, each with its notes."""
    noise = [e for e in entries if e["payload"].get("kind") == "noise"]
    backselect = [e for e in entries if e["payload"].get("kind") == "backselect"]
    blocks: list[Block] = []
    if noise:
        note = ("Agreement: fraction of images where the model's argmax equals the parent's; distance: mean L2 "
                "norm of the softmax difference; inputs x + U(-eps, eps) in normalised space, mean ± std over R "
                "seeded repetitions (one pass at eps 0). Pruned closer: agreement pruned >= agreement reference.")
        blocks.append(Table(NOISE_HEADERS, _noise_rows(noise), numeric=NOISE_NUMERIC, notes=(note,)))
    if backselect:
        first = backselect[0]["payload"]
        note = (f"BackSelect: the {first['keep_fraction']:.0%} most informative pixels per image "
                f"({first['pixels_per_round']} pixels removed per round); overlap = shared pixels / set size; "
                "confidences are true-class probabilities with only the other model's informative pixels visible.")
        blocks.append(Table(BACKSELECT_HEADERS, _backselect_rows(backselect), numeric=BACKSELECT_NUMERIC,
                            notes=(note,)))
    return blocks

