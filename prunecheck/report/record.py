"""The report document: what a run recorded, its JSON schema, validation and loading.

Results travel on ``report.user_properties`` (see :mod:`prunecheck.plugin.recorder`), so the
controller process sees every worker's results under pytest-xdist and :class:`RunRecord`
builds one merged document. The document (:meth:`RunRecord.to_json`, schema
``prunecheck-report`` version :data:`SCHEMA_VERSION`, documented field by field in
``docs/reports.md`` and checked by :func:`validate_report`) is all the renderers
(:mod:`prunecheck.report.terminal`, :mod:`prunecheck.report.document` for Markdown,
:mod:`prunecheck.report.html`, :mod:`prunecheck.report.plots`) read, so ``prunecheck
report PATH.json`` re-renders a saved run exactly as the run itself did. This module
imports no renderer.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunecheck import __version__
from prunecheck.core.errors import PrunecheckError, plain_text
from prunecheck.report.format import STATUSES, _rank, gate_order, problem_tests
from prunecheck.report.tables import ORDER as SECTION_ORDER

#: ``user_properties`` names on a test report: a gate result, a report data entry (both JSON),
#: and the mark of a test that uses prunecheck fixtures (its errors count as failed gates).
GATE_PROPERTY = "prunecheck_gate"
DATA_PROPERTY = "prunecheck_data"
TEST_PROPERTY = "prunecheck_test"

SCHEMA = "prunecheck-report"
SCHEMA_VERSION = 2  # 2: "session", structured "summary" (verdict, gates_passed, errors, tests)
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


class ReportFormatError(PrunecheckError, ValueError):
    """A report document that does not follow the schema (names the key path)."""


# -- the document's schema ------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One key of a report object: accepted JSON types and what it means."""

    types: tuple[type | None, ...]
    doc: str
    choices: tuple[Any, ...] = ()


_NUM = (int, float)
TOP_FIELDS: dict[str, Field] = {
    "schema": Field((str,), 'always "prunecheck-report"', (SCHEMA,)),
    "schema_version": Field((int,), "version of this layout; bumped whenever a key changes shape"),
    "prunecheck_version": Field((str,), "version of prunecheck that wrote the report"),
    "created": Field((str,), "UTC time the report was written, ISO 8601 (e.g. 2026-01-31T12:00:00+00:00)"),
    "config": Field((str,), "path of the configuration file, or <built-in demo>"),
    "demo": Field((bool,), "true when the built-in demo ran"),
    "session": Field((dict,), "how the pytest session ended (object, see Session)"),
    "summary": Field((dict,), "counts and verdict (object, see Summary)"),
    "gates": Field((list,), "every gate result, failing first (objects, see Gate)"),
    "data": Field((list,), "report data recorded by the suites: tables and plot curves (objects, see Data)"),
    "tests": Field((list,), "every test that used a prunecheck fixture, by node id (objects, see Test)"),
}
SESSION_FIELDS: dict[str, Field] = {
    "exitstatus": Field((int, None), "pytest exit code (0 all passed, 1 tests failed, 2 interrupted, ...); null if unknown"),
    "interrupted": Field((bool,), "true when the run stopped early (-x / --maxfail, Ctrl-C): the report holds what ran"),
    "reason": Field((str,), "why the run stopped early, empty otherwise"),
    "deselected": Field((int,), "tests deselected by -k, -m, --deselect and the like (0 for a full run)"),
    "selection": Field((str,), "how the run selected tests, e.g. \"-k 'wt80'\"; empty for a full run"),
    "restricted_pairs": Field((dict,), "pairs the config checks with some suite files only (pairs[].suites): "
                                       "{pair: [suite file, ...]}; empty when every pair meets every suite"),
}
SUMMARY_FIELDS: dict[str, Field] = {
    "verdict": Field((str,), "FAILED if a gate failed or a prunecheck test errored without a gate result, else PASSED",
                     ("PASSED", "FAILED")),
    "gates": Field((int,), "number of gate results"),
    "gates_passed": Field((int,), "gates with status PASS"),
    "gates_failed": Field((int,), "gates with status FAIL (these fail the run)"),
    "gates_xfailed": Field((int,), "gates with status XFAIL: failed, but listed in the pair's/family's expect_fail"),
    "errors": Field((int,), "tests that failed or errored without recording a gate result (they count as failed)"),
    "tests": Field((dict,), "number of tests per outcome (passed, failed, error, skipped, xfailed, xpassed)"),
}
GATE_FIELDS: dict[str, Field] = {
    "name": Field((str,), "the gate (suite) name, e.g. accuracy_margin, uncertainty, corruptions"),
    "metric": Field((str,), "what value measures, e.g. 'accuracy drop' or 'ECE increase [msp]'"),
    "value": Field(_NUM, "the gated value; NaN when the metric could not be computed (the gate failed closed)"),
    "threshold": Field(_NUM, "the threshold value"),
    "threshold_name": Field((str,), "the threshold key in [gates.<suite>] (or a description of a derived threshold)"),
    "direction": Field((str,), "max: value must be <= threshold; min: value must be >= threshold", ("max", "min")),
    "passed": Field((bool,), "whether the gate passed"),
    "mode": Field((str,), "gate mode: point, confident or lenient", ("point", "confident", "lenient")),
    "ci": Field((list, None), "[low, high] 95% paired-bootstrap interval of value (confident/lenient modes), else null"),
    "parent": Field((*_NUM, None), "the parent's metric value, when the gate compares parent and pruned"),
    "pruned": Field((*_NUM, None), "the pruned model's metric value, when the gate compares parent and pruned"),
    "subject": Field((str,), "the pair or family name"),
    "view": Field((str,), "the data view id: nominal, <corruption>-<severity>, noise<eps>, blur..., ood:<dataset>"),
    "reason": Field((str,), "why the gate failed closed; empty otherwise"),
    "details": Field((dict,), "gate-specific extra numbers (JSON object)"),
    "margin": Field(_NUM, "distance to the threshold, positive on the passing side"),
    "message": Field((str,), "the one-line message the test printed"),
    "nodeid": Field((str,), "the pytest node id of the test that recorded the gate"),
    "status": Field((str,), "PASS, FAIL or XFAIL (failed, expected by expect_fail)", STATUSES),
}
DATA_FIELDS: dict[str, Field] = {
    "section": Field((str,), "report section; rendered by prunecheck.report.tables.<section>"),
    "subject": Field((str,), "the pair or family name"),
    "payload": Field((dict,), "section-specific data (see Sections)"),
    "nodeid": Field((str,), "the pytest node id of the test that recorded it"),
}
TEST_FIELDS: dict[str, Field] = {
    "nodeid": Field((str,), "pytest node id"),
    "outcome": Field((str,), "passed, failed, error (setup/teardown), skipped, xfailed or xpassed", OUTCOMES),
    "message": Field((str,), "last line of the failure, or the xfail reason; empty when passed"),
}
SCHEMA_DESCRIPTION: dict[str, dict[str, Field]] = {
    "report": TOP_FIELDS, "session": SESSION_FIELDS, "summary": SUMMARY_FIELDS,
    "gate": GATE_FIELDS, "data": DATA_FIELDS, "test": TEST_FIELDS,
}


def _check_object(obj: Any, fields: dict[str, Field], where: str, strict: bool) -> None:
    place = f"key '{where}'" if where else "top level"
    if not isinstance(obj, dict):
        raise ReportFormatError(f"prunecheck report, {place}: expected an object, found {type(obj).__name__}")
    missing = [key for key in fields if key not in obj]
    if missing:
        raise ReportFormatError(f"prunecheck report, {place}: missing {', '.join(missing)}")
    unknown = [key for key in obj if key not in fields]
    if unknown and strict:
        raise ReportFormatError(f"prunecheck report, {place}: unknown key(s) {', '.join(unknown)}")
    for key, spec in fields.items():
        value = obj[key]
        ok = any(
            (value is None) if t is None
            else isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
            for t in spec.types
        )
        label = f"{where}.{key}" if where else key
        if not ok:
            names = " or ".join("null" if t is None else t.__name__ for t in spec.types)
            raise ReportFormatError(f"prunecheck report, key '{label}': expected {names}, found {value!r:.80}")
        if spec.choices and value not in spec.choices:
            raise ReportFormatError(
                f"prunecheck report, key '{label}': expected one of {', '.join(map(str, spec.choices))}, found {value!r}")


def validate_report(doc: Any, *, strict: bool = True) -> None:
    """Check a report document against the schema (every key, its type and allowed values).

    Args:
        doc: A decoded ``prunecheck.json``.
        strict: Also reject keys the schema does not document (the project's tests use
            this so docs/reports.md stays complete); ``prunecheck report`` tolerates them.

    Raises:
        ReportFormatError: naming the first offending key path, e.g. ``gates[3].status``.
    """
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ReportFormatError(f"not a prunecheck report: expected schema {SCHEMA!r}, found {found!r}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ReportFormatError(
            f"prunecheck report: expected schema_version {SCHEMA_VERSION}, found {doc.get('schema_version')!r}")
    _check_object(doc, TOP_FIELDS, "", strict)
    _check_object(doc["session"], SESSION_FIELDS, "session", strict)
    _check_object(doc["summary"], SUMMARY_FIELDS, "summary", strict)
    for key, fields in (("gates", GATE_FIELDS), ("data", DATA_FIELDS), ("tests", TEST_FIELDS)):
        for k, item in enumerate(doc[key]):
            _check_object(item, fields, f"{key}[{k}]", strict)
    for k, gate in enumerate(doc["gates"]):
        if gate["ci"] is not None and (len(gate["ci"]) != 2 or not all(isinstance(x, _NUM) for x in gate["ci"])):
            raise ReportFormatError(f"prunecheck report, key 'gates[{k}].ci': expected [low, high], found {gate['ci']!r}")


def upgrade_report(doc: dict[str, Any]) -> dict[str, Any]:
    """A schema-version-1 document (prunecheck 0.1 before the session block) in today's layout."""
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != 1:
        return doc
    gates = [{**g, "nodeid": g.get("nodeid", "")} for g in doc.get("gates", [])]
    tests = doc.get("tests", [])
    new = {key: doc.get(key) for key in ("schema", "prunecheck_version", "created", "config", "demo")}
    new.update(schema_version=SCHEMA_VERSION, session={"exitstatus": None, "interrupted": False, "reason": "",
                                                       "deselected": 0, "selection": "",
                                                       "restricted_pairs": {}},
               gates=gates, data=doc.get("data", []), tests=tests)
    new["summary"] = summarise(gates, tests)
    return {key: new[key] for key in TOP_FIELDS}


def load_report(path: Path) -> dict[str, Any]:
    """Read and validate a saved ``prunecheck.json`` (version-1 files are upgraded)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportFormatError(f"{path}: no such file (expected a prunecheck.json written by a run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportFormatError(f"{path}: not JSON ({exc})") from None
    doc = upgrade_report(doc)
    if isinstance(doc.get("session"), dict):  # reports written before these session keys existed
        doc["session"].setdefault("deselected", 0)
        doc["session"].setdefault("selection", "")
        doc["session"].setdefault("restricted_pairs", {})
    try:
        validate_report(doc, strict=False)
    except ReportFormatError as exc:
        raise ReportFormatError(f"{path}: {exc}") from None
    return doc


# -- collecting ---------------------------------------------------------------------
@dataclass
class RunRecord:
    """Everything the reports need, accumulated from test reports."""

    source: str = ""
    is_demo: bool = False
    gates: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_report(self, report) -> None:
        """Take what a prunecheck test recorded from one (setup/call/teardown) report.

        Works on the controller under pytest-xdist too: the worker's report arrives
        deserialised, ``user_properties`` as lists of [name, value].
        """
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
                test["message"] = strip_ansi(_short_message(report))
            elif report.skipped:
                test["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
                test["message"] = strip_ansi(getattr(report, "wasxfail", "") or _short_message(report))
            elif hasattr(report, "wasxfail"):
                test["outcome"] = "xpassed"
        if report.when != "call":
            return
        for name, value in mine:
            entry = json.loads(value)
            entry["nodeid"] = report.nodeid
            for key in ("message", "reason"):
                if isinstance(entry.get(key), str):
                    entry[key] = strip_ansi(entry[key])
            (self.gates if name == GATE_PROPERTY else self.data).append(entry)

    def add_setup_problem(self, where: str, message: str) -> None:
        """A problem found before the first test (the deep check): an error entry named
        ``<setup> where``, so the reports are written and say FAILED with the reason."""
        nodeid = f"<setup> {where}"
        self.tests[nodeid] = {"nodeid": nodeid, "outcome": "error", "message": strip_ansi(message)}

    def status(self, gate: dict[str, Any]) -> str:
        """PASS, FAIL, or XFAIL for a failure listed in the pair's expect_fail."""
        if gate["passed"]:
            return "PASS"
        test = self.tests.get(gate.get("nodeid", ""), {})
        return "XFAIL" if test.get("outcome") == "xfailed" else "FAIL"

    def to_json(self, *, exitstatus: int | None = None, interrupted: bool = False, reason: str = "",
                deselected: int = 0, selection: str = "",
                restricted_pairs: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """The report document (see :data:`SCHEMA_DESCRIPTION` and docs/reports.md).

        Its content does not depend on the order results arrived in (xdist).
        """
        gates = sorted(({**g, "status": self.status(g)} for g in self.gates), key=gate_order)
        tests = sorted((dict(t) for t in self.tests.values()), key=lambda t: t["nodeid"])
        data = sorted(self.data, key=_data_order)  # stable: keeps each test's recording order
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "prunecheck_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": self.source,
            "demo": self.is_demo,
            "session": {"exitstatus": None if exitstatus is None else int(exitstatus),
                        "interrupted": bool(interrupted), "reason": reason,
                        "deselected": int(deselected), "selection": selection,
                        "restricted_pairs": {name: list(files) for name, files in sorted((restricted_pairs or {}).items())}},
            "summary": summarise(gates, tests),
            "gates": gates,
            "data": data,
            "tests": tests,
        }


def summarise(gates: list[dict[str, Any]], tests: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary`` block from the gate results (with status) and the tests."""
    statuses = [g["status"] for g in gates]
    outcomes = {name: 0 for name in OUTCOMES}
    for test in tests:
        outcomes[test["outcome"]] = outcomes.get(test["outcome"], 0) + 1
    errors = len(problem_tests(gates, tests))
    failed = statuses.count("FAIL")
    return {
        "verdict": "FAILED" if failed or errors else "PASSED",
        "gates": len(gates),
        "gates_passed": statuses.count("PASS"),
        "gates_failed": failed,
        "gates_xfailed": statuses.count("XFAIL"),
        "errors": errors,
        "tests": {name: count for name, count in outcomes.items() if count},
    }


def _data_order(entry: dict[str, Any]) -> tuple:
    return (_rank(SECTION_ORDER, entry["section"]), entry["subject"], entry.get("nodeid", ""))


def _short_message(report) -> str:
    text = plain_text(getattr(report, "longreprtext", "") or str(getattr(report, "longrepr", "")))
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Text without terminal colour/cursor escapes (torch and pytest colour their messages)."""
    return ANSI_ESCAPE.sub("", text)
