"""The self-contained HTML report: one file, no external resources.

Laid out to scale to tens of pairs: the first screen holds the verdict (with a
note when the run was partial or interrupted) and every failing gate with its
message; then a table of contents per suite and per pair/family, failing first;
then one section per suite and subject whose passing gates are folded
(``<details>``) and whose plots sit in a grid that wraps (a plot per pair, never
one wide row of all of them); the section tables come last. Plots are embedded
as base64 PNG (or a note says they need ``pip install prunecheck[plots]``). The
section tables are the :mod:`prunecheck.report.table` objects that
:mod:`prunecheck.report.tables` builds, rendered here directly: every piece of
text escaped, numeric columns right-aligned.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from prunecheck.report.format import (
    GATE_HEADERS, GATE_NUMERIC, SUITE_ORDER, UNITS_NOTE, gate_row, groups, partial_note, problem_tests, report_title,
    restricted_note,
)
from prunecheck.report.plots import PlotImage
from prunecheck.report.table import Block, BulletList, Code, Line, Paragraph, Section, Strong, Table
from prunecheck.report.tables import build_sections

PLOTS_MISSING = ("Plots need matplotlib, which is not installed: <code>pip install prunecheck[plots]</code>, "
                 "then re-render this page with <code>prunecheck report reports/prunecheck.json</code>.")

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1em auto; max-width: 1400px;
       padding: 0 1em; color: #222; line-height: 1.35; }
h1 { margin: 0.2em 0; font-size: 1.6em; } h1.PASSED { color: #1a7f37; } h1.FAILED { color: #c62828; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.15em; margin: 1.2em 0 0.4em; }
h3 { margin: 1.2em 0 0.4em; }
p.meta { margin: 0.3em 0; font-size: 0.85em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 1em; margin: 0.5em 0; }
.note.partial { font-weight: bold; }
.counts { margin: 0.3em 0; } .counts span { display: inline-block; margin-right: 1em; font-weight: bold; }
.badge { display: inline-block; font-size: 0.75em; padding: 0 0.45em; border-radius: 0.7em; margin-left: 0.3em;
         vertical-align: middle; font-weight: bold; }
.badge.FAIL { background: #c62828; color: white; } .badge.XFAIL { background: #f0b400; color: #222; }
.badge.PASS { background: #d7efdc; color: #1a7f37; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } th.num { text-align: right; }
tr.FAIL td { background: #fde0e0; } tr.FAIL td.status { color: #b71c1c; font-weight: bold; }
tr.XFAIL td { background: #fff4d6; } tr.XFAIL td.status { color: #8a6d00; font-weight: bold; }
tr.PASS td.status { color: #1a7f37; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
table.overview td, table.overview th { text-align: center; padding: 1px 7px; }
table.overview td:first-child { text-align: left; white-space: nowrap; }
table.overview a { text-decoration: none; }
td.msg { font-size: 0.9em; color: #555; }
details { margin: 0.3em 0; } summary { cursor: pointer; color: #333; }
details.passed { margin: 0.15em 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr)); gap: 0.8em;
         align-items: start; }
.plots figure.wide { grid-column: 1 / -1; }
figure { margin: 0; min-width: 0; } figure img { display: block; width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f4f4f4; padding: 0 3px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 6px; } .thumbs figure { margin: 0; font-size: 0.75em; text-align: center; }
.thumbs img { image-rendering: pixelated; border: 1px solid #ccc; }
a.plotlink { font-size: 0.7em; font-weight: normal; margin-left: 0.6em; }
section > h3 { font-size: 1.05em; margin: 0.9em 0 0.3em; }
.tables, .scroll { overflow-x: auto; }  /* a wide table scrolls by itself, never the page */
"""

SUITE_TITLES = {
    "accuracy_margin": "Accuracy margin",
    "uncertainty": "Uncertainty drift",
    "corruptions": "Corruption robustness and prune potential",
    "functional": "Functional similarity",
    "instability": "Pruning instability",
}
WIDE_PX = 900  # plots wider than this span the whole grid row
# plot section -> the suite whose gates it illustrates
PLOT_SUITE = {"prune_potential": "corruptions"}


def inline_html(text: Line) -> str:
    """A line as escaped HTML: ``<strong>`` and ``<code>`` for the emphasised runs."""
    out = []
    for run in text:
        if isinstance(run, Strong):
            out.append(f"<strong>{html.escape(run.text)}</strong>")
        elif isinstance(run, Code):
            out.append(f"<code>{html.escape(run.text)}</code>")
        else:
            out.append(html.escape(run))
    return "".join(out)


def _paragraph(p: Paragraph) -> str:
    return "<p>" + "<br>\n".join(inline_html(text) for text in p.lines) + "</p>"


def table_html(t: Table) -> str:
    """The table as HTML, numeric columns right-aligned; its title above and notes below as paragraphs."""
    num = [t.is_numeric(k) for k in range(len(t.headers))]

    def cell(tag: str, k: int, content: str) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if num[k] else f"<{tag}>{content}</{tag}>"

    rows = ["<tr>" + "".join(cell("th", k, html.escape(h)) for k, h in enumerate(t.headers)) + "</tr>"]
    rows += ["<tr>" + "".join(cell("td", k, inline_html(c)) for k, c in enumerate(row)) + "</tr>" for row in t.rows]
    parts = [f"<p>{inline_html(t.title)}</p>"] if t.title is not None else []
    parts.append("<table>\n" + "\n".join(rows) + "\n</table>")
    parts += [_paragraph(note) for note in t.notes]
    return "\n".join(parts)


def block_html(b: Block) -> str:
    """One paragraph, list or table as HTML."""
    if isinstance(b, Table):
        return table_html(b)
    if isinstance(b, BulletList):
        return "<ul>" + "".join(f"<li>{inline_html(text)}</li>" for text in b.items) + "</ul>"
    if isinstance(b, Paragraph):
        return _paragraph(b)
    raise TypeError(f"report block: expected Table, Paragraph or BulletList, found {type(b).__name__}")


def section_html(s: Section) -> str:
    """A section of the page's table part: an ``<h3>`` heading and its blocks."""
    return "\n".join([f"<h3>{html.escape(s.title)}</h3>", *(block_html(b) for b in s.blocks)])


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in parts)


def _gate_table(gates: list[dict[str, Any]], *, messages: bool = True) -> str:
    headers = GATE_HEADERS + (["message"] if messages else [])
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for gate in gates:
        cells = []
        for header, value in zip(GATE_HEADERS, gate_row(gate)):
            cls = "status" if header == "status" else ("num" if header in GATE_NUMERIC else
                                                       "nowrap" if header in ("gate", "subject", "view", "threshold") else "")
            cells.append(f'<td class="{cls}">{html.escape(value)}</td>' if cls else f"<td>{html.escape(value)}</td>")
        if messages:
            message = "" if gate["status"] == "PASS" else gate["message"]
            cells.append(f'<td class="msg" title="{html.escape(gate["nodeid"])}">{html.escape(message)}</td>')
        rows.append(f'<tr class="{gate["status"]}">' + "".join(cells) + "</tr>")
    return '<div class="scroll"><table class="gates">\n' + "\n".join(rows) + "\n</table></div>"


def _badges(gates: list[dict[str, Any]], *, only_worst: bool = False) -> str:
    """``2 FAIL`` ``13 PASS`` badges; ``only_worst``: just the word of the worst status."""
    parts = []
    for status in ("FAIL", "XFAIL", "PASS"):
        n = sum(g["status"] == status for g in gates)
        if n and only_worst:
            return f'<span class="badge {status}">{status}</span>' if status != "PASS" else ""
        if n:
            parts.append(f'<span class="badge {status}">{n} {status}</span>')
    return "".join(parts)


def _figure(image: PlotImage) -> str:
    if image.skipped:  # the plot could not be drawn: say which and why, in its place
        return (f'<p class="note skipped" id="plot-{html.escape(image.name)}">Plot skipped: '
                f'{html.escape(image.title)}: could not be drawn ({html.escape(image.skipped)})</p>')
    data = base64.b64encode(image.png).decode("ascii")
    size = _png_size(image.png)
    # A figure of many panels gets the page's width; a small one a grid cell. Neither is
    # drawn wider than its pixels (no blur); both shrink with the window.
    cls = ' class="wide"' if size and size[0] > WIDE_PX else ""
    limit = f' style="max-width: {size[0]}px"' if size else ""
    return (f'<figure id="plot-{html.escape(image.name)}"{cls}><img alt="{html.escape(image.title)}"{limit} '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(image.title)}</figcaption></figure>')


def _png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return None
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _grid(images: list[PlotImage]) -> str:
    return '<div class="plots">\n' + "\n".join(_figure(image) for image in images) + "\n</div>" if images else ""


def _overview(by_suite: dict[str, list[tuple[str, list[dict[str, Any]]]]], suites: list[str]) -> str:
    """Table of contents as a matrix: a row per pair/family (failing first), a column per suite,
    each cell the gate counts by status, linking to that section."""
    subjects: dict[str, list[dict[str, Any]]] = {}
    for suite in suites:
        for subject, members in by_suite[suite]:
            subjects.setdefault(subject, []).extend(members)
    rank = {"FAIL": 0, "XFAIL": 1, "PASS": 2}
    order = sorted(subjects, key=lambda name: (min(rank.get(g["status"], 3) for g in subjects[name]), name))
    head = "<tr><th>pair / family</th>" + "".join(
        f'<th><a href="#{_anchor(suite)}">{html.escape(SUITE_TITLES.get(suite, suite))}</a></th>' for suite in suites
    ) + "</tr>"
    rows = []
    for subject in order:
        cells = [f"<td>{html.escape(subject)}{_badges(subjects[subject], only_worst=True)}</td>"]
        for suite in suites:
            members = dict(by_suite[suite]).get(subject)
            cells.append(f'<td><a href="#{_anchor(suite, subject)}">{_badges(members)}</a></td>' if members
                         else "<td></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<div class="scroll"><table class="overview">\n' + head + "\n" + "\n".join(rows) + "\n</table></div>"


def _suite_order(by_suite: dict[str, list]) -> list[str]:
    """Suites with failing gates first, then the suites' usual order."""
    def key(suite: str):
        statuses = [g["status"] for _, members in by_suite[suite] for g in members]
        worst = 0 if "FAIL" in statuses else 1 if "XFAIL" in statuses else 2
        return (worst, SUITE_ORDER.index(suite) if suite in SUITE_ORDER else len(SUITE_ORDER), suite)

    return sorted(by_suite, key=key)


def _thumbnails(data: list[dict[str, Any]]) -> str:
    """Grids of the base64 PNG thumbnails the PIE section records (``payload["first"]``)."""
    grids = []
    for entry in data:
        if entry["section"] != "pies" or not entry["payload"].get("first"):
            continue
        figures = []
        for item in entry["payload"]["first"]:
            caption = (f"#{item['index']} label {item['label']}: "
                       f"{'/'.join(map(str, item['unpruned_modal']))} \u2192 {'/'.join(map(str, item['pruned_modal']))}")
            figures.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
                           f'{html.escape(item["png"])}"><figcaption>{html.escape(caption)}</figcaption></figure>')
        grids.append(f"<h3>First PIEs of <code>{html.escape(entry['subject'])}</code> "
                     "(label: unpruned modal \u2192 pruned modal)</h3>\n"
                     f'<div class="thumbs">{"".join(figures)}</div>')
    return "\n".join(grids)


def render_html(doc: dict[str, Any], images: list[PlotImage] | None) -> str:
    """The HTML page for a report document.

    Args:
        doc: The report document.
        images: Plots from :func:`prunecheck.report.plots.render_plots`; ``None`` means
            matplotlib is missing and the page says how to get them.

    Returns:
        A complete HTML document with everything inline.
    """
    s = doc["summary"]
    title = report_title(doc)
    body = [f'<h1 class="{s["verdict"]}">prunecheck report: {html.escape(title)}</h1>']
    partial = partial_note(doc)
    if partial:
        body.append(f'<p class="note partial">This is a {html.escape(partial)}: a full run can give another '
                    "verdict.</p>")
    restricted = restricted_note(doc)
    if restricted:
        body.append(f'<p class="note">{html.escape(restricted[0].upper() + restricted[1:])}.</p>')
    if doc["session"]["interrupted"]:
        body.append(f'<p class="note partial">The run was interrupted '
                    f'({html.escape(doc["session"]["reason"] or "stopped early")}): the report holds what ran.</p>')
    body.append('<p class="counts">' + "".join(
        f'<span class="{status}">{n} {label}</span>' for status, n, label in (
            ("FAIL", s["gates_failed"], "failed"), ("XFAIL", s["gates_xfailed"], "known failures (expect_fail)"),
            ("PASS", s["gates_passed"], "passed"), ("FAIL", s["errors"], "errors without a gate result"))
        if n or label == "failed") + "</p>")
    body.append('<p class="meta">' + " · ".join((
        f"config <code>{html.escape(doc['config'])}</code>" + (" (built-in demo)" if doc["demo"] else ""),
        f"written {html.escape(doc['created'])} by prunecheck {html.escape(doc['prunecheck_version'])}",
        html.escape(UNITS_NOTE),
    )) + "</p>")

    by_suite: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for (suite, subject), members in groups(doc["gates"]):  # failing groups first
        by_suite.setdefault(suite, []).append((subject, members))
    plots: dict[tuple[str, str], list[PlotImage]] = {}
    for image in images or []:
        plots.setdefault((PLOT_SUITE.get(image.section, image.section), image.subject), []).append(image)
    suites = _suite_order(by_suite)
    if doc["gates"]:
        body += ['<h2 id="contents">Overview</h2>', _overview(by_suite, suites)]
    extra_plots = [key for key in plots if key[0] not in by_suite or key[1] not in dict(by_suite[key[0]])]
    links = ['<a href="#failing">failing gates</a>'] if any(g["status"] != "PASS" for g in doc["gates"]) else []
    links += ['<a href="#plots-other">other plots</a>'] if extra_plots else []
    links += ['<a href="#tables">tables (efficiency, uncertainty, ...)</a>']
    body.append("<p>Jump to: " + " · ".join(links) + "</p>")

    failing = [g for g in doc["gates"] if g["status"] != "PASS"]
    if failing:
        body += [f'<h2 id="failing">Failing gates ({len(failing)})</h2>', _gate_table(failing)]
    problems = problem_tests(doc["gates"], doc["tests"])
    if problems:
        body.append('<h2 id="errors">Errors (no gate result; counted as failed)</h2><ul>' + "".join(
            f"<li><code>{html.escape(t['nodeid'])}</code>: {html.escape(t['message'])}</li>" for t in problems)
            + "</ul>")
    if not doc["gates"]:
        body.append("<p>No gate ran.</p>")

    if images is None:
        body.append(f'<p class="note">{PLOTS_MISSING}</p>')

    for suite in suites:
        body.append(f'<section id="{_anchor(suite)}"><h2>{html.escape(SUITE_TITLES.get(suite, suite))}</h2>')
        suite_plots: list[PlotImage] = []
        for subject, members in by_suite[suite]:  # failing first
            bad = [g for g in members if g["status"] != "PASS"]
            passed = [g for g in members if g["status"] == "PASS"]
            mine = plots.get((suite, subject), [])
            suite_plots += mine
            links = "".join(f' <a class="plotlink" href="#plot-{html.escape(i.name)}">plot</a>' for i in mine[:1])
            if not bad:  # all passed: one folded line
                body.append(f'<details class="passed" id="{_anchor(suite, subject)}"><summary><strong>'
                            f"{html.escape(subject)}</strong>{_badges(members)}{links}</summary>"
                            f"{_gate_table(passed, messages=False)}</details>")
                continue
            body.append(f'<section id="{_anchor(suite, subject)}"><h3>{html.escape(subject)}{_badges(members)}'
                        f"{links}</h3>")
            body.append(_gate_table(bad))
            if passed:
                body.append(f"<details><summary>{len(passed)} passing gate{'s' if len(passed) != 1 else ''}"
                            f"</summary>{_gate_table(passed, messages=False)}</details>")
            body.append("</section>")
        if suite_plots:  # one grid per suite: small plots wrap, several pairs to a row
            body += [f"<h3>Plots: {html.escape(SUITE_TITLES.get(suite, suite))}</h3>", _grid(suite_plots)]
        body.append("</section>")
    if extra_plots:
        body += ['<h2 id="plots-other">Other plots</h2>', _grid([i for key in extra_plots for i in plots[key]])]
    elif images == [] and not doc["gates"]:
        body.append("<p>No recorded data to plot.</p>")

    body.append('<h2 id="tables">Tables</h2><div class="tables">')
    for section in build_sections(doc["data"]):
        body.append(section_html(section))
    body.append(_thumbnails(doc["data"]))
    body.append("</div>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>prunecheck report: {html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part) + "\n</body>\n</html>\n"
    )
