"""Report tables, one module per report section.

A suite attaches data to its test with ``gate.record(section, subject, payload)``;
at the end of the run the entries of each section are rendered to Markdown by
``prunecheck.report.tables.<section>.render(entries)``. Sections appear in ``ORDER``;
a section without a module, or whose entries its module cannot render (a payload
of another shape), is listed as raw JSON so nothing recorded is lost and the
rest of the report is still written.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

ORDER = ("efficiency", "class_accuracy", "pies", "uncertainty", "corruptions", "prune_potential", "functional", "instability")


def render_sections(data: list[dict[str, Any]]) -> list[str]:
    """Markdown blocks (heading + table) for every section present in ``data``."""
    by_section: dict[str, list[dict[str, Any]]] = {}
    for entry in data:
        by_section.setdefault(entry["section"], []).append(entry)
    names = [s for s in ORDER if s in by_section] + sorted(s for s in by_section if s not in ORDER)
    blocks = []
    for name in names:
        entries = sorted(by_section[name], key=lambda e: e["subject"])
        try:
            module = importlib.import_module(f"prunecheck.report.tables.{name}")
        except ModuleNotFoundError:
            blocks.append(f"## {name}\n\n{_raw(entries)}")
            continue
        try:
            blocks.append(f"## {module.TITLE}\n\n{module.render(entries)}")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            blocks.append(f"## {module.TITLE}\n\nThis section's data could not be rendered as a table "
                          f"({type(exc).__name__}: {exc}); raw entries:\n\n{_raw(entries)}")
    return blocks


def _raw(entries: list[dict[str, Any]]) -> str:
    return "\n".join(f"- `{e['subject']}`: `{json.dumps(e['payload'])[:500]}`" for e in entries)
