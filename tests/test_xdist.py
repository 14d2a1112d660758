"""pytest-xdist: loadgroup by default, one worker per pair, every prediction made once across workers."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"

# Written into the project: each worker records what it computed and ran.
RECORDER = textwrap.dedent('''
    import json, os
    import pytest

    STATE = {"workspace": None, "tests": []}

    @pytest.fixture(autouse=True)
    def _grab_workspace(request):
        if "pair" in request.fixturenames:
            STATE["workspace"] = request.getfixturevalue("prunecheck_workspace")
        yield

    def pytest_runtest_setup(item):
        STATE["tests"].append(item.nodeid)

    def pytest_sessionfinish(session):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        ws = STATE["workspace"]
        record = {
            "loadgroup": bool(getattr(session.config.option, "loadgroup", False)),
            "computed": ws.engine.computed if ws else [],
            "tests": STATE["tests"],
        }
        (session.config.rootpath / f"record-{worker}.json").write_text(json.dumps(record))
''')


def write_project(pytester: pytest.Pytester) -> Path:
    """Three pairs sharing one parent: the parent is needed on every worker."""
    weights = red_channel_weights()
    checkpoints = {"parent": weights}
    for k, drop in enumerate((1, 2, 3)):
        pruned = {name: value.clone() for name, value in weights.items()}
        pruned["fc.weight"][-drop:] = 0
        pruned["fc.bias"][-drop:] = 0
        checkpoints[f"pruned{k}"] = pruned
    config = model_table("parent", "parent.pt") + "".join(
        "\n" + model_table(f"pruned{k}", f"pruned{k}.pt") for k in range(3)
    ) + "".join(
        textwrap.dedent(f"""
            [[pairs]]
            name = "pair{k}"
            parent = "parent"
            pruned = "pruned{k}"
            dataset = "colours"
            expect_fail = ["accuracy_margin", "class_accuracy"]
        """)
        for k in range(3)
    )
    root = write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(500)},
        checkpoints=checkpoints, suites=(SUITE,),
    )
    (root / "conftest.py").write_text(RECORDER)
    return root


def records(root: Path) -> dict[str, dict]:
    return {p.stem.removeprefix("record-"): json.loads(p.read_text()) for p in root.glob("record-gw*.json")}


def test_two_workers_predict_each_model_once_and_keep_pairs_together(pytester):
    root = write_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6, xfailed=6)  # efficiency + PIEs pass; margin + per-class xfail
    per_worker = records(root)
    assert set(per_worker) == {"gw0", "gw1"}
    assert all(r["loadgroup"] for r in per_worker.values())  # --dist loadgroup, chosen for the user
    computed = [key for r in per_worker.values() for key in r["computed"]]
    counts = Counter(computed)
    assert all(n == 1 for n in counts.values()), counts  # no (model, view) computed twice
    assert len(counts) == 4  # parent + three pruned models on the nominal view
    entries = list((root / ".prunecheck-cache" / "predictions").rglob("*.npz"))
    assert len(entries) == 4
    # each pair's tests ran on one worker
    owner: dict[str, set[str]] = {}
    for worker, record in per_worker.items():
        for nodeid in record["tests"]:
            pair = nodeid.split("[")[1].split("]")[0]
            owner.setdefault(pair, set()).add(worker)
    assert set(owner) == {"pair0", "pair1", "pair2"} and all(len(w) == 1 for w in owner.values())


def test_an_explicit_dist_choice_is_kept(pytester):
    root = write_project(pytester)
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-n", "2", "--dist", "load")
    result.assert_outcomes(passed=6, xfailed=6)  # efficiency + PIEs pass; margin + per-class xfail
    assert not any(r["loadgroup"] for r in records(root).values())
    computed = Counter(key for r in records(root).values() for key in r["computed"])
    assert all(n == 1 for n in computed.values()), computed  # the file locks alone still prevent repeats


@pytest.mark.parametrize(
    "nodeid, names, group",
    [
        ("suites/t.py::test_a[demo-wt-gaussian_noise-1]", ("demo-wt", "demo"), "demo-wt"),
        ("suites/t.py::test_a[demo-gaussian_noise-1]", ("demo-wt", "demo"), "demo"),
        ("suites/t.py::test_a[wt92.5]", (), "wt92.5"),
        ("suites/t.py::test_a[wt90-contrast-1]", (), "wt90"),
        ("suites/t.py::test_a[x]@mine", (), "mine"),
        ("tests/t.py::test_plain", (), "tests/t.py::test_plain"),
    ],
)
def test_group_of(nodeid, names, group):
    from prunecheck.plugin import group_of

    assert group_of(nodeid, names) == group
