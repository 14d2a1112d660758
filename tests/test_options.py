"""The typed ``[gates.*]`` schema (prunecheck.config.options) as a user meets it through a config file.

Every value that used to load and only surface later as a strange gate result is one
configuration error naming the file and the key (issue: options schema; fail closed).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest

from prunecheck.config import options
from prunecheck.config.loader import load_settings
from prunecheck.core.errors import ConfigError, PrunecheckDeprecationWarning
from prunecheck.testing import minimal_config

MINIMAL = minimal_config()


def load(tmp_path: Path, extra: str):
    path = tmp_path / "prunecheck.toml"
    path.write_text(MINIMAL + "\n" + extra, encoding="utf-8")
    return path, load_settings(path)


def config_error(tmp_path: Path, extra: str) -> tuple[Path, ConfigError]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, extra)
    return tmp_path / "prunecheck.toml", info.value


BAD_VALUES = [
    # (suite, line, key the error names, words the message must contain)
    ("uncertainty", "blur_radii = [1.0]", "blur_radii", ["at least 2", "array [1.0]"]),
    ("uncertainty", "blur_radii = [0.0, 1.0, 1.0]", "blur_radii", ["distinct", "[0.0, 1.0, 1.0]"]),
    ("uncertainty", "blur_radii = [0.0, -1.0]", "blur_radii[1]", [">= 0", "float -1.0"]),
    ("functional", "eps = [-0.1]", "eps[0]", [">= 0", "float -0.1"]),
    ("functional", "eps = []", "eps", ["at least 1", "array []"]),
    ("functional", "repetitions = 0", "repetitions", [">= 1", "integer 0"]),
    ("functional", "max_images = -5", "max_images", [">= 1", "integer -5"]),
    ("functional", "min_agreement = 1.5", "min_agreement", ["<= 1", "float 1.5"]),
    ("functional", "backselect_keep_fraction = 0.0", "backselect_keep_fraction", ["> 0", "float 0.0"]),
    ("corruptions", "severities = [9]", "severities[0]", [">= 1 and <= 5", "integer 9"]),
    ("corruptions", "severities = [0]", "severities[0]", [">= 1 and <= 5", "integer 0"]),
    ("corruptions", 'corruptions = ["fogg"]', "corruptions[0]", ["'fog'", "string 'fogg'", "did you mean 'fog'"]),
    ("corruptions", "corruptions = []\nnoise_levels = [0.0]", "corruptions", ["at least one corruption or a noise level"]),
    ("corruptions", "noise_levels = [-0.1]", "noise_levels[0]", [">= 0", "float -0.1"]),
    ("uncertainty", "mc_passes = 1", "mc_passes", [">= 2", "integer 1"]),
    ("uncertainty", "ece_bins = 0", "ece_bins", [">= 1", "integer 0"]),
    ("uncertainty", "ause_steps = 1", "ause_steps", [">= 2", "integer 1"]),
    ("uncertainty", "min_blur_spearman = 2", "min_blur_spearman", ["<= 1", "integer 2"]),
    # issue 15, point 3: negative thresholds
    ("accuracy_margin", "max_drop = -0.01", "max_drop", [">= 0", "float -0.01"]),
    ("accuracy_margin", "max_drop = 1.5", "max_drop", ["<= 1", "float 1.5"]),
    ("corruptions", "max_drop = -0.01", "max_drop", [">= 0", "float -0.01"]),
    ("corruptions", "delta = -0.005", "delta", [">= 0", "float -0.005"]),
    ("corruptions", "max_excess_error_diff = -1", "max_excess_error_diff", [">= 0", "integer -1"]),
    ("instability", "max_instability = -0.5", "max_instability", [">= 0", "float -0.5"]),
    ("uncertainty", "max_ece_increase = -0.02", "max_ece_increase", [">= 0", "float -0.02"]),
    ("uncertainty", "max_nll_increase = nan", "max_nll_increase", ["a number", "float nan"]),
    ("accuracy_margin", "max_drop = inf", "max_drop", ["<= 1", "float inf"]),
    ("functional", "min_agreement = -inf", "min_agreement", [">= 0", "float -inf"]),
]


@pytest.mark.parametrize(("suite", "line", "key", "words"), BAD_VALUES, ids=[f"{c[0]}-{c[1]}" for c in BAD_VALUES])
def test_bad_value_is_one_config_error_naming_file_and_key(
    tmp_path: Path, suite: str, line: str, key: str, words: list[str]
) -> None:
    path, error = config_error(tmp_path, f"[gates.{suite}]\n{line}\n")
    assert error.source == str(path) and error.key == f"gates.{suite}.{key}"
    message = str(error)
    assert message.startswith(f"{path}, key 'gates.{suite}.{key}': expected ")
    for word in words:
        assert word in message, message
    assert "\n" not in message


@pytest.mark.parametrize("suite", ["instability", "pies"])
def test_mode_is_refused_where_no_mode_is_implemented(tmp_path: Path, suite: str) -> None:
    path, error = config_error(tmp_path, f'[gates.{suite}]\nmode = "confident"\n')
    assert error.key == f"gates.{suite}.mode"
    assert "not implemented" in str(error) and "'accuracy_margin', 'class_accuracy', 'uncertainty'" in str(error)


@pytest.mark.parametrize("suite", options.MODE_SUITES)
def test_mode_is_accepted_where_implemented(tmp_path: Path, suite: str) -> None:
    _, settings = load(tmp_path, f'[gates.{suite}]\nmode = "lenient"\n')
    assert settings.gates[suite].mode == "lenient"


def test_mode_suites_are_exactly_the_classes_with_a_mode_option() -> None:
    with_mode = {name for name, cls in options.SUITES.items() if "mode" in cls._names()}
    assert with_mode == set(options.MODE_SUITES)


def test_boundary_values_load(tmp_path: Path) -> None:
    _, s = load(tmp_path, """
[gates.accuracy_margin]
max_drop = 0
[gates.uncertainty]
blur_radii = [0, 2]
mc_passes = 2
ece_bins = 1
[gates.corruptions]
severities = [1, 5]
corruptions = []
noise_levels = [0.1]
[gates.functional]
eps = [0]
repetitions = 1
max_images = 1
[gates.instability]
max_instability = 1
""")
    assert s.gates["accuracy_margin"].max_drop == 0.0
    assert s.gates["uncertainty"].blur_radii == (0.0, 2.0)
    assert s.gates["corruptions"].severities == (1, 5) and s.gates["corruptions"].corruptions == ()
    assert s.gates["functional"].eps == (0.0,) and s.gates["instability"].max_instability == 1.0
    _, s = load(tmp_path, "[gates.uncertainty]\nmax_nll_increase = inf\n")  # no upper bound: inf switches it off
    assert s.gates["uncertainty"].max_nll_increase == float("inf")


def test_options_are_typed_frozen_and_readable_as_a_mapping(tmp_path: Path) -> None:
    _, s = load(tmp_path, "[gates.functional]\neps = [0, 0.5]\n")
    functional = s.gates["functional"]
    assert isinstance(functional, options.FunctionalOptions)
    assert functional.eps == functional["eps"] == (0.0, 0.5)
    assert functional.get("missing", "fallback") == "fallback"
    assert functional.as_dict()["eps"] == [0.0, 0.5]
    with pytest.raises(dataclasses.FrozenInstanceError):
        functional.eps = (1.0,)  # type: ignore[misc]


def test_every_default_satisfies_its_own_schema() -> None:
    for name, cls in options.SUITES.items():
        defaults = cls().as_dict()
        assert cls.from_table(defaults) == cls(), name


# -- the corruption backend is an engine setting ----------------------------------------
def test_backend_under_run(tmp_path: Path) -> None:
    _, s = load(tmp_path, "")
    assert s.run.corruption_backend == "imagecorruptions"
    text = MINIMAL.replace("[datasets.c]", '[run]\ncorruption_backend = "torch"\n\n[datasets.c]')
    path = tmp_path / "prunecheck.toml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path).run.corruption_backend == "torch"


def test_backend_at_its_old_place_still_works_with_a_deprecation_warning(tmp_path: Path) -> None:
    with pytest.warns(PrunecheckDeprecationWarning) as caught:
        path, s = load(tmp_path, '[gates.corruptions]\nbackend = "torch"\n')
    assert s.run.corruption_backend == "torch"
    assert "backend" not in s.gates["corruptions"]
    (warning,) = caught
    text = str(warning.message)
    assert str(path) in text and "gates.corruptions.backend" in text and "corruption_backend" in text


def test_backend_given_twice_differently_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "prunecheck.toml"
    path.write_text(
        MINIMAL.replace("[datasets.c]", '[run]\ncorruption_backend = "imagecorruptions"\n\n[datasets.c]')
        + '\n[gates.corruptions]\nbackend = "torch"\n',
        encoding="utf-8",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrunecheckDeprecationWarning)
        with pytest.raises(ConfigError) as info:
            load_settings(path)
    assert info.value.key == "gates.corruptions.backend" and "once" in str(info.value)


def test_bad_backend_names_the_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("[datasets.c]", '[run]\ncorruption_backend = "cuda"\n\n[datasets.c]')
    path = tmp_path / "prunecheck.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == "run.corruption_backend" and "'imagecorruptions', 'torch'" in str(info.value)


def test_docs_list_every_option() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for suite, cls in options.SUITES.items():
        for name in cls._names():
            assert f"| `{suite}` | `{name}` |" in docs, f"docs/configuration.md: gates.{suite}.{name}"
