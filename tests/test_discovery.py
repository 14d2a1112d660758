"""A newcomer's first run: the config is found where pytest looks, collection builds
and predicts nothing, and a config whose files are missing says so once, completely."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunecheck.cli import main as cli_main
from prunecheck.config.loader import discover_config
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"
PAIR = '\n[[pairs]]\nname = "colour-pair"\nparent = "parent"\npruned = "pruned"\ndataset = "colours"\n'


def write_project(root: Path, *, pruned_weights: str = "parent.pt", factory: str = "RedChannelNet") -> Path:
    config = model_table("parent", "parent.pt") + "\n" + model_table("pruned", pruned_weights, factory) + PAIR
    root.mkdir(parents=True, exist_ok=True)
    return write_planted_project(root, config=config, datasets={"colours": class_colour_images(20)},
                                 checkpoints={"parent": red_channel_weights()}, suites=(SUITE,))


def test_discovery_order_rootdir_first_then_collected_paths_upwards(tmp_path):
    (tmp_path / "proj" / "suites").mkdir(parents=True)
    (tmp_path / "proj" / "prunecheck.toml").write_text("")
    assert discover_config(tmp_path, [tmp_path / "proj" / "suites"]) == tmp_path / "proj" / "prunecheck.toml"
    assert discover_config(tmp_path, [tmp_path / "proj" / "suites" / "test_x.py"]) == \
        tmp_path / "proj" / "prunecheck.toml"
    # pyproject without a [tool.prunecheck] table does not count; with one it does, and the rootdir wins
    (tmp_path / "pyproject.toml").write_text("[tool.black]\n")
    assert discover_config(tmp_path, [tmp_path / "proj"]) == tmp_path / "proj" / "prunecheck.toml"
    (tmp_path / "pyproject.toml").write_text("[tool.prunecheck.run]\nseed = 1\n")
    assert discover_config(tmp_path, [tmp_path / "proj"]) == tmp_path / "pyproject.toml"
    # in one folder prunecheck.toml comes before pyproject.toml
    (tmp_path / "proj" / "pyproject.toml").write_text("[tool.prunecheck]\n")
    assert discover_config(tmp_path / "proj", []) == tmp_path / "proj" / "prunecheck.toml"


def test_config_in_a_subfolder_is_found_from_the_parent_folder(pytester):
    proj = write_project(pytester.path / "proj")
    result = pytester.runpytest("proj/suites", "-p", "no:cacheprovider", "--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"prunecheck: config {proj / 'prunecheck.toml'}",
                                 "*test_accuracy_margin*colour-pair*"])
    assert "built-in demo" not in result.stdout.str()
    # collection predicted nothing, wrote nothing
    assert not (proj / ".prunecheck-cache").exists() and not (proj / "reports").exists()
    assert not (pytester.path / ".prunecheck-cache").exists()


def test_collect_only_without_config_builds_no_zoo_and_no_cache(pytester):
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / SUITE.name).write_text(SUITE.read_text())
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "--collect-only")
    assert result.ret == 0
    out = result.stdout.str()
    # the demo's test ids come from the shipped manifest: listed, nothing unpacked or predicted
    assert "<Function test_accuracy_margin[wt50]>" in out and "tests collected" in out
    assert "demo zoo: unpacking" not in out and "predicting" not in out
    assert not (pytester.path / ".prunecheck-cache").exists()


def test_validate_without_config_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["validate"]) == 0
    assert "runs the built-in demo" in capsys.readouterr().out
    assert not (tmp_path / ".prunecheck-cache").exists()


def test_validate_deep_on_the_init_template_lists_every_missing_file_and_import(tmp_path, monkeypatch, capsys):
    assert cli_main(["init", str(tmp_path)]) == 0
    template = (tmp_path / "prunecheck.toml").read_text()
    assert template.count("<-- REPLACE") >= 6  # placeholders are marked
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # no models.py here: the import must fail
    assert cli_main(["validate", "--deep"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'prunecheck.toml'}: 7 problems found by the deep check:"
    expected = {
        f"datasets.cifar10.root: folder not found: {tmp_path / 'data'}",
        *(f"models.{m}.weights: file not found: {tmp_path / 'checkpoints' / (m + '.pt')}"
          for m in ("parent", "wt80", "wt90")),
    }
    assert expected <= {line.strip() for line in lines[1:]}
    imports = [line for line in lines if ".factory: cannot import module 'models'" in line]
    assert len(imports) == 3
    assert "Traceback" not in err and "During handling" not in err


def test_validate_deep_passes_on_a_complete_project_and_checks_output_width(tmp_path, monkeypatch, capsys):
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["validate", "--deep"]) == 0
    assert "deep check OK" in capsys.readouterr().out
    # a model whose head has 5 classes on a 10-class dataset
    toml = tmp_path / "prunecheck.toml"
    torch.save(red_channel_weights(num_classes=5), tmp_path / "five.pt")
    toml.write_text(toml.read_text().replace('weights = "parent.pt"\n\n[[pairs]]',
                                             'weights = "five.pt"\nkwargs = { num_classes = 5 }\n\n[[pairs]]'))
    assert cli_main(["validate", "--deep"]) == 1
    assert "models.pruned: model 'pruned' outputs 5 classes but dataset 'colours' has 10" in capsys.readouterr().err


def test_session_start_check_reports_all_problems_once_before_any_test(pytester):
    write_project(pytester.path, pruned_weights="missing.pt", factory="NoSuchNet")
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "2 problems found by the deep check" in err
    assert "models.pruned.factory: module 'prunecheck.testing' has no attribute 'NoSuchNet'" in err
    assert f"models.pruned.weights: file not found: {pytester.path / 'missing.pt'}" in err
    assert "During handling" not in result.stdout.str() + err
    assert "no tests ran" in result.stdout.str()  # stopped before the first test (the reports say why)
