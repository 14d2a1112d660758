"""Formatting shared by every report renderer: numbers, thresholds, gate rows, the verdict line."""

from __future__ import annotations

import math
from typing import Any

from prunecheck.report.table import Strong, Table


STATUSES = ("FAIL", "XFAIL", "PASS")  # also the order gates are listed in


SUITE_ORDER = ("accuracy_margin", "uncertainty", "corruptions", "functional", "instability")


UNITS_NOTE = "values are fractions in [0, 1] (0.005 = 0.5 percentage points) unless a label says otherwise"


def problem_tests(gates: list[dict[str, Any]], tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tests that failed or errored without recording a gate (they fail closed)."""
    gated = {g["nodeid"] for g in gates}
    return [t for t in tests if t["outcome"] in ("failed", "error") and t["nodeid"] not in gated]


def _rank(items: tuple[str, ...], name: str) -> tuple[int, str]:
    return (items.index(name), "") if name in items else (len(items), name)


def gate_order(g: dict[str, Any]) -> tuple:
    """Failing first (FAIL, XFAIL, PASS), then suite, pair, view, metric."""
    return (_rank(STATUSES, g["status"]), _rank(SUITE_ORDER, g["name"]), g["subject"], g["view"], g["metric"],
            g.get("nodeid", ""))


def fmt_number(value: Any, digits: int = 4) -> str:
    """A number as the reports show it: fixed decimals, no -0.0000, NaN/inf spelled out."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0
    return str(value)


def fmt_threshold(gate: dict[str, Any]) -> str:
    """``<= 0.005 max_drop`` / ``>= 0.9 min_agreement``."""
    op = "<=" if gate["direction"] == "max" else ">="
    return f"{op} {gate['threshold']:.4g} {gate['threshold_name']}"


def fmt_value(gate: dict[str, Any]) -> str:
    text = fmt_number(gate["value"])
    if gate.get("ci"):
        low, high = gate["ci"]
        text += f" [{fmt_number(low)}, {fmt_number(high)}]"
    return text


def partial_note(doc: dict[str, Any]) -> str:
    """``partial run: 107 tests deselected (-k 'wt80')``, or "" for a full run."""
    session = doc["session"]
    deselected, selection = session.get("deselected", 0), session.get("selection", "")
    if not deselected and not selection:
        return ""
    what = f"{deselected} tests deselected" if deselected else "tests selected"
    return f"partial run: {what}" + (f" ({selection})" if selection else "") + ", not every gate ran"


def class_cell(row: dict[str, Any]) -> str:
    """A class in a report table: ``4 (cross)``, or ``4`` when the dataset names no classes
    (and in reports written before class names were recorded)."""
    return f"{row['class']} ({row['name']})" if row.get("name") else str(row["class"])


def restricted_note(doc: dict[str, Any]) -> str:
    """``pairs checked by some suites only (pairs[].suites): tail: test_accuracy_margin.py``, or ""."""
    restricted = doc["session"].get("restricted_pairs") or {}
    if not restricted:
        return ""
    return "pairs checked by some suites only (pairs[].suites): " + "; ".join(
        f"{name}: {', '.join(files)}" for name, files in restricted.items())


def verdict_line(doc: dict[str, Any]) -> str:
    """``2 gates failed, 1 known failure (expect_fail), 95 passed; 1 error``."""
    s = doc["summary"]
    parts = [f"{s['gates']} gates: {s['gates_failed']} failed"]
    if s["gates_xfailed"]:
        parts.append(f"{s['gates_xfailed']} known failures (expect_fail)")
    parts.append(f"{s['gates_passed']} passed")
    text = ", ".join(parts)
    if s["errors"]:
        text += f"; {s['errors']} tests errored without a gate result (counted as failed)"
    if doc["session"]["interrupted"]:
        text += f"; run interrupted ({doc['session']['reason'] or 'stopped early'}): the report holds what ran"
    partial = partial_note(doc)
    if partial:
        text += f"; {partial}"
    return text


def report_title(doc: dict[str, Any]) -> str:
    """The verdict with what makes it incomplete: ``PASSED (partial run: ...)``."""
    title = doc["summary"]["verdict"]
    if doc["session"]["interrupted"]:
        title += " (run interrupted: incomplete)"
    if partial_note(doc):
        title += " (partial run)"
    return title


def groups(gates: list[dict[str, Any]]) -> list[tuple[tuple[str, str], list[dict[str, Any]]]]:
    """Gates grouped by (suite, subject); groups with a FAIL first, then XFAIL, then passing."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for gate in sorted(gates, key=gate_order):
        by_key.setdefault((gate["name"], gate["subject"]), []).append(gate)

    def key(item):
        (suite, subject), members = item
        worst = min(_rank(STATUSES, g["status"]) for g in members)
        return (worst, _rank(SUITE_ORDER, suite), subject)

    return sorted(by_key.items(), key=key)


GATE_HEADERS = ["status", "gate", "subject", "view", "metric", "parent", "pruned", "value", "threshold", "margin"]
GATE_NUMERIC = ["parent", "pruned", "value", "margin"]


def gate_row(gate: dict[str, Any]) -> list[str]:
    """A gate's cells under :data:`GATE_HEADERS`, as text."""
    return [gate["status"], gate["name"], gate["subject"], gate["view"], gate["metric"], fmt_number(gate.get("parent")),
            fmt_number(gate.get("pruned")), fmt_value(gate), fmt_threshold(gate), fmt_number(gate.get("margin"))]


def gate_table(gates: list[dict[str, Any]]) -> Table:
    """The gates as a table, a failing gate's status emphasised."""
    rows = [[Strong(cells[0]) if gate["status"] == "FAIL" else cells[0], *cells[1:]]
            for gate in gates for cells in [gate_row(gate)]]
    return Table(GATE_HEADERS, rows, numeric=GATE_NUMERIC)
