"""Prune potential per family (seed 002, Def. 1-2 and Tables 9-10).

Each entry's payload is :func:`prunecheck.gates.robustness.curves_payload`. Three tables:

1. Average and minimum prune potential on the train distribution (nominal data) and the
   test distribution (the configured corruptions and noise levels), shaped like seed 002's
   Tables 9-10, with the deployed member's ratio and the gated value (policy).
2. The prune potential per view.
3. Excess error (Def. 2) of every member and its difference to the parent's.
"""

from __future__ import annotations

import math
from typing import Any

from prunecheck.report.table import Block, Paragraph, Table

TITLE = "Prune potential"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100.0 * value + 0.0:.1f}"


def _pp(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100.0 * value + 0.0:+.2f}"


def _ci(intervals: Any, key: str) -> str:
    """`` [low, high]`` in percent when the gate mode computed a bootstrap interval (confident / lenient)."""
    if not intervals:
        return ""
    low, high = intervals[key]
    return f" 95% CI [{_pct(low)}, {_pct(high)}]"


def summary_table(entries: list[dict[str, Any]]) -> Table:
    """Average and minimum prune potential per family on both distributions (seed 002, Tables 9-10)."""
    headers = ["family", "parent", "Average: Train Dist.", "Average: Test Dist.", "Minimum: Train Dist.",
               "Minimum: Test Dist.", "deployed (ratio)", "gated P (policy)"]
    rows = []
    for entry in entries:
        p = entry["payload"]
        s = p["summary"]
        deployed = f"{p['deployed']} ({_pct(p['deployed_ratio'])})" if p.get("deployed") else "none"
        rows.append([
            entry["subject"], p["parent"], _pct(s["train"]["average"]), _pct(s["test"]["average"]),
            _pct(s["train"]["minimum"]), _pct(s["test"]["minimum"]), deployed,
            f"{_pct(p['policy_potential'])} ({p['policy']})" + _ci(p.get("intervals"), "policy_potential"),
        ])
    return Table(headers, rows, numeric=headers[2:6])


def per_view_table(entries: list[dict[str, Any]]) -> Table:
    """The prune potential of every family on every view."""
    views: list[str] = []
    for entry in entries:
        views += [v for v in entry["payload"]["views"] if v not in views]
    rows = [[e["subject"], *(_pct(e["payload"]["potentials"].get(v)) if v in e["payload"]["potentials"] else ""
                             for v in views)] for e in entries]
    return Table(["family", *views], rows, numeric=views, title=("Prune potential (%) per view",))


def excess_table(entries: list[dict[str, Any]]) -> Table:
    """Excess error (Def. 2) of the parent and every member, and each member's difference to the parent's."""
    rows = []
    for entry in entries:
        p = entry["payload"]
        excess = p["excess_error"]
        rows.append([entry["subject"], f"parent: {p['parent']}", "0 (parent)", _pp(excess["parent"]), ""])
        for k, member in enumerate(p["members"]):
            mark = " (deployed)" if member == p.get("deployed") else ""
            ci = ""
            if member == p.get("deployed") and p.get("intervals"):
                low, high = p["intervals"]["excess_difference"]
                ci = f" (95% CI [{_pp(low)}, {_pp(high)}])"
            rows.append([entry["subject"], member + mark, _pct(p["ratios"][k]), _pp(excess["members"][k]),
                         _pp(excess["difference"][k]) + ci])
    headers = ["family", "model", "prune ratio (%)", "excess error (pp)", "difference to parent (pp)"]
    title = ("Excess error: mean error over the corruptions minus the nominal error (percentage points); "
             "the gate compares the deployed member's with the parent's.",)
    return Table(headers, rows, numeric=headers[2:], title=title)


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """What prune potential means, then the summary, per-view and excess-error tables."""
    delta = entries[0]["payload"].get("delta", 0.005) if entries else 0.005
    intro = Paragraph.of(
        f"Prune potential (%): the largest prune ratio whose error is within delta = {100 * delta:g} pp of "
        "the parent's on the same data. Train distribution: nominal data; test distribution: the "
        "configured corruptions and noise levels (average and minimum over them).")
    return [intro, summary_table(entries), per_view_table(entries), excess_table(entries)]

