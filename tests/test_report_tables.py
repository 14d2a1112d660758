"""Neutral report tables and their renderers: hand-written expected Markdown and HTML,
escaping of any text (hypothesis), the raw-JSON fallback, every table of a full page,
and the one-way import order inside prunecheck.report."""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunecheck.report import markdown
from prunecheck.report.document import render_markdown
from prunecheck.report.html import render_html, section_html, table_html
from prunecheck.report.table import BulletList, Code, Paragraph, Section, Strong, Table, plain
from prunecheck.report.tables import build_sections
from prunecheck.report.tables import pies as pies_table
from report_samples import sample_report

REPORT = Path(__file__).resolve().parents[1] / "prunecheck" / "report"


def small_table() -> Table:
    """Cells with a pipe, markup characters, numbers, emphasis and a code span."""
    return Table(
        headers=("pair", "drop", "note"),
        rows=(("a|b", Strong("0.0120 > 0.005"), "x < y & z"), (Code("m`1"), 7, None)),
        numeric=("drop",),
        title=("Drops of ", Code("fam")),
        notes=(Paragraph.of("drop = parent - pruned", ("second ", Strong("line"))),),
    )


def test_markdown_of_a_small_table():
    assert markdown.table(small_table()) == (
        "Drops of `fam`\n"
        "\n"
        "| pair      | drop               | note      |\n"
        "|-----------|--------------------|-----------|\n"
        "| a\\|b      | **0.0120 > 0.005** | x < y & z |\n"
        "| `` m`1 `` | 7                  |           |\n"
        "\n"
        "drop = parent - pruned\n"
        "second **line**"
    )


def test_html_of_a_small_table():
    assert table_html(small_table()) == (
        "<p>Drops of <code>fam</code></p>\n"
        "<table>\n"
        '<tr><th>pair</th><th class="num">drop</th><th>note</th></tr>\n'
        '<tr><td>a|b</td><td class="num"><strong>0.0120 &gt; 0.005</strong></td><td>x &lt; y &amp; z</td></tr>\n'
        '<tr><td><code>m`1</code></td><td class="num">7</td><td></td></tr>\n'
        "</table>\n"
        "<p>drop = parent - pruned<br>\nsecond <strong>line</strong></p>"
    )


def test_sections_lists_and_paragraphs_in_both_formats():
    section = Section("s", "Title <1>", (Paragraph.of("intro & more"), BulletList.of("one", (Code("two"), "|2"))))
    assert markdown.section(section) == "## Title <1>\n\nintro & more\n\n- one\n- `two`|2"
    assert section_html(section) == (
        "<h3>Title &lt;1&gt;</h3>\n<p>intro &amp; more</p>\n<ul><li>one</li><li><code>two</code>|2</li></ul>")


def test_table_refuses_rows_of_another_width_and_unknown_numeric_columns():
    with pytest.raises(ValueError, match=r"table row 1: expected 2 cells \(one per header: a, b\), found 3"):
        Table(("a", "b"), (("1", "2"), ("1", "2", "3")))
    with pytest.raises(ValueError, match="numeric column.*c are not headers"):
        Table(("a", "b"), (), numeric=("c",))
    with pytest.raises(TypeError, match="expected str, Strong, Code or a number, found list"):
        Table(("a",), (([1],),))


def test_a_payload_of_another_shape_is_listed_as_raw_json_and_the_rest_is_rendered():
    good = sample_report(1)["data"]
    broken = {"section": "efficiency", "subject": "odd`pair", "nodeid": "n", "payload": {"params": "a|b"}}
    unknown = {"section": "my_section", "subject": "s", "nodeid": "n", "payload": {"k": [1, 2]}}
    sections = build_sections([*good, broken, unknown])
    assert [s.name for s in sections] == [
        "efficiency", "uncertainty", "prune_potential", "functional", "instability", "my_section"]
    efficiency, custom = sections[0], sections[-1]
    assert plain(efficiency.blocks[0].lines[0]) == (
        "This section's data could not be rendered as a table (KeyError: 'parent'); raw entries:")
    assert efficiency.blocks[1] == BulletList(((Code("odd`pair"), ": ", Code('{"params": "a|b"}')),))
    assert custom == Section("my_section", "my_section", (BulletList(((Code("s"), ": ", Code('{"k": [1, 2]}')),)),))
    text = markdown.section(efficiency)
    assert text.endswith('- `` odd`pair ``: `{"params": "a|b"}`')
    assert any(isinstance(b, Table) for b in sections[1].blocks)  # the other sections are still tables


# -- HTML structure: parse the output back --------------------------------------------------
class TableReader(HTMLParser):
    """Tables of a page as lists of rows of (tag, text); also counts every start tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = [tag, ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell[0], self._cell[1]))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def read_tables(page: str) -> TableReader:
    reader = TableReader()
    reader.feed(page)
    reader.close()
    return reader


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def tables(draw):
    n_cols = draw(st.integers(1, 4))
    headers = tuple(draw(st.lists(texts, min_size=n_cols, max_size=n_cols)))
    run = st.one_of(texts, texts.map(Strong), texts.map(Code), st.integers(-10**6, 10**6))
    rows = tuple(tuple(draw(st.lists(run, min_size=n_cols, max_size=n_cols))) for _ in range(draw(st.integers(0, 4))))
    numeric = tuple(draw(st.sets(st.sampled_from(headers), max_size=n_cols)))
    return Table(headers, rows, numeric=numeric)


@settings(max_examples=150, deadline=None)
@given(tables())
def test_html_escapes_any_text_and_keeps_the_shape(table):
    page = table_html(table)
    reader = read_tables(page)
    assert set(reader.tags) <= {"table", "tr", "th", "td", "strong", "code"}  # no tag from the text
    (rows,) = reader.tables
    assert [[tag for tag, _ in row] for row in rows] == [["th"] * len(table.headers)] + [
        ["td"] * len(table.headers)] * len(table.rows)
    assert [text for _, text in rows[0]] == list(table.headers)
    assert [[text for _, text in row] for row in rows[1:]] == [[plain(cell) for cell in row] for row in table.rows]
    assert page.count('class="num"') == sum(map(table.is_numeric, range(len(table.headers)))) * (len(table.rows) + 1)


@settings(max_examples=150, deadline=None)
@given(tables())
def test_markdown_rows_keep_one_cell_per_header(table):
    lines = markdown.table(table).split("\n")
    assert len(lines) == len(table.rows) + 2
    for text in lines:  # a cell's own pipes are escaped, so the unescaped ones are the column borders
        assert column_borders(text) == len(table.headers) + 1, text


def column_borders(text: str) -> int:
    """Pipes that end a cell: a backslash escapes the character after it (GitHub's table rule)."""
    count, k = 0, 0
    while k < len(text):
        if text[k] == "\\":
            k += 2
            continue
        count += text[k] == "|"
        k += 1
    return count


def test_every_table_of_a_full_page_has_one_cell_per_header_and_escaped_text():
    doc = sample_report(4)
    doc["data"].append({"section": "pies", "subject": "<b>pair</b>", "nodeid": "n", "payload": {"error": "a | b & c"}})
    page = render_html(doc, [])
    reader = read_tables(page)
    assert "b" not in reader.tags  # the subject's <b> stayed text
    assert len(reader.tables) >= 8
    for rows in reader.tables:
        header, body = rows[0], rows[1:]
        assert all(tag == "th" for tag, _ in header)
        assert all(len(row) == len(header) for row in body), header
    pies = next(rows for rows in reader.tables if [t for _, t in rows[0]] == pies_table.HEADERS)
    assert [text for _, text in pies[1]] == ["<b>pair</b>", "", "", "not computed", "", "a | b & c"]
    assert "&lt;b&gt;pair&lt;/b&gt;" in page


def test_markdown_and_html_show_the_same_tables():
    """Both renderers start from the same blocks: same titles, headers and cell texts."""
    doc = sample_report(2)
    md = render_markdown(doc)
    page_tables = read_tables(render_html(doc, [])).tables
    for section in build_sections(doc["data"]):
        assert f"## {section.title}" in md and f"<h3>{html.escape(section.title)}</h3>" in render_html(doc, [])
        for block in section.blocks:
            if isinstance(block, Table):
                assert markdown.table(block) in md
                as_rows = [list(block.headers)] + [[plain(c) for c in row] for row in block.rows]
                assert as_rows in [[[t for _, t in row] for row in rows] for rows in page_tables]


# -- layering ------------------------------------------------------------------------------
#: prunecheck.report modules, lowest first; a module imports only from modules before it.
LAYERS = ["table", "format", "markdown", "tables", "record", "terminal", "plots", "html", "document"]


def report_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        if isinstance(node, ast.ImportFrom) and node.module == "prunecheck.report":
            names = [f"prunecheck.report.{a.name}" for a in node.names]
        found |= {n.split(".")[2] for n in names if n.startswith("prunecheck.report.")}
    return found


def test_report_modules_import_one_way():
    for path in sorted(REPORT.rglob("*.py")):
        module = path.parent.name if path.parent.name == "tables" else path.stem
        if module == "__init__":
            continue
        allowed = set(LAYERS[: LAYERS.index(module)]) | ({"tables"} if module == "tables" else set())
        assert report_imports(path) <= allowed, f"{path.relative_to(REPORT)} imports {report_imports(path) - allowed}"


def test_rendering_a_payload_never_changes_it():
    doc = sample_report(2)
    before = json.dumps(doc["data"], sort_keys=True)
    render_markdown(doc), render_html(doc, [])
    assert json.dumps(doc["data"], sort_keys=True) == before


@pytest.mark.slow
def test_a_browser_lays_out_every_table_with_numbers_right_aligned(tmp_path):
    """In headless chromium: each row has one cell per header and numeric cells are right-aligned."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    probe = ("<script>window.addEventListener('load', () => {"
             " const tables = [...document.querySelectorAll('.tables table')];"
             " const ragged = tables.filter(t => [...t.rows].some(r => r.cells.length !== t.rows[0].cells.length));"
             " const nums = [...document.querySelectorAll('.tables td.num')];"
             " const left = nums.filter(c => getComputedStyle(c).textAlign !== 'right');"
             " document.body.setAttribute('data-probe', `${tables.length} ${ragged.length} ${nums.length} ${left.length}`);"
             " });</script></body>")
    page = render_html(sample_report(3), []).replace("</body>", probe)
    (tmp_path / "page.html").write_text(page)
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", (tmp_path / "page.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'data-probe="(\d+) (\d+) (\d+) (\d+)"', dom)
    assert found, dom[-500:]
    n_tables, ragged, n_numeric, not_right = map(int, found.groups())
    assert n_tables == 3 and ragged == 0 and n_numeric > 100 and not_right == 0, found.groups()
