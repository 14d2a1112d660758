"""The self-contained HTML report: one file, no external resources.

It holds the verdict, the gate table (failing rows highlighted, each with its
message), the tests that errored without a gate result, the plots embedded as
base64 PNG (or a note saying they need ``pip install prunecheck[plots]``) and the
section tables. The section tables are the Markdown that ``prunecheck.tables``
renders, converted here by a small converter for the subset those modules emit:
GitHub pipe tables, paragraphs, ``**bold**`` and ```code```.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from prunecheck.plots import PlotImage
from prunecheck.report import GATE_HEADERS, UNITS_NOTE, gate_row, problem_tests, verdict_line
from prunecheck.tables import render_sections

PLOTS_MISSING = ("Plots need matplotlib, which is not installed: <code>pip install prunecheck[plots]</code>, "
                 "then re-render this page with <code>prunecheck report reports/prunecheck.json</code>.")

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h1.PASSED { color: #1a7f37; } h1.FAILED { color: #c62828; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; position: sticky; top: 0; }
tr.FAIL td { background: #fde0e0; } tr.FAIL td.status { color: #b71c1c; font-weight: bold; }
tr.XFAIL td { background: #fff4d6; } tr.XFAIL td.status { color: #8a6d00; font-weight: bold; }
tr.PASS td.status { color: #1a7f37; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.msg { font-size: 0.9em; color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
code { background: #f4f4f4; padding: 0 3px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 6px; } .thumbs figure { margin: 0; font-size: 0.75em; text-align: center; }
.thumbs img { image-rendering: pixelated; border: 1px solid #ccc; }
"""

_NUMERIC = {"parent", "pruned", "value", "margin"}


def _inline(text: str) -> str:
    """Escape text, then apply the inline Markdown the tables use: **bold** and `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def markdown_to_html(text: str) -> str:
    """Convert the Markdown subset emitted by ``prunecheck.tables`` to HTML.

    Args:
        text: Blocks separated by blank lines: ``#`` headings, GitHub pipe tables
            (header, ``|---|`` rule, rows) or paragraphs.

    Returns:
        HTML with every piece of text escaped.
    """
    parts = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        if not lines:
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", lines[0])
        if heading and len(lines) == 1:
            level = min(len(heading.group(1)) + 1, 6)
            parts.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif all(line.lstrip().startswith("|") for line in lines) and len(lines) >= 2:
            header = _split_row(lines[0])
            body = [_split_row(line) for line in lines[1:] if not re.fullmatch(r"\s*\|[\s:|-]+\|\s*", line)]
            rows = ["<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
            parts.append("<table>\n" + "\n".join(rows) + "\n</table>")
        else:
            parts.append("<p>" + "<br>\n".join(_inline(line) for line in lines) + "</p>")
    return "\n".join(parts)


def _gate_table(doc: dict[str, Any]) -> str:
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in GATE_HEADERS) + "<th>message</th></tr>"]
    for gate in doc["gates"]:
        cells = []
        for header, value in zip(GATE_HEADERS, gate_row(gate, markdown=False)):
            cls = "status" if header == "status" else ("num" if header in _NUMERIC else "")
            cells.append(f'<td class="{cls}">{html.escape(value)}</td>' if cls else f"<td>{html.escape(value)}</td>")
        message = "" if gate["status"] == "PASS" else gate["message"]
        cells.append(f'<td class="msg" title="{html.escape(gate["nodeid"])}">{html.escape(message)}</td>')
        rows.append(f'<tr class="{gate["status"]}">' + "".join(cells) + "</tr>")
    return '<table class="gates">\n' + "\n".join(rows) + "\n</table>"


def _plots(images: list[PlotImage] | None) -> str:
    if images is None:
        return f'<p class="note">{PLOTS_MISSING}</p>'
    if not images:
        return "<p>No recorded data to plot.</p>"
    figures = []
    for image in images:
        if image.skipped:  # the plot could not be drawn: say which and why, in its place
            figures.append(f'<p class="note skipped" id="plot-{html.escape(image.name)}">Plot skipped: '
                           f'{html.escape(image.title)}: could not be drawn ({html.escape(image.skipped)})</p>')
            continue
        data = base64.b64encode(image.png).decode("ascii")
        figures.append(f'<figure id="plot-{html.escape(image.name)}"><img alt="{html.escape(image.title)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>{html.escape(image.title)}</figcaption></figure>')
    return "\n".join(figures)


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
        images: Plots from :func:`prunecheck.plots.render_plots`; ``None`` means
            matplotlib is missing and the page says how to get them.

    Returns:
        A complete HTML document with everything inline.
    """
    s = doc["summary"]
    interrupted = doc["session"]["interrupted"]
    title = s["verdict"] + (" (run interrupted: incomplete)" if interrupted else "")
    meta = [
        f"config: <code>{html.escape(doc['config'])}</code>" + (" (built-in demo)" if doc["demo"] else ""),
        html.escape(verdict_line(doc)),
        f"written {html.escape(doc['created'])} by prunecheck {html.escape(doc['prunecheck_version'])}",
        html.escape(UNITS_NOTE),
    ]
    body = [
        f'<h1 class="{s["verdict"]}">prunecheck report: {html.escape(title)}</h1>',
        "<ul>" + "".join(f"<li>{item}</li>" for item in meta) + "</ul>",
        "<h2>Gates</h2>",
        _gate_table(doc) if doc["gates"] else "<p>No gate ran.</p>",
    ]
    problems = problem_tests(doc["gates"], doc["tests"])
    if problems:
        body.append("<h2>Errors (no gate result; counted as failed)</h2><ul>" + "".join(
            f"<li><code>{html.escape(t['nodeid'])}</code>: {html.escape(t['message'])}</li>" for t in problems)
            + "</ul>")
    body += ["<h2>Plots</h2>", _plots(images)]
    for block in render_sections(doc["data"]):
        body.append(markdown_to_html(block))
    body.append(_thumbnails(doc["data"]))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>prunecheck report: {html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )
