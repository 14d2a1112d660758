"""Pruning instability per step (SPEC 4.5; seed 004, Sec. 3) and one-shot mask damage: report table."""

from __future__ import annotations

from typing import Any

from prunecheck.report.table import Block, Strong, Table

TITLE = "Pruning instability"
HEADERS = ["pair", "quantity", "step", "before", "acc before", "after (before fine-tuning)", "acc after", "value",
           "note"]
NUMERIC = ["acc before", "acc after", "value"]

_NOTES = {
    "parent-fallback": "parent stands in: no pair names the previous step's fine-tuned model",
    "finetuned": "starts from the previous step's fine-tuned model",
}


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """One row per pruning step (or the one-shot mask damage) of each pair."""
    rows = []
    any_mask = False
    for entry in entries:
        payload = entry["payload"]
        for step in payload["steps"]:
            mask = step["kind"] == "mask"
            any_mask |= mask
            limit = payload.get("max_mask_damage" if mask else "max_instability")
            value = step["instability"]
            shown: str | Strong = f"{value:.4f}"
            if limit is not None and value > limit:
                shown = Strong(f"{shown} > {limit:g}")
            note = _NOTES.get(step["acc_before_source"], "")
            if mask:
                note = f"{payload['mask_mode']} final zero mask of the pruned model applied to the parent in one shot"
            rows.append([
                entry["subject"], "one-shot mask damage" if mask else "per-step instability",
                "-" if mask else f"{step['index']}/{step['total']}", step["before"], f"{step['acc_before']:.4f}",
                step["after"], f"{step['acc_after']:.4f}", shown, note,
            ])
    note = (
        "per-step instability = (acc before - acc after) / acc before of one pruning step, accuracies on the "
        "pair's nominal test data; 0 = the step cost nothing, 1 = it destroyed the network (seed 004)."
    )
    if any_mask:
        note += (
            " one-shot mask damage: the same ratio for the parent with the pruned model's final mask applied at "
            "once, used when no pruning step is known (no schedule / pre_finetune); it is not seed 004's "
            "per-step instability and is much larger than any step of an iterative pruning "
            "(gate: max_mask_damage)."
        )
    return [Table(HEADERS, rows, numeric=NUMERIC, notes=(note,))]

