"""Efficiency facts per pair (SPEC 4.6)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

TITLE = "Efficiency"
HEADERS = ["pair", "model", "params", "non-zero", "prune ratio", "MFLOPs", "eff. MFLOPs", "zipped KiB", "compression"]


def render(entries: list[dict[str, Any]]) -> str:
    rows = []
    for entry in entries:
        payload = entry["payload"]
        for role in ("parent", "pruned"):
            f = payload[role]
            rows.append([
                entry["subject"], f"{role}: {payload[role + '_name']}", f["parameters"], f["nonzero_parameters"],
                f"{f['prune_ratio']:.3f}", f"{f['flops'] / 1e6:.2f}", f"{f['effective_flops'] / 1e6:.2f}",
                f"{f['zipped_bytes'] / 1024:.1f}",
                f"{payload['compression_ratio']:.2f}x" if role == "pruned" else "",
            ])
    note = "\n\nFLOPs count a multiply-add as 2; effective FLOPs scale each conv/linear layer by its weight density; compression = parent zipped size / pruned zipped size."
    return tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True) + note
