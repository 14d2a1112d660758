"""Report tables as data: what a report section shows, whatever the output format.

The section modules (:mod:`prunecheck.report.tables`) build these objects from the
recorded payloads; the renderers turn them into text: :mod:`prunecheck.report.markdown`
(GitHub Markdown) and :mod:`prunecheck.report.html` (escaped HTML, numeric columns
right-aligned). Nothing here formats numbers or knows an output format, so no
renderer has to parse another's output.

Text is a :data:`Line`: a tuple of runs, each plain ``str``, :class:`Strong` (a value
over its threshold) or :class:`Code` (a name or literal). Example::

    Table(
        headers=("pair", "drop"),
        rows=(("resnet18-gm50", Strong("0.0120 > 0.005")), ("resnet18-gm54", "0.0020")),
        numeric=("drop",),
        notes=(Paragraph.of("drop = accuracy(parent) - accuracy(pruned)"),),
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Strong:
    """Emphasised text: a value over its threshold, a heading inside a section."""

    text: str


@dataclass(frozen=True)
class Code:
    """Literal text shown in a fixed-width font: a model or pair name, an option value, JSON."""

    text: str


Run = Union[str, Strong, Code]
#: A line of text: runs shown one after the other.
Line = tuple[Run, ...]


def line(*parts: Run | int | float) -> Line:
    """A :data:`Line` from runs; numbers become their ``str`` (format them first to choose the digits).

    Raises:
        TypeError: for a part that is neither text nor a number.
    """
    runs = []
    for part in parts:
        if isinstance(part, (str, Strong, Code)):
            runs.append(part)
        elif isinstance(part, (int, float)):
            runs.append(str(part))
        else:
            raise TypeError(f"report text: expected str, Strong, Code or a number, found {type(part).__name__} "
                            f"{part!r:.60}")
    return tuple(runs)


def _as_line(value: Run | Line | int | float) -> Line:
    return line(*value) if isinstance(value, tuple) else line(value)


def _as_cell(value: Run | Line | int | float | None) -> Line:
    return () if value is None else _as_line(value)  # None: a missing value, an empty cell


def plain(text: Line) -> str:
    """The line's characters without any emphasis (for widths and tests)."""
    return "".join(run if isinstance(run, str) else run.text for run in text)


@dataclass(frozen=True)
class Paragraph:
    """One or more lines of text; renderers keep the line breaks."""

    lines: tuple[Line, ...]

    @classmethod
    def of(cls, *lines: Run | Line) -> Paragraph:
        """``Paragraph.of("first line", (Code("x"), ": second line"))``."""
        return cls(tuple(_as_line(item) for item in lines))


@dataclass(frozen=True)
class BulletList:
    """An unordered list, one line per item."""

    items: tuple[Line, ...]

    @classmethod
    def of(cls, *items: Run | Line) -> BulletList:
        return cls(tuple(_as_line(item) for item in items))


@dataclass(frozen=True)
class Table:
    """A table with a header row, optionally a title above it and notes below it.

    Args:
        headers: Column names.
        rows: One tuple per row, one cell per header. A cell is a run (``str``,
            :class:`Strong`, :class:`Code`), a number (shown as its ``str``), a
            :data:`Line` or None (empty); cells are stored as lines.
        numeric: Names of the columns that hold numbers (right-aligned in HTML).
        title: A line shown above the table.
        notes: Paragraphs shown below it (what the columns mean).

    Raises:
        ValueError: a row whose cell count differs from the headers', or a numeric
            column that is not a header.
        TypeError: a cell that is not text or a number.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[Line, ...], ...]
    numeric: tuple[str, ...] = ()
    title: Line | None = None
    notes: tuple[Paragraph, ...] = ()

    def __post_init__(self) -> None:
        headers = tuple(str(h) for h in self.headers)
        if not headers:
            raise ValueError("table: expected at least one column header, found none")
        rows = []
        for k, row in enumerate(self.rows):
            row = tuple(row)
            if len(row) != len(headers):
                raise ValueError(f"table row {k}: expected {len(headers)} cells (one per header: "
                                 f"{', '.join(headers)}), found {len(row)}")
            rows.append(tuple(_as_cell(cell) for cell in row))
        unknown = [name for name in self.numeric if name not in headers]
        if unknown:
            raise ValueError(f"table: numeric column(s) {', '.join(unknown)} are not headers ({', '.join(headers)})")
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "rows", tuple(rows))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        if self.title is not None:
            object.__setattr__(self, "title", _as_line(self.title))
        object.__setattr__(self, "notes", tuple(
            note if isinstance(note, Paragraph) else Paragraph.of(note) for note in self.notes))

    def is_numeric(self, column: int) -> bool:
        """Whether column ``column`` (0-based) holds numbers."""
        return self.headers[column] in self.numeric


Block = Union[Paragraph, BulletList, Table]


@dataclass(frozen=True)
class Section:
    """One report section: a heading and its blocks in order.

    Args:
        name: The data section the entries were recorded under (``efficiency``, ...).
        title: The heading people read.
        blocks: Paragraphs, lists and tables.
    """

    name: str
    title: str
    blocks: tuple[Block, ...]
