"""GitHub Markdown for report tables and sections (:mod:`prunecheck.report.table`).

Tables are GitHub pipe tables, every column padded to its widest cell (counted in
characters, so the text does not depend on the terminal-width tables installed) and
at least two characters wider than its header; cells are stripped, ``|`` inside a
cell is escaped (``\\|``) and a line break becomes a space, so no cell can break
the table.
:class:`~prunecheck.report.table.Strong` is ``**bold**`` and
:class:`~prunecheck.report.table.Code` a code span whose backtick fence is longer than
any backtick run inside it. Plain text is written as it is (names like
``max_class_drop`` stay readable; GitHub does not treat ``_`` inside a word as emphasis).
"""

from __future__ import annotations

import re

from prunecheck.report.table import Block, BulletList, Code, Line, Paragraph, Section, Strong, Table


def code_span(text: str) -> str:
    """```text```, with a longer fence (and padding spaces) when ``text`` holds backticks."""
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall(r"`+", text)) + 1)
    return f"{fence} {text} {fence}"


def inline(text: Line) -> str:
    """A line as Markdown: plain runs as they are, ``**strong**``, ```code```."""
    out = []
    for run in text:
        if isinstance(run, Strong):
            out.append(f"**{run.text}**")
        elif isinstance(run, Code):
            out.append(code_span(run.text))
        else:
            out.append(run)
    return "".join(out)


def _cell(text: Line | str) -> str:
    shown = text if isinstance(text, str) else inline(text)
    # a backslash before a pipe is doubled, so the pipe's own escape cannot be cancelled
    shown = re.sub(r"(\\*)\|", lambda m: 2 * m.group(1) + "\\|", shown)
    return shown.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def pipe_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub pipe table of already escaped cells, left-aligned like the reports have always been::

        | pair   | drop   |
        |--------|--------|
        | a      | 0.0120 |
    """
    headers = [h.strip() for h in headers]
    rows = [[cell.strip() for cell in row] for row in rows]
    widths = [max([len(h) + 2] + [len(row[k]) for row in rows]) for k, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(cells, widths)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def table(t: Table) -> str:
    """The table as a GitHub pipe table, its title above and its notes below (blank-line separated)."""
    grid = pipe_table([_cell(h) for h in t.headers], [[_cell(cell) for cell in row] for row in t.rows])
    parts = ([inline(t.title)] if t.title is not None else []) + [grid] + [paragraph(note) for note in t.notes]
    return "\n\n".join(parts)


def paragraph(p: Paragraph) -> str:
    return "\n".join(inline(text) for text in p.lines)


def bullet_list(items: BulletList) -> str:
    return "\n".join(f"- {inline(text)}" for text in items.items)


def block(b: Block) -> str:
    """One paragraph, list or table."""
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, BulletList):
        return bullet_list(b)
    if isinstance(b, Paragraph):
        return paragraph(b)
    raise TypeError(f"report block: expected Table, Paragraph or BulletList, found {type(b).__name__}")


def blocks(items: tuple[Block, ...] | list[Block]) -> str:
    """Blocks separated by blank lines."""
    return "\n\n".join(block(b) for b in items)


def section(s: Section) -> str:
    """``## title`` and the section's blocks."""
    return f"## {s.title}\n\n{blocks(s.blocks)}"
