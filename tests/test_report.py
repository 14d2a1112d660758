"""Report documents: schema and validation, ordering, terminal / Markdown rendering,
GitHub step summary, `prunecheck report`, and report writing without matplotlib."""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from prunecheck.cli import main as cli_main
from prunecheck.report.record import DATA_PROPERTY, GATE_PROPERTY, TEST_PROPERTY
from prunecheck.gates.decide import decide, failed_closed
from prunecheck.report import document as rp
from prunecheck.report import record as rec
from prunecheck.report import terminal

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reports.md"
LONG_METRIC = ("deployed prune ratio (wt95; nominal prune potential 0.950, lowest contrast-1 0.700, "
               "and a few more words so it has to wrap)")


def fake_report(nodeid, *, when="call", outcome="passed", gates=(), data=(), xfail=None, message="", ours=True):
    props = [(TEST_PROPERTY, "1")] if ours else []
    props += [(GATE_PROPERTY, json.dumps(g.to_dict(), allow_nan=True)) for g in gates]
    props += [(DATA_PROPERTY, json.dumps(d)) for d in data]
    rep = SimpleNamespace(nodeid=nodeid, when=when, user_properties=props, failed=outcome == "failed",
                          skipped=outcome == "skipped", passed=outcome == "passed", longreprtext=message)
    if xfail is not None:
        rep.wasxfail = xfail
    return rep


def sample_record() -> rec.RunRecord:
    """Four tests: a failing gate, an expected failure, passing gates and a setup error."""
    record = rec.RunRecord(source="/proj/prunecheck.toml")
    fail = decide(name="accuracy_margin", metric="accuracy drop", value=0.1, threshold=0.005,
                  threshold_name="max_drop", parent=1.0, pruned=0.9, subject="bad-pair")
    known = decide(name="corruptions", metric=LONG_METRIC, value=0.95, threshold=0.89,
                   threshold_name="mean prune potential over 11 corruptions (delta 0.005)", subject="fam",
                   view="corruptions")
    passes = [decide(name="uncertainty", metric=f"ECE increase [{m}]", value=v, threshold=0.02,
                     threshold_name="max_ece_increase", subject="good-pair") for m, v in (("msp", 0.001), ("mc", 0.015))]
    closed = failed_closed(name="uncertainty", metric="AUSE increase [msp]", reason="cannot be computed (NaN)",
                           threshold=0.01, threshold_name="max_ause_increase", subject="good-pair")
    for when in ("setup", "call", "teardown"):
        record.add_report(fake_report("s/test_a.py::test_margin[bad-pair]", when=when,
                                      outcome="failed" if when == "call" else "passed",
                                      gates=[fail] if when == "call" else [], message="E   prunecheck gate failed"))
    record.add_report(fake_report("s/test_c.py::test_potential[fam]", outcome="skipped", gates=[known],
                                  xfail="known failure (expect_fail): ..."))
    record.add_report(fake_report("s/test_u.py::test_drift[good-pair]", gates=passes,
                                  data=[{"section": "efficiency", "subject": "good-pair", "payload": {"x": 1}}]))
    record.add_report(fake_report("s/test_u.py::test_ause[good-pair]", outcome="failed", gates=[closed]))
    record.add_report(fake_report("s/test_a.py::test_facts[broken]", when="setup", outcome="failed",
                                  message="E   prunecheck: cannot load model"))
    record.add_report(fake_report("other.py::test_plain", outcome="failed", ours=False))  # not ours: ignored
    return record


def test_document_counts_orders_and_validates():
    doc = sample_record().to_json(exitstatus=1)
    rec.validate_report(doc)
    statuses = [g["status"] for g in doc["gates"]]
    assert statuses == ["FAIL", "FAIL", "XFAIL", "PASS", "PASS"]
    # FAILs in suite order: accuracy_margin before uncertainty
    assert [g["name"] for g in doc["gates"][:2]] == ["accuracy_margin", "uncertainty"]
    s = doc["summary"]
    assert (s["gates"], s["gates_passed"], s["gates_failed"], s["gates_xfailed"]) == (5, 2, 2, 1)
    assert s["errors"] == 1 and s["verdict"] == "FAILED"  # the setup error has no gate result
    assert s["tests"] == {"passed": 1, "failed": 2, "error": 1, "xfailed": 1}
    assert doc["session"] == {"exitstatus": 1, "interrupted": False, "reason": "", "deselected": 0, "selection": "",
                              "restricted_pairs": {}}
    assert doc["data"] == [{"section": "efficiency", "subject": "good-pair", "payload": {"x": 1},
                            "nodeid": "s/test_u.py::test_drift[good-pair]"}]
    # round trip through JSON text (NaN of the failed-closed gate included)
    rec.validate_report(json.loads(json.dumps(doc, allow_nan=True)))


def test_document_does_not_depend_on_arrival_order():
    a = sample_record()
    b = rec.RunRecord(source=a.source)
    b.gates, b.data = list(reversed(a.gates)), list(reversed(a.data))
    b.tests = dict(reversed(list(a.tests.items())))
    da, db = a.to_json(), b.to_json()
    da.pop("created"), db.pop("created")
    assert json.dumps(da, allow_nan=True) == json.dumps(db, allow_nan=True)


@pytest.mark.parametrize("path, value, expected", [
    (("schema",), "other", "not a prunecheck report"),
    (("schema_version",), 1, "schema_version 2"),
    (("gates", 0, "status"), "MAYBE", "gates[0].status"),
    (("gates", 0, "passed"), "no", "gates[0].passed"),
    (("gates", 0, "value"), True, "gates[0].value"),  # a bool is not a number
    (("gates", 0, "ci"), [0.1], "gates[0].ci"),
    (("summary", "verdict"), "MAYBE", "summary.verdict"),
    (("session", "interrupted"), None, "session.interrupted"),
    (("tests", 0, "outcome"), "exploded", "tests[0].outcome"),
    (("data", 0, "payload"), [], "data[0].payload"),
])
def test_validation_names_the_bad_key(path, value, expected):
    doc = sample_record().to_json()
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(rec.ReportFormatError, match=re.escape(expected)):
        rec.validate_report(doc)


def test_validation_missing_and_unknown_keys():
    doc = sample_record().to_json()
    broken = copy.deepcopy(doc)
    del broken["gates"][1]["margin"]
    with pytest.raises(rec.ReportFormatError, match=r"key 'gates\[1\]': missing margin"):
        rec.validate_report(broken)
    extra = copy.deepcopy(doc)
    extra["gates"][0]["new_field"] = 1
    with pytest.raises(rec.ReportFormatError, match="unknown key"):
        rec.validate_report(extra)
    rec.validate_report(extra, strict=False)  # prunecheck report tolerates keys it does not know


def test_docs_describe_every_field():
    text = DOCS.read_text()
    for name, fields in rec.SCHEMA_DESCRIPTION.items():
        for key in fields:
            assert re.search(rf"\|\s*`{key}`\s*\|", text), f"docs/reports.md does not document {name}.{key}"
    assert f"schema_version` is {rec.SCHEMA_VERSION}" in text


def test_terminal_summary_groups_failing_first_and_fits_the_width():
    doc = sample_record().to_json(exitstatus=1)
    text = terminal.render_terminal(doc, width=80)
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > 80 and not line.startswith("ERROR  ")]  # node ids stay whole
    assert not too_long, too_long
    headers = [line for line in lines if re.match(r"^\w+ / [\w-]+: ", line)]
    assert headers == ["accuracy_margin / bad-pair: 1 FAIL", "uncertainty / good-pair: 1 FAIL, 2 PASS",
                       "corruptions / fam: 1 XFAIL"]
    fail_row = next(line for line in lines if line.startswith("  FAIL   accuracy drop"))
    assert "0.1000" in fail_row and "<= 0.005 max_drop" in fail_row and "-0.0950" in fail_row
    # the long label wraps onto continuation lines instead of widening the table
    xfail_at = next(k for k, line in enumerate(lines) if line.startswith("  XFAIL"))
    assert lines[xfail_at + 1].startswith(" " * 9) and "..." in "".join(lines[xfail_at:xfail_at + 3])
    # passing gates of a group collapse into one line unless verbose
    assert "  PASS   2 gates passed; smallest margin 0.0050 (ECE increase [mc])" in lines
    verbose = terminal.render_terminal(doc, width=120, verbose=True).splitlines()
    assert sum(line.startswith("  PASS   ECE increase") for line in verbose) == 2
    at = lines.index("ERROR  s/test_a.py::test_facts[broken]")
    assert lines[at + 1] == "       no gate result (counted as failed): E   prunecheck: cannot load model"
    assert " ".join(line.strip() for line in lines[at + 2:]) == (
        "FAILED: 5 gates: 2 failed, 1 known failures (expect_fail), 2 passed; "
        "1 tests errored without a gate result (counted as failed)")


def test_terminal_summary_of_an_interrupted_run_says_so():
    doc = sample_record().to_json(exitstatus=2, interrupted=True, reason="KeyboardInterrupt")
    assert "run interrupted (KeyboardInterrupt)" in " ".join(terminal.render_terminal(doc).splitlines()[-3:])
    assert rp.render_markdown(doc).startswith("# prunecheck report: FAILED (run interrupted: incomplete)")


def test_markdown_lists_failures_first_and_collapses_passes():
    md = rp.render_markdown(sample_record().to_json())
    assert md.startswith("# prunecheck report: FAILED\n")
    gates_part = md[md.index("## Gates"):md.index("<details>")]
    assert "**FAIL**" in gates_part and "XFAIL" in gates_part and "| PASS" not in gates_part
    details = md[md.index("<details>"):md.index("</details>")]
    assert "<summary>2 passing gates</summary>" in details and details.count("| PASS") == 2
    assert "## Failures\n\n- `s/test_a.py::test_margin[bad-pair]`: accuracy drop 0.1000 > max_drop 0.005" in md
    assert "## Known failures (expect_fail)" in md and "## Errors (no gate result; counted as failed)" in md
    # a payload its table cannot render is listed raw instead of breaking the report
    assert "## Efficiency\n\nThis section's data could not be rendered as a table (KeyError" in md
    assert '- `good-pair`: `{"x": 1}`' in md


def test_step_summary_is_appended(tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    doc = sample_record().to_json()
    rp.append_step_summary(doc, target)
    rp.append_step_summary(doc, target)
    text = target.read_text()
    assert text.startswith("earlier step\n# prunecheck report: FAILED")
    assert text.count("# prunecheck report: FAILED") == 2
    assert "prunecheck.html" not in text  # the job summary cannot link to a local file


def test_step_summary_stays_under_the_github_limit(tmp_path, monkeypatch):
    doc = sample_record().to_json()
    doc["data"] = [{"section": "efficiency", "subject": f"p{k}", "payload": {"x": "y" * 400}, "nodeid": "n"}
                   for k in range(20)]  # about 9 KB of section tables
    limit = len(rp.render_markdown(doc, html_name=None, sections=False).encode()) + 100
    monkeypatch.setattr(rp, "STEP_SUMMARY_LIMIT", limit)
    target = tmp_path / "summary.md"
    rp.append_step_summary(doc, target)
    text = target.read_text()
    assert len(text.encode()) <= limit + 200 and "Section tables left out" in text and "## Failures" in text
    monkeypatch.setattr(rp, "STEP_SUMMARY_LIMIT", 500)
    rp.append_step_summary(doc, target := tmp_path / "tiny.md")
    assert "Cut to fit the job summary" in target.read_text() and len(target.read_bytes()) <= 500 + 200


def test_load_report_upgrades_version_1_and_rejects_other_files(tmp_path):
    doc = sample_record().to_json()
    v1 = {"schema": rec.SCHEMA, "schema_version": 1, "prunecheck_version": "0.1.0", "created": doc["created"],
          "config": doc["config"], "demo": False, "summary": {"gates": 5}, "gates": doc["gates"],
          "data": doc["data"], "tests": doc["tests"]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(v1, allow_nan=True))
    loaded = rec.load_report(path)
    assert loaded["schema_version"] == rec.SCHEMA_VERSION and loaded["summary"]["gates_failed"] == 2
    rec.validate_report(loaded)
    # a version-2 file written before the session had restricted_pairs (or the selection keys)
    older = {**doc, "session": {key: doc["session"][key] for key in ("exitstatus", "interrupted", "reason")}}
    path.write_text(json.dumps(older, allow_nan=True))
    session = rec.load_report(path)["session"]
    assert (session["deselected"], session["selection"], session["restricted_pairs"]) == (0, "", {})
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(rec.ReportFormatError, match="junk.json: not JSON"):
        rec.load_report(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text('{"schema": "something-else"}')
    with pytest.raises(rec.ReportFormatError, match="not a prunecheck report"):
        rec.load_report(tmp_path / "other.json")


def test_cli_report_rerenders_a_saved_run(tmp_path, capsys):
    doc = sample_record().to_json()
    saved = tmp_path / "run" / "prunecheck.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps(doc, allow_nan=True))
    assert cli_main(["report", str(saved), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "prunecheck.md").read_text() == rp.render_markdown(doc)
    assert "<html" in (out / "prunecheck.html").read_text()
    assert str(out / "prunecheck.md") in capsys.readouterr().out
    assert cli_main(["report", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_reports_without_matplotlib_are_cheap_and_say_how_to_get_plots(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "stale.png").write_bytes(b"old")
    doc = sample_record().to_json()
    start = time.perf_counter()
    paths = rp.write_reports(doc, tmp_path)
    elapsed = time.perf_counter() - start
    assert [p.name for p in paths] == ["prunecheck.json", "prunecheck.md", "prunecheck.html"]
    assert "pip install prunecheck[plots]" in (tmp_path / "prunecheck.html").read_text()
    assert not (tmp_path / "plots" / "stale.png").exists()
    assert elapsed < 1.0
    rec.validate_report(json.loads((tmp_path / "prunecheck.json").read_text()))


def test_a_failing_writer_does_not_cost_the_other_reports(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("cannot render this")

    monkeypatch.setattr(rp, "render_markdown", broken)
    doc = sample_record().to_json()
    with pytest.raises(rp.ReportWriteError) as info:
        rp.write_reports(doc, tmp_path)
    assert "prunecheck.md: ValueError: cannot render this" in str(info.value)
    assert (tmp_path / "prunecheck.json").is_file() and (tmp_path / "prunecheck.html").is_file()
    assert not (tmp_path / "prunecheck.md").exists()


def test_reports_show_no_negative_zero_and_no_colour_codes():
    record = rec.RunRecord()
    # an identical pair: the difference of equal float sums can come out as a tiny negative
    gate = decide(name="accuracy_margin", metric="accuracy drop", value=-1e-17, threshold=0.005,
                  threshold_name="max_drop", parent=0.95, pruned=0.95, subject="same")
    assert gate.passed and "-0.0000" not in gate.message
    record.add_report(fake_report("t::same", gates=[gate]))
    record.add_report(fake_report("t::err", when="setup", outcome="failed",
                                  message="prunecheck: \x1b[1mWeights only load failed\x1b[0m"))
    doc = record.to_json()
    for text in (rp.render_markdown(doc), terminal.render_terminal(doc, width=120, verbose=True)):
        assert "-0.0000" not in text and "\x1b" not in text
    messages = {t["nodeid"]: t["message"] for t in doc["tests"]}
    assert messages["t::err"] == "prunecheck: Weights only load failed"
