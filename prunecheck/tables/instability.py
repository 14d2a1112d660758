"""Pruning instability per step (SPEC 4.5; seed 004, Sec. 3): report table."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

TITLE = "Pruning instability"
HEADERS = ["pair", "step", "before", "acc before", "after (before fine-tuning)", "acc after", "instability", "note"]

_NOTES = {
    "parent-fallback": "parent stands in: no pair names the previous step's fine-tuned model",
    "finetuned": "starts from the previous step's fine-tuned model",
}


def render(entries: list[dict[str, Any]]) -> str:
    rows = []
    for entry in entries:
        payload = entry["payload"]
        limit = payload.get("max_instability")
        for step in payload["steps"]:
            value = step["instability"]
            shown = f"{value:.4f}"
            if limit is not None and value > limit:
                shown = f"**{shown} > {limit:g}**"
            note = _NOTES.get(step["acc_before_source"], "")
            if step["kind"] == "mask":
                note = f"{payload['mask_mode']} zero mask of the pruned model applied to the parent"
            rows.append([
                entry["subject"], f"{step['index']}/{step['total']}", step["before"], f"{step['acc_before']:.4f}",
                step["after"], f"{step['acc_after']:.4f}", shown, note,
            ])
    note = (
        "\n\ninstability = (acc before - acc after) / acc before, accuracies on the pair's nominal test data; "
        "0 = the step cost nothing, 1 = it destroyed the network (seed 004)."
    )
    return tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True) + note
