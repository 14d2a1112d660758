"""Report sections: recorded entries -> neutral tables, one module per section.

A suite attaches data to its test with ``gate.record(section, subject, payload)``; at
the end of the run :func:`build_sections` hands the entries of each section to
``prunecheck.report.tables.<section>.build(entries)``, which returns
:mod:`prunecheck.report.table` blocks (tables, paragraphs, lists) for the Markdown and
HTML renderers. Sections appear in ``ORDER``; a section without a module, or whose
entries its module cannot build (a payload of another shape), is listed as raw JSON
so nothing recorded is lost and the rest of the report is still written.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from prunecheck.report.table import BulletList, Code, Paragraph, Section

ORDER = ("efficiency", "class_accuracy", "pies", "uncertainty", "corruptions", "prune_potential", "functional", "instability")
#: What a section module may raise on a payload of another shape (Table raises ValueError/TypeError).
PAYLOAD_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError)
RAW_LIMIT = 500  # characters of a payload's JSON shown in the raw fallback


def build_sections(data: list[dict[str, Any]]) -> list[Section]:
    """A :class:`~prunecheck.report.table.Section` for every section present in ``data``,
    in ``ORDER`` (then unknown sections by name), entries sorted by subject."""
    by_section: dict[str, list[dict[str, Any]]] = {}
    for entry in data:
        by_section.setdefault(entry["section"], []).append(entry)
    names = [s for s in ORDER if s in by_section] + sorted(s for s in by_section if s not in ORDER)
    return [build_section(name, sorted(by_section[name], key=lambda e: e["subject"])) for name in names]


def build_section(name: str, entries: list[dict[str, Any]]) -> Section:
    """The section ``name`` from its entries, or its raw entries when they cannot be tabulated."""
    try:
        if not name.isidentifier():
            raise ModuleNotFoundError(name)
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        return Section(name, name, (raw_entries(entries),))
    try:
        return Section(name, module.TITLE, tuple(module.build(entries)))
    except PAYLOAD_ERRORS as exc:
        why = Paragraph.of(f"This section's data could not be rendered as a table ({type(exc).__name__}: {exc}); "
                           "raw entries:")
        return Section(name, module.TITLE, (why, raw_entries(entries)))


def raw_entries(entries: list[dict[str, Any]]) -> BulletList:
    """One item per entry: the subject and the start of its payload as JSON."""
    return BulletList(tuple(
        (Code(str(e["subject"])), ": ", Code(json.dumps(e["payload"])[:RAW_LIMIT])) for e in entries))
