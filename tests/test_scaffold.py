"""`prunecheck init`: the scaffolded config loads, suites are the shipped copies, nothing is overwritten."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prunecheck.cli import main as cli_main
from prunecheck.config.loader import load_settings
from prunecheck.config.options import SUITES
from prunecheck.core.errors import PrunecheckError
from prunecheck.scaffold import CONFIG_TEMPLATE, scaffold, suite_templates

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_shipped_suites_are_identical_to_the_top_level_suites():
    top = {p.name: p.read_text(encoding="utf-8") for p in sorted((REPO / "suites").glob("test_*.py"))}
    shipped = suite_templates()
    assert sorted(shipped) == sorted(top), "run: cp suites/test_*.py prunecheck/suites_template/"
    for name, text in top.items():
        assert shipped[name] == text, f"prunecheck/suites_template/{name} differs from suites/{name}: " \
                                      "run: cp suites/test_*.py prunecheck/suites_template/"


def test_scaffold_writes_a_config_that_loads_and_the_suites(tmp_path):
    written = scaffold(tmp_path / "proj")
    names = sorted(p.relative_to(tmp_path / "proj").as_posix() for p in written)
    assert names == ["prunecheck.toml", *sorted(f"suites/{n}" for n in suite_templates())]
    settings = load_settings(tmp_path / "proj" / "prunecheck.toml")
    assert settings.datasets["cifar10"].kind == "cifar10"
    assert [p.name for p in settings.pairs] == ["wt80"] and settings.families[0].deployed == "wt80"
    assert settings.run.report_dir == (tmp_path / "proj" / "reports").resolve()
    # the template says "defaults shown": every threshold it sets is the default
    raw = tomllib.loads(CONFIG_TEMPLATE)
    for suite, values in raw["gates"].items():
        for key, value in values.items():
            assert value == SUITES[suite]().as_dict()[key], f"gates.{suite}.{key}"
    for name in suite_templates():
        assert (tmp_path / "proj" / "suites" / name).read_text() == (REPO / "suites" / name).read_text()
    # the commented-out suites line names a suite file the scaffold writes, and loads when uncommented
    config = tmp_path / "proj" / "prunecheck.toml"
    config.write_text(config.read_text().replace('# suites = ["test_accuracy_margin.py"]', 'suites = ["test_accuracy_margin.py"]'))
    (suites,) = {pair.suites for pair in load_settings(config).pairs}
    assert suites == ("test_accuracy_margin.py",) and set(suites) <= set(suite_templates())


def test_scaffold_refuses_to_overwrite_unless_forced(tmp_path):
    (tmp_path / "prunecheck.toml").write_text("# mine\n")
    with pytest.raises(PrunecheckError, match=r"not overwriting existing files: .*prunecheck.toml.*--force"):
        scaffold(tmp_path)
    assert (tmp_path / "prunecheck.toml").read_text() == "# mine\n"
    assert not (tmp_path / "suites").exists()  # nothing written at all
    scaffold(tmp_path, force=True)
    assert (tmp_path / "prunecheck.toml").read_text() == CONFIG_TEMPLATE


def test_cli_init(tmp_path, capsys):
    assert cli_main(["init", str(tmp_path / "p")]) == 0
    assert f"wrote {tmp_path / 'p' / 'prunecheck.toml'}" in capsys.readouterr().out
    assert cli_main(["init", str(tmp_path / "p")]) == 2
    assert "use --force" in capsys.readouterr().err
    assert cli_main(["init", str(tmp_path / "p"), "--force"]) == 0


def test_a_built_wheel_ships_the_suites(tmp_path):
    """A normal (non-editable) install gets the suites: they are in the wheel."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(REPO / "prunecheck", src / "prunecheck", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "dist")], check=False, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("prunecheck-*.whl")
    listed = set(zipfile.ZipFile(wheel).namelist())
    for name in suite_templates():
        assert f"prunecheck/suites_template/{name}" in listed
