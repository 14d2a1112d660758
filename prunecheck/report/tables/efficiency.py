"""Efficiency facts per pair (SPEC 4.6)."""

from __future__ import annotations

from typing import Any

from prunecheck.report.table import Block, Table

TITLE = "Efficiency"
HEADERS = [
    "pair", "model", "params", "non-zero", "zeros ratio", "removable", "structural", "MFLOPs",
    "eff. MFLOPs", "struct. MFLOPs", "zipped KiB", "file KiB", "compression",
]
NUMERIC = HEADERS[2:]


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """One row per model (parent, pruned) of each pair, with the notes that define the columns."""
    rows = []
    for entry in entries:
        payload = entry["payload"]
        ratios = payload.get("ratios")  # reports written before structural counting lack it
        for role in ("parent", "pruned"):
            f = payload[role]
            structural = f"{ratios['structural']:.3f}" if ratios and role == "pruned" else ""
            traced = "" if f.get("structure_traced", True) else " (layer-local)"
            rows.append([
                entry["subject"], f"{role}: {payload[role + '_name']}", f["parameters"], f["nonzero_parameters"],
                f"{f['prune_ratio']:.3f}",
                f"{f['removable_parameters'] / f['prunable_parameters']:.3f}{traced}"
                if f.get("prunable_parameters") and "removable_parameters" in f else "",
                structural,
                f"{f['flops'] / 1e6:.2f}", f"{f['effective_flops'] / 1e6:.2f}",
                f"{f['structural_flops'] / 1e6:.2f}" if "structural_flops" in f else "",
                f"{f['zipped_bytes'] / 1024:.1f}",
                f"{f['artifact_bytes'] / 1024:.1f}" if f.get("artifact_bytes") else "",
                f"{payload['compression_ratio']:.2f}x" if role == "pruned" else "",
            ])
    note = (
        "zeros ratio = exact zeros / prunable (Conv/Linear) weight entries; removable = entries a structural "
        "pruner could remove (dead output or input channel, followed through BN, residual sums and "
        "concatenations); structural = 1 - (prunable - removable)(pruned) / prunable(parent), "
        "= 1 - params(pruned)/params(parent) for a physically smaller model. FLOPs count a multiply-add as 2; "
        "effective FLOPs scale each conv/linear layer by its weight density, structural FLOPs by its "
        "non-removable fraction (the shrunk network's FLOPs); compression = parent zipped size / pruned zipped "
        "size; file = the model file as loaded."
    )
    return [Table(HEADERS, rows, numeric=NUMERIC, notes=(note,))]

