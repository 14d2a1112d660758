"""The compact terminal summary of a report document: gates grouped by suite and pair, failing first."""

from __future__ import annotations

import textwrap
from typing import Any

from prunecheck.report.format import (
    STATUSES, fmt_number, fmt_threshold, fmt_value, groups, problem_tests, restricted_note, verdict_line,
)


def render_terminal(doc: dict[str, Any], *, width: int = 100, verbose: bool = False) -> str:
    """The compact terminal summary, grouped by suite and pair, failing gates first.

    Each gate is one row: status, what was checked (``view: metric``; the view is left
    out for nominal data), value, threshold and margin. Long labels wrap within their
    column (at most three lines, then ``...``) so the table fits ``width``.

    Args:
        doc: The report document.
        width: Terminal width in characters.
        verbose: List every passing gate too; otherwise a group's passing gates are
            one line with their count and the smallest margin.
    """
    gates, tests = doc["gates"], doc["tests"]
    problems = problem_tests(gates, tests)
    if not gates and not problems:
        return "no prunecheck gates ran"
    width = max(width, 60)
    rows: list[tuple[str, Any]] = []  # ("header", text) | ("gate", gate) | ("pass", (count, closest))
    for (suite, subject), members in groups(gates):
        counts = [f"{sum(g['status'] == s for g in members)} {s}" for s in STATUSES
                  if any(g["status"] == s for g in members)]
        rows.append(("header", f"{suite} / {subject}: {', '.join(counts)}"))
        passing = [g for g in members if g["status"] == "PASS"]
        collapse = not verbose and len(passing) > 1
        rows += [("gate", g) for g in members if g["status"] != "PASS" or not collapse]
        if collapse:
            rows.append(("pass", (len(passing), min(passing, key=lambda g: g["margin"]))))
    shown = [item for kind, item in rows if kind == "gate"]
    label = lambda g: g["metric"] if g["view"] == "nominal" else f"{g['view']}: {g['metric']}"  # noqa: E731
    w_value = max([len(fmt_value(g)) for g in shown] + [5])
    w_margin = max([len(fmt_number(g["margin"])) for g in shown] + [6])
    w_thr = min(max([len(fmt_threshold(g)) for g in shown] + [9]), 24 if width < 120 else 36)
    w_metric = max(width - (2 + 5 + 2 + 2 + w_value + 2 + w_thr + 2 + w_margin), 24)
    w_metric = min(w_metric, max([len(label(g)) for g in shown] + [6]), 64)

    def wrap(text: str, w: int, indent: str = "") -> list[str]:
        return textwrap.wrap(text, w, max_lines=3, placeholder=" ...", subsequent_indent=indent) or [""]

    out = []
    if shown:
        out.append(f"  {'':5}  {'checked':<{w_metric}}  {'value':>{w_value}}  {'threshold':<{w_thr}}  "
                   f"{'margin':>{w_margin}}".rstrip())
    for kind, item in rows:
        if kind == "header":
            out.append(item)
        elif kind == "pass":
            count, closest = item
            text = f"{count} gates passed; smallest margin {fmt_number(closest['margin'])} ({label(closest)})"
            out.append("  PASS   " + textwrap.shorten(text, width - 9, placeholder=" ...)"))
        else:
            gate = item
            metric, thr = wrap(label(gate), w_metric), wrap(fmt_threshold(gate), w_thr, "   ")
            for k in range(max(len(metric), len(thr))):
                first = k == 0
                out.append((f"  {gate['status'] if first else '':<5}  {metric[k] if k < len(metric) else '':<{w_metric}}  "
                            f"{fmt_value(gate) if first else '':>{w_value}}  {thr[k] if k < len(thr) else '':<{w_thr}}  "
                            f"{fmt_number(gate['margin']) if first else '':>{w_margin}}").rstrip())
    for test in problems:  # the node id stays whole (copyable); the message wraps under it
        out.append(f"ERROR  {test['nodeid']}")
        out.extend(textwrap.wrap(f"no gate result (counted as failed): {test['message']}", width,
                                 initial_indent=" " * 7, subsequent_indent=" " * 7, max_lines=4, placeholder=" ..."))
    out.extend(textwrap.wrap(f"{doc['summary']['verdict']}: {verdict_line(doc)}", width, subsequent_indent="  "))
    restricted = restricted_note(doc)  # why these pairs have no results from the other suites
    if restricted:
        out.extend(textwrap.wrap(restricted, width, subsequent_indent="  "))
    return "\n".join(out)
