"""The prunecheck command: validate, cache, errors as one line."""

from __future__ import annotations

import textwrap

import pytest

from prunecheck.cli import main
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    config = model_table("parent", "parent.pt") + "\n" + model_table("pruned", "parent.pt") + textwrap.dedent("""
        [[pairs]]
        name = "p1"
        parent = "parent"
        pruned = "pruned"
        dataset = "colours"
        expect_fail = ["corruptions"]
    """)
    write_planted_project(tmp_path, config=config, datasets={"colours": class_colour_images(20)},
                          checkpoints={"parent": red_channel_weights()})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_prints_what_the_config_defines(project, capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert f"config: {project / 'prunecheck.toml'}" in out
    assert "pair p1: parent -> pruned on colours; methods msp; expect_fail corruptions" in out
    assert "gates.accuracy_margin: max_drop=0.005, max_relative_drop=None, mode='point'" in out


def test_invalid_config_is_one_line_and_exit_2(project, capsys):
    toml = project / "prunecheck.toml"
    toml.write_text(toml.read_text().replace('batch_size = 64', 'batch_size = -1'))
    assert main(["validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.batch_size" in err and err.startswith("prunecheck: error:")


def test_cache_info_and_clear(project, capsys):
    cache = project / ".prunecheck-cache" / "predictions"
    cache.mkdir(parents=True)
    (cache / "x.npz").write_bytes(b"0" * 2048)
    assert main(["cache", "info", "--cache-dir", str(project / ".prunecheck-cache")]) == 0
    assert "predictions: 1 files" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(project / ".prunecheck-cache")]) == 0
    assert not (project / ".prunecheck-cache").exists()
