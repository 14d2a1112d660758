"""The HTML report at scale, partial runs flagged in every report, no ANSI escapes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from prunecheck.report import document as rp
from prunecheck.report import format as fmt
from prunecheck.report import record as rec
from prunecheck.report import terminal
from prunecheck.report.html import WIDE_PX, render_html
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project
from report_samples import sample_report

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"
PAGE_WIDTH = 1400  # the page's max-width (px); images must never be shown wider


class Outline(HTMLParser):
    """Headings, ids, <details> states and <img> attributes of a page, in document order."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.events.append((tag, dict(attrs)))


def outline(page: str) -> list[tuple[str, dict]]:
    parser = Outline()
    parser.feed(page)
    return parser.events


def png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")


def test_partial_run_is_flagged_in_terminal_markdown_and_html():
    doc = sample_report(1)
    doc["session"].update(deselected=107, selection="-k 'gm50'")
    assert fmt.partial_note(doc) == "partial run: 107 tests deselected (-k 'gm50'), not every gate ran"
    assert rp.render_markdown(doc).startswith("# prunecheck report: FAILED (partial run)")
    assert "partial run: 107 tests deselected" in rp.render_markdown(doc)
    assert "partial run: 107 tests deselected" in terminal.render_terminal(doc, width=200)
    page = render_html(doc, [])
    assert "<title>prunecheck report: FAILED (partial run)</title>" in page
    assert "This is a partial run: 107 tests deselected" in page
    full = sample_report(1)
    assert "partial run" not in rp.render_markdown(full) and "partial run" not in render_html(full, [])


def test_reports_written_before_the_selection_keys_still_load(tmp_path):
    doc = sample_report(1)
    for key in ("deselected", "selection"):
        del doc["session"][key]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    loaded = rec.load_report(tmp_path / "old.json")
    assert loaded["session"]["deselected"] == 0 and fmt.partial_note(loaded) == ""


def test_ansi_colour_codes_never_reach_a_report():
    coloured = "\x1b[31mRuntimeError\x1b[0m: CUDA \x1b[1mout of memory\x1b[0m"
    assert rec.strip_ansi(coloured) == "RuntimeError: CUDA out of memory"
    record = rec.RunRecord(source="x.toml")
    from types import SimpleNamespace

    from prunecheck.report.record import TEST_PROPERTY
    record.add_report(SimpleNamespace(nodeid="t.py::a", when="call", user_properties=[(TEST_PROPERTY, "1")],
                                      failed=True, skipped=False, passed=False, longreprtext="E   " + coloured))
    doc = record.to_json(exitstatus=1)
    for text in (json.dumps(doc), rp.render_markdown(doc), render_html(doc, None)):
        assert "\x1b" not in text
    assert doc["tests"][0]["message"].endswith("RuntimeError: CUDA out of memory")


def test_html_opens_with_verdict_overview_and_failing_gates_and_folds_passing_ones():
    doc = sample_report(4)  # pairs 1 fails (k % 3 == 1), pairs 0, 2, 3 pass
    page = render_html(doc, [])
    events = outline(page)
    ids = [attrs.get("id") for _, attrs in events if attrs.get("id")]
    # verdict, then the overview (table of contents), then the failing gates, then the suites
    assert ids[:2] == ["contents", "failing"]
    assert page.index('class="FAILED"') < page.index('id="contents"') < page.index('id="failing"')
    # overview rows: failing pair/family first
    overview = page[page.index('<table class="overview">'):page.index("</table>", page.index('class="overview"'))]
    rows = re.findall(r"<tr><td>([^<]+)<", overview)
    assert rows[:2] == ["resnet18-gm", "resnet18-gm54"] and sorted(rows[2:]) == rows[2:]
    # every overview link has a target
    targets = set(ids)
    assert all(href[1:] in targets for href in re.findall(r'href="(#[^"]+)"', page))
    # a pair whose gates all passed is one folded line; failing gates are never folded
    all_passed = [key for key, gates in fmt.groups(doc["gates"]) if all(g["status"] == "PASS" for g in gates)]
    assert len(all_passed) == 3 * 5 + 1  # 3 passing pairs x 5 suites, and gm54's functional gate
    assert page.count('<details class="passed"') == len(all_passed)
    folded = re.findall(r"<details.*?</details>", page, flags=re.S)
    assert all('class="FAIL"' not in block for block in folded)


@pytest.mark.slow
def test_ten_pair_report_images_fit_the_page(tmp_path):
    pytest.importorskip("matplotlib")
    doc = sample_report(10)
    written = rp.write_rendered(doc, tmp_path)
    page = (tmp_path / "prunecheck.html").read_text()
    images = [attrs for tag, attrs in outline(page) if tag == "img"]
    # one figure per pair for functional similarity and instability: none of them a wide row
    names = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert sum(n.startswith("functional-") for n in names) == 10 and sum(n.startswith("instability-") for n in names) == 10
    assert len(images) == len(names) and tmp_path / "plots" in written
    import base64

    for attrs in images:
        width = png_width(base64.b64decode(attrs["src"].split(",", 1)[1]))
        assert width <= PAGE_WIDTH - 32, (attrs["alt"], width)  # never wider than the page's content
        assert attrs["style"] == f"max-width: {width}px"  # and never blown up past its pixels
    per_pair = [png_width((tmp_path / "plots" / n).read_bytes()) for n in names
                if n.startswith(("functional-", "instability-"))]
    assert max(per_pair) <= WIDE_PX  # a grid cell each, several to a row
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return
    # In a real browser at 1400 and at 800 px: no image wider than the viewport, no sideways scrolling.
    probe = ("<script>window.addEventListener('load', () => { const w = document.documentElement.clientWidth;"
             " const wide = [...document.images].filter(i => i.getBoundingClientRect().width > w).length;"
             " document.body.setAttribute('data-probe', `${wide} ${document.documentElement.scrollWidth} ${w}`);"
             " });</script></body>")
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe))
    for width in (1400, 800):
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
             f"--window-size={width},900", "--dump-dom", (tmp_path / "probe.html").as_uri()],
            capture_output=True, text=True, timeout=120,
        ).stdout
        found = re.search(r'data-probe="(\d+) (\d+) (\d+)"', dom)
        assert found, dom[-500:]
        too_wide, scroll_width, client_width = map(int, found.groups())
        assert too_wide == 0 and scroll_width <= client_width, (width, found.groups())


def test_a_k_run_says_it_is_partial_in_every_report(pytester):
    config = (model_table("parent", "parent.pt") + "\n" + model_table("pruned", "parent.pt")
              + "".join(f'\n[[pairs]]\nname = "{name}"\nparent = "parent"\npruned = "pruned"\ndataset = "colours"\n'
                        for name in ("one", "two"))
              + "\n[gates.class_accuracy]\nmin_class_images = 1\n")  # 2 images per class here
    root = write_planted_project(pytester.path, config=config, datasets={"colours": class_colour_images(20)},
                                 checkpoints={"parent": red_channel_weights()}, suites=(SUITE,))
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "one")
    result.assert_outcomes(passed=4)
    doc = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert doc["session"]["deselected"] == 4 and doc["session"]["selection"] == "-k one"
    note = "partial run: 4 tests deselected (-k one), not every gate ran"
    assert note in (root / "reports" / "prunecheck.md").read_text()
    assert note in (root / "reports" / "prunecheck.html").read_text()
    assert note in result.stdout.str().replace("\n  ", " ")
    full = pytester.runpytest("suites", "-p", "no:cacheprovider")
    full.assert_outcomes(passed=8)
    assert "partial run" not in (root / "reports" / "prunecheck.md").read_text()
