"""Uncertainty drift per pair and method (SPEC 4.2), in the shape of seed 000's Tables 2-5.

Entries come from :mod:`prunecheck.gates.uncertainty` (``payload["kind"]`` is ``drift``,
``ood`` or ``blur``). The sparsification curves and reliability bins stay in the
JSON report (``data[].payload.parent/pruned.sparsification|reliability``) for plots.
"""

from __future__ import annotations

import math
from typing import Any

from prunecheck.report.table import Block, Code, Paragraph, Strong, Table

TITLE = "Uncertainty drift"
DRIFT_HEADERS = ["pair", "method", "uncertainty", "model", "accuracy", "AUSE", "ECE", "NLL", "Brier"]
OOD_HEADERS = ["pair", "method", "OOD data", "entropy parent", "entropy pruned", "disagreement parent",
               "disagreement pruned"]
BLUR_HEADERS = ["pair", "method", "model", "radii", "mean uncertainty per radius", "Spearman"]
DRIFT_NUMERIC = DRIFT_HEADERS[4:]
OOD_NUMERIC = OOD_HEADERS[3:]
BLUR_NUMERIC = ["Spearman"]


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{round(float(value), digits) + 0.0:.{digits}f}"


def _drift_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        p = entry["payload"]
        if "error" in p:
            rows.append([entry["subject"], p["method"], p.get("uncertainty", ""), f"error: {p['error']}",
                         "", "", "", "", ""])
            continue
        for role in ("parent", "pruned"):
            s = p[role]
            model = f"{role}: {p[role + '_name']}" + (f" (M={s['members']})" if s["members"] > 1 else "")
            kind = p["uncertainty"] + (" (seed000 protocol)" if p.get("protocol") == "seed000" else "")
            rows.append([entry["subject"], p["method"], kind, model, _f(s["accuracy"]),
                         _f(s["ause"]), _f(s["ece"]), _f(s["nll"]), _f(s["brier"])])
    return rows


def _ood_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        p = entry["payload"]
        ent, dis = p.get("entropy", {}), p.get("disagreement", {})
        rows.append([entry["subject"], p["method"], p["dataset"], _f(ent.get("parent")), _f(ent.get("pruned")),
                     _f(dis.get("parent")), _f(dis.get("pruned"))])
    return rows


def _blur_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        p = entry["payload"]
        if "error" in p:
            rows.append([entry["subject"], p["method"], f"error: {p['error']}", "", "", ""])
            continue
        radii = ", ".join(f"{r:g}" for r in p["radii"])
        for role in ("parent", "pruned"):
            s = p[role]
            note = "" if role == "pruned" or p["parent_rises"] else " (does not rise: not enforced)"
            rows.append([entry["subject"], p["method"], role, radii,
                         ", ".join(_f(u) for u in s["mean_uncertainty"]), _f(s["spearman"], 3) + note])
    return rows


def build(entries: list[dict[str, Any]]) -> list[Block]:
    """The drift table (accuracy / AUSE / ECE / NLL / Brier) with its notes, then the OOD and blur tables."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_kind.setdefault(entry["payload"].get("kind", "drift"), []).append(entry)
    order = lambda e: (e["subject"], e["payload"].get("method", ""))  # noqa: E731
    blocks: list[Block] = []
    if "drift" in by_kind:
        note = Paragraph.of((
            "Nominal data; accuracy, AUSE, ECE and Brier are fractions, NLL in nats. Uncertainty ", Code("msp"),
            " = 1 - max p, ", Code("variance"), " = variance over passes/members of the predicted class's "
            "probability, ", Code("logit_variance"), " (seed000 protocol, seed 000 Eq. 6) = the same over "
            "log-softmax outputs, with the prediction the softmax of the mean logits and the ECE binned on 1 - the "
            "min-max normalised variance. Sparsification curves and reliability bins are in prunecheck.json."))
        blocks.append(Table(DRIFT_HEADERS, _drift_rows(sorted(by_kind["drift"], key=order)), numeric=DRIFT_NUMERIC,
                            notes=(note,)))
    if "ood" in by_kind:
        title = (Strong("Out-of-distribution data"), " (mean predictive entropy and disagreement, nats; "
                 "lower for the pruned model = more overconfident)")
        blocks.append(Table(OOD_HEADERS, _ood_rows(sorted(by_kind["ood"], key=order)), numeric=OOD_NUMERIC,
                            title=title))
    if "blur" in by_kind:
        title = (Strong("Uncertainty vs. Gaussian blur"), " (seed 003; Spearman of mean uncertainty vs. radius)")
        blocks.append(Table(BLUR_HEADERS, _blur_rows(sorted(by_kind["blur"], key=order)), numeric=BLUR_NUMERIC,
                            title=title))
    return blocks

