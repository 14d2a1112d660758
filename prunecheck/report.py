"""Collects gate results from test reports and renders the run's reports.

Results travel on ``report.user_properties`` (see :mod:`prunecheck.checks`), so
the controller process sees every worker's results under pytest-xdist and one
merged report is written. Reports are written at session end whatever the
outcome, including when gates fail.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from prunecheck import __version__
from prunecheck.checks import DATA_PROPERTY, GATE_PROPERTY, TEST_PROPERTY
from prunecheck.tables import render_sections

SCHEMA = "prunecheck-report"
SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    """Everything the reports need, accumulated from test reports."""

    source: str = ""
    is_demo: bool = False
    gates: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_report(self, report) -> None:
        """Take what a prunecheck test recorded from one (setup/call/teardown) report."""
        props = getattr(report, "user_properties", [])
        if not any(name == TEST_PROPERTY for name, _ in props):
            return
        mine = [(name, value) for name, value in props if name in (GATE_PROPERTY, DATA_PROPERTY)]
        test = self.tests.get(report.nodeid)
        if test is None:
            test = self.tests[report.nodeid] = {"nodeid": report.nodeid, "outcome": "passed", "message": ""}
        if report.when == "call" or report.failed or report.skipped:
            if report.failed:
                test["outcome"] = "failed" if report.when == "call" else "error"
                test["message"] = _short_message(report)
            elif report.skipped:
                test["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
                test["message"] = getattr(report, "wasxfail", "") or _short_message(report)
            elif hasattr(report, "wasxfail"):
                test["outcome"] = "xpassed"
        if report.when != "call":
            return
        for name, value in mine:
            entry = json.loads(value)
            entry["nodeid"] = report.nodeid
            (self.gates if name == GATE_PROPERTY else self.data).append(entry)

    # -- views of the record ------------------------------------------------------
    def status(self, gate: dict[str, Any]) -> str:
        """PASS, FAIL, or XFAIL for a failure listed in the pair's expect_fail."""
        if gate["passed"]:
            return "PASS"
        test = self.tests.get(gate.get("nodeid", ""), {})
        return "XFAIL" if test.get("outcome") == "xfailed" else "FAIL"

    def summary(self) -> dict[str, int]:
        statuses = [self.status(g) for g in self.gates]
        counts = {"gates": len(self.gates), "gates_failed": statuses.count("FAIL"), "gates_xfailed": statuses.count("XFAIL")}
        for test in self.tests.values():
            counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "prunecheck_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": self.source,
            "demo": self.is_demo,
            "summary": self.summary(),
            "gates": [{**g, "status": self.status(g)} for g in sorted(self.gates, key=_gate_order)],
            "data": self.data,
            "tests": sorted(self.tests.values(), key=lambda t: t["nodeid"]),
        }

    def gate_rows(self) -> list[list[Any]]:
        rows = []
        for g in sorted(self.gates, key=_gate_order):
            rows.append([
                self.status(g),
                g["name"],
                g["subject"],
                g["view"],
                g["metric"],
                _fmt(g.get("parent")),
                _fmt(g.get("pruned")),
                _fmt(g["value"]),
                f"{g['threshold_name']} {g['threshold']:g}",
                _fmt(g.get("margin")),
            ])
        return rows

    def problem_tests(self) -> list[dict[str, Any]]:
        """Tests that failed or errored without recording a gate (they fail closed)."""
        gated = {g["nodeid"] for g in self.gates}
        return [
            t for t in self.tests.values()
            if t["outcome"] in ("failed", "error") and t["nodeid"] not in gated
        ]


GATE_HEADERS = ["status", "gate", "subject", "view", "metric", "parent", "pruned", "value", "threshold", "margin"]


def _gate_order(g: dict[str, Any]) -> tuple:
    return (g["passed"], g["name"], g["subject"], g["view"], g["metric"])


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{round(value, 4) + 0.0:.4f}"  # + 0.0 turns -0.0 into 0.0
    return str(value)


def _short_message(report) -> str:
    text = getattr(report, "longreprtext", "") or str(getattr(report, "longrepr", ""))
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# -- rendering ----------------------------------------------------------------------
def render_terminal(record: RunRecord) -> str:
    if not record.gates and not record.problem_tests():
        return "no prunecheck gates ran"
    parts = []
    if record.gates:
        parts.append(tabulate(record.gate_rows(), headers=GATE_HEADERS, tablefmt="simple", disable_numparse=True))
    for test in record.problem_tests():
        parts.append(f"ERROR {test['nodeid']}: {test['message']} (no gate result: counted as failed)")
    s = record.summary()
    parts.append(f"{s['gates']} gates, {s['gates_failed']} failed" + (f", {s['gates_xfailed']} known failures (expect_fail)" if s["gates_xfailed"] else ""))
    return "\n".join(parts)


def render_markdown(record: RunRecord) -> str:
    s = record.summary()
    verdict = "FAILED" if s["gates_failed"] or record.problem_tests() else "PASSED"
    lines = [
        f"# prunecheck report: {verdict}",
        "",
        f"- config: `{record.source}`" + (" (built-in demo)" if record.is_demo else ""),
        f"- gates: {s['gates']} run, {s['gates_failed']} failed",
        "- values are fractions in [0, 1] (0.005 = 0.5 percentage points)",
        "",
        "## Gates",
        "",
        tabulate(record.gate_rows(), headers=GATE_HEADERS, tablefmt="github", disable_numparse=True)
        if record.gates else "No gate ran.",
    ]
    failed = [g for g in record.gates if record.status(g) == "FAIL"]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- `{g['nodeid']}`: {g['message']}" for g in failed]
    problems = record.problem_tests()
    if problems:
        lines += ["", "## Errors (no gate result; counted as failed)", ""]
        lines += [f"- `{t['nodeid']}`: {t['message']}" for t in problems]
    for block in render_sections(record.data):
        lines += ["", block]
    return "\n".join(lines) + "\n"


def write_reports(record: RunRecord, report_dir: Path) -> list[Path]:
    """Write prunecheck.json and prunecheck.md atomically; return their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        report_dir / "prunecheck.json": json.dumps(record.to_json(), indent=2, allow_nan=True) + "\n",
        report_dir / "prunecheck.md": render_markdown(record),
    }
    for path, text in outputs.items():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return list(outputs)
