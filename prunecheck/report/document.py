"""The run's reports, written from one report document (:mod:`prunecheck.report.record`).

Reports are written at session end whatever the outcome: when gates fail, and when
the run was interrupted (``-x``, Ctrl-C) with what had run so far. Each output is
rendered from the document alone, so ``prunecheck report PATH.json`` writes them
again exactly as the run did:

- ``prunecheck.json``: the document;
- ``prunecheck.md``: Markdown (:func:`render_markdown`; also appended to
  ``$GITHUB_STEP_SUMMARY`` in CI);
- ``prunecheck.html``: one self-contained page with the plots embedded
  (:mod:`prunecheck.report.html`);
- ``plots/*.png``: the plots (:mod:`prunecheck.report.plots`; only with matplotlib,
  the ``plots`` extra).

The flow is one way: document -> sections (:mod:`prunecheck.report.tables`, neutral
:mod:`prunecheck.report.table` objects) -> renderers (:mod:`~prunecheck.report.markdown`,
:mod:`~prunecheck.report.html`, :mod:`~prunecheck.report.terminal`) and plots; this
module sits on top and nothing in the package imports it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prunecheck.core.errors import PrunecheckError, plain_text
from prunecheck.core.io import atomic_file
from prunecheck.report import markdown
from prunecheck.report.format import UNITS_NOTE, gate_table, problem_tests, report_title, restricted_note, verdict_line
from prunecheck.report.tables import build_sections


class ReportWriteError(PrunecheckError):
    """Some reports could not be written; the others were (the message says which and why)."""


# -- Markdown ----------------------------------------------------------------------
def render_markdown(doc: dict[str, Any], *, html_name: str | None = "prunecheck.html", sections: bool = True) -> str:
    """The Markdown report: verdict, failing gates, passing gates (collapsed), section tables.

    Args:
        doc: The report document.
        html_name: The HTML page to point to, or None (the GitHub job summary cannot link to it).
        sections: Include the section tables (efficiency, uncertainty, ...).
    """
    gates = doc["gates"]
    title = report_title(doc)
    lines = [
        f"# prunecheck report: {title}",
        "",
        f"- config: `{doc['config']}`" + (" (built-in demo)" if doc["demo"] else ""),
        f"- {verdict_line(doc)}",
        f"- written {doc['created']} by prunecheck {doc['prunecheck_version']}"
        + (f"; plots and the full page: `{html_name}`" if html_name else ""),
        f"- {UNITS_NOTE}",
    ]
    restricted = restricted_note(doc)
    if restricted:
        lines.insert(4, f"- {restricted}")  # under the verdict line
    failing = [g for g in gates if g["status"] != "PASS"]
    passing = [g for g in gates if g["status"] == "PASS"]
    lines += ["", "## Gates", ""]
    if not gates:
        lines.append("No gate ran.")
    if failing:
        lines += [markdown.table(gate_table(failing)), ""]
    if passing:
        lines += ["<details>", f"<summary>{len(passing)} passing gates</summary>", "", markdown.table(gate_table(passing)), "",
                  "</details>"]
    for status, heading in (("FAIL", "Failures"), ("XFAIL", "Known failures (expect_fail)")):
        chosen = [g for g in gates if g["status"] == status]
        if chosen:
            lines += ["", f"## {heading}", ""]
            lines += [f"- `{g['nodeid']}`: {g['message']}" for g in chosen]
    problems = problem_tests(gates, doc["tests"])
    if problems:
        lines += ["", "## Errors (no gate result; counted as failed)", ""]
        lines += [f"- `{t['nodeid']}`: {t['message']}" for t in problems]
    for section in build_sections(doc["data"]) if sections else []:
        lines += ["", markdown.section(section)]
    return "\n".join(lines) + "\n"


# -- writing -----------------------------------------------------------------------
def _atomic_write(path: Path, content: str | bytes) -> None:
    with atomic_file(path, "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)


def write_rendered(doc: dict[str, Any], out_dir: Path, *, plots: bool = True) -> list[Path]:
    """Write prunecheck.md, prunecheck.html and plots/*.png rendered from ``doc``.

    Without matplotlib the plots are left out (the HTML says how to get them) and
    nothing heavy is imported. A plot that cannot be drawn is named on the page with
    the reason; a writer that fails does not stop the others.

    Raises:
        ReportWriteError: after writing everything it could, naming what failed and why.
    """
    from prunecheck.report.html import render_html
    from prunecheck.report.plots import render_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = render_plots(doc) if plots else None
    paths: list[Path] = []
    failures: list[str] = []
    writers = (("prunecheck.md", lambda: render_markdown(doc)), ("prunecheck.html", lambda: render_html(doc, images)))
    for name, render in writers:
        try:
            _atomic_write(out_dir / name, render())
            paths.append(out_dir / name)
        except Exception as exc:  # one broken writer must not cost the other reports
            failures.append(f"{name}: {type(exc).__name__}: {plain_text(exc)}")
    plot_dir = out_dir / "plots"
    if plot_dir.is_dir():  # plots of an earlier run must not linger next to this one's
        for old in plot_dir.glob("*.png"):
            old.unlink()
    drawn = [image for image in images or () if not image.skipped]
    if drawn:
        plot_dir.mkdir(exist_ok=True)
        for image in drawn:
            _atomic_write(plot_dir / f"{image.name}.png", image.png)
        paths.append(plot_dir)
    if failures:
        written = ", ".join(str(p) for p in paths) or "nothing else"
        raise ReportWriteError(f"could not write {'; '.join(failures)} (written: {written})")
    return paths


def write_reports(doc: dict[str, Any], report_dir: Path) -> list[Path]:
    """Write prunecheck.json and everything rendered from it; return the paths
    (JSON first, then Markdown, HTML and the plots folder)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "prunecheck.json"
    _atomic_write(path, json.dumps(doc, indent=2, allow_nan=True) + "\n")
    return [path, *write_rendered(doc, report_dir)]


STEP_SUMMARY_LIMIT = 900 * 1024  # GitHub refuses job summaries over 1 MiB per step


def append_step_summary(doc: dict[str, Any], summary_file: str | os.PathLike) -> None:
    """Append the Markdown report to a GitHub Actions job summary (``$GITHUB_STEP_SUMMARY``).

    A report too large for a job summary loses its section tables first, then is cut
    (with a note); the full report is in the report folder.
    """
    text = render_markdown(doc, html_name=None)
    if len(text.encode("utf-8")) > STEP_SUMMARY_LIMIT:
        text = render_markdown(doc, html_name=None, sections=False)
        note = "\n\n_Section tables left out to fit the job summary; see prunecheck.md / prunecheck.report.html._\n"
        if len(text.encode("utf-8")) > STEP_SUMMARY_LIMIT:
            text = text.encode("utf-8")[:STEP_SUMMARY_LIMIT].decode("utf-8", "ignore")
            note = "\n\n_Cut to fit the job summary; see prunecheck.md / prunecheck.report.html._\n"
        text += note
    with open(summary_file, "a", encoding="utf-8") as handle:
        handle.write(text + "\n")
