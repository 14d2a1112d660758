"""Tests for prunecheck.config.loader: discovery, a full round trip, defaults and every error class.

Error cases edit one line of a complete, valid TOML file (``FULL``) and load it
from disk, so each asserts on what a user would actually see: the file name, the
key path, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from prunecheck.config import options
from prunecheck.config.loader import find_config, load_settings, parse_settings
from prunecheck.config.options import GateMode, SuiteOptions, option
from prunecheck.config.settings import DatasetSpec, FamilyMember, ModelSpec, PairSpec, RunSettings
from prunecheck.core.errors import ConfigError
from prunecheck.testing import minimal_config

FULL = """\
[run]
device = "cuda:1"
batch_size = 128
cache_dir = "cache"
report_dir = "~/prunecheck-reports"
seed = 7
limit = 500
num_workers = 2
bootstrap_resamples = 200

[datasets.cifar]
kind = "cifar10"
root = "data/cifar"
download = true
corruptions_root = "/abs/CIFAR-10-C"

[datasets.svhn]
kind = "imagefolder"
root = "data/svhn"
split = "test"
resize = 36
crop = 32
mean = [0.5, 0.5, 1]
std = [0.25, 0.25, 0.25]

[datasets.svhn.options]
extensions = [".png"]

[models.parent]
factory = "mypkg.nets:resnet20"
kwargs = { num_classes = 10, width = 16 }
weights = "weights/parent.pt"

[models.wt80]
factory = "mypkg.nets:Builder.resnet20"
weights = "weights/wt80.pt"
input_shape = [3, 32, 32]

[models.wt80_pre]
format = "torchscript"
weights = "weights/wt80_pre.ts"

[models.ref]
format = "pickle"
weights = "weights/ref.pkl"
trust = true

[models.ens_parent]
members = ["parent", "ref"]
ensemble_average = "logits"

[models.ens_pruned]
members = ["wt80", "wt80_pre"]

[[pairs]]
parent = "parent"
pruned = "wt80"
dataset = "cifar"
reference = "ref"
ood_dataset = "svhn"
methods = ["mc_dropout"]
pre_finetune = "wt80_pre"
schedule = ["wt80_pre", "wt80"]
mask_mode = "channels"

[[pairs]]
name = "ens-pair.v1"
parent = "ens_parent"
pruned = "ens_pruned"
dataset = "cifar"
methods = ["ensemble", "msp", "ensemble"]

[[families]]
name = "resnet-family"
parent = "parent"
dataset = "cifar"
members = ["wt80_pre", { model = "wt80", ratio = 0.8 }]
deployed = "wt80"

[gates.accuracy_margin]
max_drop = 0.01
mode = "confident"
"""

MINIMAL = minimal_config("cifar100", "c100")


def write(directory: Path, text: str, name: str = "prunecheck.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, base: str = FULL) -> str:
    """``base`` with one exact snippet replaced (fails loudly if the snippet is gone)."""
    assert base.count(old) == 1, f"test setup: {old!r} must occur exactly once"
    return base.replace(old, new)


# --------------------------------------------------------------------------- round trip


def test_full_config_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    s = load_settings(path)
    assert s.source == str(path)
    assert not s.is_demo
    assert s.run == RunSettings(
        device="cuda:1",
        batch_size=128,
        cache_dir=tmp_path / "cache",
        report_dir=Path.home() / "prunecheck-reports",
        seed=7,
        limit=500,
        num_workers=2,
        bootstrap_resamples=200,
    )
    assert list(s.datasets) == ["cifar", "svhn"]
    assert s.datasets["cifar"] == DatasetSpec(
        name="cifar",
        kind="cifar10",
        root=tmp_path / "data" / "cifar",
        split="test",
        download=True,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        corruptions_root=Path("/abs/CIFAR-10-C"),
    )
    svhn = s.datasets["svhn"]
    assert svhn.root == tmp_path / "data/svhn"
    assert (svhn.split, svhn.resize, svhn.crop, svhn.download) == ("test", 36, 32, False)
    assert svhn.mean == (0.5, 0.5, 1.0) and all(type(x) is float for x in svhn.mean)
    assert svhn.std == (0.25, 0.25, 0.25)
    assert svhn.options == {"extensions": [".png"]}

    assert s.models["parent"] == ModelSpec(
        name="parent",
        factory="mypkg.nets:resnet20",
        kwargs={"num_classes": 10, "width": 16},
        weights=tmp_path / "weights/parent.pt",
    )
    assert s.models["wt80"].factory == "mypkg.nets:Builder.resnet20"
    assert s.models["wt80"].input_shape == (3, 32, 32)
    assert s.models["wt80_pre"] == ModelSpec(
        name="wt80_pre", format="torchscript", weights=tmp_path / "weights/wt80_pre.ts"
    )
    assert s.models["ref"].format == "pickle" and s.models["ref"].trust is True
    assert s.models["ens_parent"] == ModelSpec(
        name="ens_parent", members=("parent", "ref"), ensemble_average="logits"
    )
    assert s.models["ens_pruned"].members == ("wt80", "wt80_pre")
    assert s.models["ens_pruned"].ensemble_average == "probs"

    assert s.pairs == (
        PairSpec(
            name="wt80",  # defaults to the pruned model's name
            parent="parent",
            pruned="wt80",
            dataset="cifar",
            reference="ref",
            ood_dataset="svhn",
            methods=("msp", "mc_dropout"),  # msp always included, first
            pre_finetune="wt80_pre",
            schedule=("wt80_pre", "wt80"),
            mask_mode="channels",
        ),
        PairSpec(
            name="ens-pair.v1",
            parent="ens_parent",
            pruned="ens_pruned",
            dataset="cifar",
            methods=("msp", "ensemble"),  # duplicates dropped
        ),
    )
    (family,) = s.families
    assert family.name == "resnet-family" and family.parent == "parent"
    assert family.members == (FamilyMember("wt80_pre", None), FamilyMember("wt80", 0.8))
    assert family.deployed == "wt80"
    assert s.gates["accuracy_margin"] == {"max_drop": 0.01, "max_relative_drop": None, "mode": "confident"}


def test_defaults_filled(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL))
    base = RunSettings()
    assert s.run.device == "auto" and s.run.batch_size == base.batch_size
    assert s.run.limit is None and s.run.seed == 0
    assert s.run.cache_dir == tmp_path / ".prunecheck-cache"
    assert s.run.report_dir == tmp_path / "reports"
    c = s.datasets["c"]
    assert (c.mean, c.std) == ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    assert (c.split, c.resize, c.crop, c.download, c.options) == ("test", None, None, False, {})
    assert s.models["p"].format == "state_dict" and s.models["p"].kwargs == {}
    assert s.pairs[0].name == "q" and s.pairs[0].methods == ("msp",)
    assert s.pairs[0].mask_mode == "unstructured" and s.pairs[0].schedule == ()
    assert s.families == ()
    assert s.gates == {suite: cls() for suite, cls in options.SUITES.items()}  # all defaults
    assert s.gates["accuracy_margin"] == {"max_drop": 0.005, "max_relative_drop": None, "mode": "point"}  # SPEC 4.1
    assert s.pairs[0].expect_fail == ()


def test_imagenet_and_imagefolder_defaults() -> None:
    data = {
        "datasets": {
            "inet": {"kind": "imagenet-val", "root": "/data/val"},
            "folder": {"kind": "imagefolder", "root": "imgs"},
            "demo": {"kind": "demo"},
        },
        "models": {"p": {"factory": "m:f", "weights": "p"}, "q": {"factory": "m:f", "weights": "q"}},
        "pairs": [{"parent": "p", "pruned": "q", "dataset": "inet"}],
    }
    s = parse_settings(data, source="<test>", base_dir=Path("/proj"))
    inet, folder, demo = s.datasets["inet"], s.datasets["folder"], s.datasets["demo"]
    assert (inet.resize, inet.crop, inet.split) == (256, 224, "test")
    assert inet.mean == (0.485, 0.456, 0.406) and inet.std == (0.229, 0.224, 0.225)
    assert folder.mean == (0.485, 0.456, 0.406) and folder.root == Path("/proj/imgs")
    assert (folder.resize, folder.crop, folder.split) == (None, None, "test")
    assert demo.root is None


def test_parse_settings_accepts_python_values() -> None:
    """The demo builds its settings in Python: tuples and Path objects are fine."""
    data = {
        "datasets": {"d": {"kind": "demo", "mean": (0.1, 0.2, 0.3)}},
        "models": {
            "p": {"factory": "m:f", "weights": Path("abs/p.pt")},
            "q": {"factory": "m:f", "weights": Path("/x/q.pt")},
        },
        "pairs": ({"parent": "p", "pruned": "q", "dataset": "d"},),
    }
    s = parse_settings(data, source="<built-in demo>", base_dir=Path("/cache"))
    assert s.models["p"].weights == Path("/cache/abs/p.pt")
    assert s.models["q"].weights == Path("/x/q.pt")
    assert s.datasets["d"].mean == (0.1, 0.2, 0.3)


def test_gates_contain_every_suite_and_are_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclass(frozen=True, eq=False)
    class LaterOptions(SuiteOptions):
        levels: tuple[float, ...] = option((0.0, 0.1))
        repeats: int = option(3, at_least=1)

    monkeypatch.setitem(options.SUITES, "later_suite", LaterOptions)
    s = load_settings(write(tmp_path, MINIMAL))
    assert s.gates["later_suite"] == {"levels": (0.0, 0.1), "repeats": 3}
    assert s.gates["later_suite"].repeats == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gates["later_suite"].repeats = 4  # type: ignore[misc]


@dataclass(frozen=True, eq=False)
class ExtraOptions(SuiteOptions):
    """A suite declaring one option of every kind the schema supports."""

    mode: GateMode = option("point")
    flag: bool = option(True)
    count: int = option(5)
    ratio: float = option(0.5)
    policy: Literal["mean", "min"] = option("mean")
    levels: tuple[float, ...] = option((0.0, 0.1, 0.2))
    severities: tuple[int, ...] = option((3,))
    corruptions: tuple[str, ...] = option(("fog", "snow"), choices=("fog", "snow", "frost"))


@pytest.fixture
def extra_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(options.SUITES, "extra", ExtraOptions)
    monkeypatch.setattr(options, "MODE_SUITES", (*options.MODE_SUITES, "extra"))


def test_gate_values_merge_and_convert(tmp_path: Path, extra_suite: None) -> None:
    text = MINIMAL + """
[gates.extra]
flag = false
count = 9
ratio = 1
mode = "lenient"
policy = "min"
levels = [0, 0.25]
severities = [1, 5]
corruptions = ["frost"]
"""
    s = load_settings(write(tmp_path, text))
    got = s.gates["extra"]
    assert got == {
        "flag": False, "count": 9, "ratio": 1.0, "mode": "lenient", "policy": "min",
        "levels": (0.0, 0.25), "severities": (1, 5), "corruptions": ("frost",),
    }
    assert type(got["ratio"]) is float and all(type(x) is float for x in got.levels)
    assert s.gates["accuracy_margin"] == {"max_drop": 0.005, "max_relative_drop": None, "mode": "point"}


@pytest.mark.parametrize(
    ("line", "key", "expected", "found"),
    [
        ("flag = 1", "flag", "boolean", "integer 1"),
        ("count = 2.0", "count", "integer", "float 2.0"),
        ("count = true", "count", "integer", "boolean true"),
        ("ratio = true", "ratio", "number", "boolean true"),
        ("ratio = nan", "ratio", "number", "float nan"),
        ('ratio = "0.1"', "ratio", "number", "string '0.1'"),
        ('mode = "strict"', "mode", "'point', 'confident', 'lenient'", "string 'strict'"),
        ('policy = "max"', "policy", "'mean', 'min'", "string 'max'"),
        ("levels = 0.1", "levels", "array", "float 0.1"),
        ('levels = [0.1, "x"]', "levels[1]", "number", "string 'x'"),
        ("severities = [1.5]", "severities[0]", "integer", "float 1.5"),
        ('corruptions = ["fog", "rain"]', "corruptions[1]", "'fog', 'snow', 'frost'", "string 'rain'"),
    ],
)
def test_gate_type_errors(
    tmp_path: Path, extra_suite: None, line: str, key: str, expected: str, found: str
) -> None:
    path = write(tmp_path, MINIMAL + "\n[gates.extra]\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert info.value.key == f"gates.extra.{key}"
    assert str(path) in message and f"key 'gates.extra.{key}'" in message
    assert expected in message and found in message


def _accepts(proto: object, value: object) -> bool:
    """Independent statement of the gate type rules."""
    if isinstance(proto, bool):
        return isinstance(value, bool)
    if isinstance(proto, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(proto, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and not (isinstance(value, float) and math.isnan(value))
    return isinstance(value, str)


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)


@dataclass(frozen=True, eq=False)
class BoolOptions(SuiteOptions):
    key: bool = option(True)


@dataclass(frozen=True, eq=False)
class IntOptions(SuiteOptions):
    key: int = option(3)


@dataclass(frozen=True, eq=False)
class FloatOptions(SuiteOptions):
    key: float = option(0.5)


@dataclass(frozen=True, eq=False)
class StrOptions(SuiteOptions):
    key: str = option("text")


@hsettings(max_examples=150, deadline=None)
@given(cls=st.sampled_from([BoolOptions, IntOptions, FloatOptions, StrOptions]), value=toml_scalars)
def test_gate_scalar_rules_property(cls: type[SuiteOptions], value: object) -> None:
    proto = cls().key  # type: ignore[attr-defined]
    data = {
        "datasets": {"d": {"kind": "demo"}},
        "models": {"p": {"factory": "m:f", "weights": "p"}, "q": {"factory": "m:f", "weights": "q"}},
        "pairs": [{"parent": "p", "pruned": "q", "dataset": "d"}],
        "gates": {"suite": {"key": value}},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(options.SUITES, "suite", cls)
        if _accepts(proto, value):
            got = parse_settings(data, source="s.toml", base_dir=Path("/"))
            expected = float(value) if isinstance(proto, float) else value  # type: ignore[arg-type]
            assert got.gates["suite"]["key"] == expected
            assert type(got.gates["suite"]["key"]) is type(proto)
        else:
            with pytest.raises(ConfigError) as info:
                parse_settings(data, source="s.toml", base_dir=Path("/"))
            assert info.value.key == "gates.suite.key"


# --------------------------------------------------------------------------- errors

# (case id, old snippet of FULL, replacement, key path, texts the message must contain)
ERROR_CASES = [
    ("unknown-top-level", "[run]\n", "[extras]\nx = 1\n\n[run]\n", "extras", ["unknown key 'extras'", "'run'", "'gates'"]),
    ("device", 'device = "cuda:1"', 'device = "gpu"', "run.device", ["'cuda:N'", "string 'gpu'"]),
    ("batch-size-zero", "batch_size = 128", "batch_size = 0", "run.batch_size", ["positive integer", "integer 0"]),
    ("seed-string", "seed = 7", 'seed = "7"', "run.seed", ["integer", "string '7'"]),
    ("limit-float", "limit = 500", "limit = 1.5", "run.limit", ["integer", "float 1.5"]),
    ("workers-negative", "num_workers = 2", "num_workers = -1", "run.num_workers", ["integer >= 0", "integer -1"]),
    ("resamples-bool", "bootstrap_resamples = 200", "bootstrap_resamples = true", "run.bootstrap_resamples", ["integer", "boolean true"]),
    ("run-typo", "batch_size = 128", "bacth_size = 128", "run.bacth_size", ["unknown key 'bacth_size'", "did you mean 'batch_size'"]),
    ("run-not-table", "[run]\n", "run = 3\n[datasets.unused]\n", "run", ["expected a table", "integer 3"]),
    ("cache-empty", 'cache_dir = "cache"', 'cache_dir = ""', "run.cache_dir", ["non-empty path", "string ''"]),
    ("dataset-kind", 'kind = "cifar10"', 'kind = "cifar11"', "datasets.cifar.kind", ["'cifar10', 'cifar100'", "string 'cifar11'"]),
    ("dataset-no-kind", 'kind = "cifar10"\n', "", "datasets.cifar.kind", ["missing required key", "'imagenet-val'"]),
    ("dataset-no-root", 'root = "data/svhn"\n', "", "datasets.svhn.root", ["missing required key", "'demo'"]),
    ("dataset-mean-len", "mean = [0.5, 0.5, 1]", "mean = [0.5, 0.5]", "datasets.svhn.mean", ["3 elements", "found 2"]),
    ("dataset-mean-type", "mean = [0.5, 0.5, 1]", 'mean = [0.5, "a", 1]', "datasets.svhn.mean[1]", ["number", "string 'a'"]),
    ("dataset-std-zero", "std = [0.25, 0.25, 0.25]", "std = [0.25, 0, 0.25]", "datasets.svhn.std[1]", ["number > 0", "integer 0"]),
    ("dataset-unknown-key", "resize = 36", "resize = 36\ntransform = 1", "datasets.svhn.transform", ["unknown key 'transform'", "[datasets.svhn.options]"]),
    ("dataset-cifar-split", "download = true", 'download = true\nsplit = "val"', "datasets.cifar.split", ["'train', 'test'", "string 'val'"]),
    ("dataset-crop", "crop = 32", "crop = 40", "datasets.svhn.crop", ["no larger than resize (36)", "integer 40"]),
    ("dataset-download", "download = true", 'download = "yes"', "datasets.cifar.download", ["boolean", "string 'yes'"]),
    ("dataset-options", 'root = "data/cifar"', 'root = "data/cifar"\noptions = 5', "datasets.cifar.options", ["table", "integer 5"]),
    ("dataset-bad-name", "[datasets.svhn]\n", '[datasets."sv hn"]\n', "datasets.sv hn", ["letters, digits", "string 'sv hn'"]),
    ("model-format", 'format = "torchscript"', 'format = "keras"', "models.wt80_pre.format", ["'state_dict', 'torchscript', 'pickle', 'safetensors'", "string 'keras'"]),
    ("factory-no-colon", '"mypkg.nets:resnet20"\nkwargs', '"mypkg.nets.resnet20"\nkwargs', "models.parent.factory", ["'package.module:callable'", "string 'mypkg.nets.resnet20'"]),
    ("factory-two-colons", '"mypkg.nets:resnet20"\nkwargs', '"a:b:c"\nkwargs', "models.parent.factory", ["exactly one ':'", "string 'a:b:c'"]),
    ("factory-not-identifier", '"mypkg.nets:resnet20"\nkwargs', '"my-pkg.nets:resnet20"\nkwargs', "models.parent.factory", ["dotted identifiers", "'my-pkg.nets:resnet20'"]),
    ("factory-empty-part", '"mypkg.nets:resnet20"\nkwargs', '"mypkg..nets:f"\nkwargs', "models.parent.factory", ["dotted identifiers", "'mypkg..nets:f'"]),
    ("pickle-untrusted", "trust = true", "trust = false", "models.ref.trust", ["trust = true", "boolean false", "arbitrary code", "[models.ref]"]),
    ("pickle-no-trust-key", "trust = true\n", "", "models.ref.trust", ["trust = true", "no trust key", "arbitrary code"]),
    ("state-dict-no-weights", 'weights = "weights/parent.pt"\n', "", "models.parent.weights", ["missing required key", "'factory' and 'weights'"]),
    ("state-dict-no-factory", 'factory = "mypkg.nets:resnet20"\nkwargs', "kwargs", "models.parent.factory", ["missing required key", "'package.module:callable'"]),
    ("torchscript-no-weights", 'weights = "weights/wt80_pre.ts"\n', "", "models.wt80_pre.weights", ["missing required key", "format 'torchscript' needs 'weights'"]),
    ("torchscript-with-factory", 'format = "torchscript"', 'format = "torchscript"\nfactory = "a:b"', "models.wt80_pre.factory", ["no 'factory' with format 'torchscript'", "string 'a:b'"]),
    ("model-kwargs-type", "kwargs = { num_classes = 10, width = 16 }", "kwargs = [1]", "models.parent.kwargs", ["table", "array [1]"]),
    ("input-shape", "input_shape = [3, 32, 32]", "input_shape = [1, 32, 32]", "models.wt80.input_shape", ["[3, H, W]", "array [1, 32, 32]"]),
    ("input-shape-len", "input_shape = [3, 32, 32]", "input_shape = [32, 32]", "models.wt80.input_shape", ["3 elements", "found 2"]),
    ("trust-type", "trust = true", 'trust = "yes"', "models.ref.trust", ["boolean", "string 'yes'"]),
    ("ensemble-with-weights", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80", "wt80_pre"]\nweights = "w.pt"', "models.ens_pruned.weights", ["no 'weights' on an ensemble", "string 'w.pt'"]),
    ("ensemble-nested", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80", "ens_parent"]', "models.ens_pruned.members[1]", ["ensembles cannot nest", "ensemble 'ens_parent'"]),
    ("ensemble-self", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80", "ens_pruned"]', "models.ens_pruned.members[1]", ["other models", "'ens_pruned' itself"]),
    ("ensemble-unknown", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80", "wt90"]', "models.ens_pruned.members[1]", ["string 'wt90'", "known models: 'parent', 'wt80'"]),
    ("ensemble-one", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80"]', "models.ens_pruned.members", ["at least 2", "found 1"]),
    ("ensemble-dup", 'members = ["wt80", "wt80_pre"]', 'members = ["wt80", "wt80"]', "models.ens_pruned.members[1]", ["distinct", "'wt80' twice"]),
    ("ensemble-average", 'ensemble_average = "logits"', 'ensemble_average = "median"', "models.ens_parent.ensemble_average", ["'probs', 'logits'", "string 'median'"]),
    ("ensemble-average-single", "trust = true", 'trust = true\nensemble_average = "probs"', "models.ref.ensemble_average", ["only on an ensemble", "string 'probs'"]),
    ("pair-parent-unknown", 'parent = "parent"\npruned = "wt80"', 'parent = "parnt"\npruned = "wt80"', "pairs[0].parent", ["string 'parnt'", "did you mean 'parent'", "known models:"]),
    ("pair-dataset-unknown", 'pruned = "ens_pruned"\ndataset = "cifar"', 'pruned = "ens_pruned"\ndataset = "cifar-10"', "pairs[1].dataset", ["dataset defined under [datasets.<name>]", "string 'cifar-10'", "known datasets: 'cifar', 'svhn'"]),
    ("pair-missing-pruned", 'pruned = "wt80"\ndataset = "cifar"\nreference', 'dataset = "cifar"\nreference', "pairs[0].pruned", ["missing required key", "name of a model"]),
    ("pair-same-models", 'pruned = "wt80"\ndataset = "cifar"\nreference', 'pruned = "parent"\ndataset = "cifar"\nreference', "pairs[0].pruned", ["different from the parent", "'parent' for both"]),
    ("pair-method", 'methods = ["mc_dropout"]', 'methods = ["dropout"]', "pairs[0].methods[0]", ["'msp', 'mc_dropout', 'ensemble'", "string 'dropout'"]),
    ("pair-ensemble-method-single", 'methods = ["mc_dropout"]', 'methods = ["ensemble"]', "pairs[0].methods", ["needs the parent to be an ensemble", "single model 'parent'"]),
    ("pair-bad-name", 'name = "ens-pair.v1"', 'name = "ens pair"', "pairs[1].name", ["letters, digits, '-', '_' or '.'", "string 'ens pair'"]),
    ("pair-dup-name", 'name = "ens-pair.v1"', 'name = "wt80"', "pairs[1].name", ["unique pair name", "already used by pairs[0]"]),
    ("pair-mask-mode", 'mask_mode = "channels"', 'mask_mode = "filters"', "pairs[0].mask_mode", ["'unstructured', 'channels'", "string 'filters'"]),
    ("pair-unknown-key", 'mask_mode = "channels"', 'mask_mode = "channels"\nratio = 0.8', "pairs[0].ratio", ["unknown key 'ratio'", "'mask_mode'"]),
    ("pair-schedule", 'schedule = ["wt80_pre", "wt80"]', 'schedule = ["wt80_pre", "nope"]', "pairs[0].schedule[1]", ["name of a model", "string 'nope'"]),
    ("pair-ood-same", 'ood_dataset = "svhn"', 'ood_dataset = "cifar"', "pairs[0].ood_dataset", ["other than the pair's dataset", "'cifar'"]),
    ("pair-reference-is-parent", 'reference = "ref"', 'reference = "parent"', "pairs[0].reference", ["separately trained", "'parent'"]),
    ("family-deployed", 'deployed = "wt80"', 'deployed = "ref"', "families[0].deployed", ["one of the family's members ('wt80_pre', 'wt80')", "string 'ref'"]),
    ("family-ratio", "ratio = 0.8", "ratio = 1.5", "families[0].members[1].ratio", ["[0, 1]", "float 1.5"]),
    ("family-member-unknown", '"wt80_pre", {', '"wt70", {', "families[0].members[0]", ["name of a model", "string 'wt70'"]),
    ("family-member-type", '"wt80_pre", {', "7, {", "families[0].members[0]", ["model name or a", "integer 7"]),
    ("family-member-parent", '"wt80_pre", {', '"parent", {', "families[0].members[0]", ["pruned model", "parent 'parent'"]),
    ("family-no-name", 'name = "resnet-family"\n', "", "families[0].name", ["missing required key", "family name"]),
    ("family-name-clash", 'name = "resnet-family"', 'name = "wt80"', "families[0].name", ["not used by another pair or family", "pairs[0]"]),
    ("gates-unknown-suite", "[gates.accuracy_margin]", "[gates.accuracy]", "gates.accuracy", ["unknown gate suite 'accuracy'", "'accuracy_margin'"]),
    ("gates-unknown-key", "max_drop = 0.01", "max_dorp = 0.01", "gates.accuracy_margin.max_dorp", ["unknown option 'max_dorp'", "did you mean 'max_drop'", "'max_drop', 'max_relative_drop', 'mode'"]),
    ("gates-type", "max_drop = 0.01", 'max_drop = "0.01"', "gates.accuracy_margin.max_drop", ["number", "string '0.01'"]),
    ("gates-bool", "max_drop = 0.01", "max_drop = true", "gates.accuracy_margin.max_drop", ["number", "boolean true"]),
    ("gates-mode", 'mode = "confident"', 'mode = "strict"', "gates.accuracy_margin.mode", ["'point', 'confident', 'lenient'", "string 'strict'"]),
    ("gates-suite-not-table", "[gates.accuracy_margin]\nmax_drop = 0.01\nmode = \"confident\"\n", "[gates]\naccuracy_margin = 0.01\n", "gates.accuracy_margin", ["table", "float 0.01"]),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "texts"),
    [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES],
)
def test_invalid_value_gives_one_clear_error(
    tmp_path: Path, old: str, new: str, key: str, texts: list[str]
) -> None:
    path = write(tmp_path, edited(old, new))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    error = info.value
    message = str(error)
    assert error.source == str(path)
    assert error.key == key
    assert message.startswith(f"{path}, key '{key}': ")
    for text in texts:
        assert text in message, f"{text!r} not in {message!r}"


def test_error_cases_all_start_valid(tmp_path: Path) -> None:
    """FULL itself loads, so every error above comes from its one edit."""
    load_settings(write(tmp_path, FULL))


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, edited("batch_size = 128", "batch_size = = 128"))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and "invalid TOML syntax" in message
    assert "line 3" in message
    assert info.value.key is None and info.value.__cause__ is None


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "prunecheck.toml"
    path.write_bytes(b'[run]\ndevice = "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_nothing_to_gate() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"run": {"seed": 1}}, source="cfg.toml", base_dir=Path("/"))
    assert info.value.key == "pairs" and "at least one [[pairs]] or [[families]]" in str(info.value)


def test_pairs_must_be_array_of_tables() -> None:
    data = {"datasets": {}, "models": {}, "pairs": {"parent": "p"}}
    with pytest.raises(ConfigError) as info:
        parse_settings(data, source="cfg.toml", base_dir=Path("/"))
    assert info.value.key == "pairs" and "array of tables ([[pairs]])" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_settings({"pairs": ["x"]}, source="cfg.toml", base_dir=Path("/"))
    assert info.value.key == "pairs[0]" and "string 'x'" in str(info.value)


def test_reference_to_empty_models_lists_none(tmp_path: Path) -> None:
    data = {"datasets": {"d": {"kind": "demo"}}, "pairs": [{"parent": "a", "pruned": "b", "dataset": "d"}]}
    with pytest.raises(ConfigError) as info:
        parse_settings(data, source="cfg.toml", base_dir=tmp_path)
    assert info.value.key == "pairs[0].parent" and "known models: (none defined)" in str(info.value)


# --------------------------------------------------------------------------- discovery


def test_find_prunecheck_toml(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    write(tmp_path, "[tool.prunecheck]\n", "pyproject.toml")
    assert find_config(tmp_path) == path


def test_pyproject_discovery_and_loading(tmp_path: Path) -> None:
    text = MINIMAL.replace("[datasets", "[tool.prunecheck.datasets").replace(
        "[models", "[tool.prunecheck.models").replace("[[pairs]]", "[[tool.prunecheck.pairs]]")
    path = write(tmp_path, '[project]\nname = "x"\n\n' + text, "pyproject.toml")
    assert find_config(tmp_path) == path
    s = load_settings(path)
    assert s.pairs[0].name == "q" and s.datasets["c"].root == tmp_path / "c100"
    assert s.source == str(path)


def test_pyproject_errors_use_full_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[tool.prunecheck.run]\nbatch_size = -3\n', "pyproject.toml")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == "tool.prunecheck.run.batch_size"
    assert "integer -3" in str(info.value)


def test_pyproject_without_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[project]\nname = "x"\n\n[tool.black]\nline-length = 99\n', "pyproject.toml")
    assert find_config(tmp_path) is None
    with pytest.raises(ConfigError) as info:  # named explicitly, it must hold the table
        load_settings(find_config(tmp_path, explicit=path))
    assert info.value.key == "tool.prunecheck" and "pyproject.toml" in str(info.value)


def test_no_config_means_demo(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None


def test_explicit_path_takes_precedence(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    write(tmp_path, "[tool.prunecheck]\n", "pyproject.toml")
    other = tmp_path / "ci"
    other.mkdir()
    chosen = write(other, MINIMAL, "gates.toml")
    assert find_config(tmp_path, explicit=chosen) == chosen
    assert find_config(tmp_path, explicit="ci/gates.toml") == chosen  # relative to start_dir
    assert find_config(tmp_path, explicit=str(chosen)) == chosen
    # Relative paths inside it resolve against its own directory.
    assert load_settings(chosen).datasets["c"].root == other / "c100"


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)  # present, but an explicit path never falls back to it
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path, explicit="nope.toml")
    assert str(tmp_path / "nope.toml") in str(info.value) and "found nothing" in str(info.value)
    with pytest.raises(ConfigError, match="found a directory"):
        find_config(tmp_path, explicit=tmp_path)


def test_pyproject_syntax_error_during_discovery(tmp_path: Path) -> None:
    path = write(tmp_path, "[tool.prunecheck\n", "pyproject.toml")
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path)
    assert str(path) in str(info.value) and "line 1" in str(info.value)


def test_documented_example_is_valid(tmp_path: Path) -> None:
    """The complete example in docs/configuration.md loads as documented."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text("utf-8")
    blocks = doc.split("```toml\n")
    example = blocks[-1].split("```")[0]
    assert "[[families]]" in example, "the last toml block of the docs is the complete example"
    s = load_settings(write(tmp_path, example))
    assert s.datasets["cifar10"].root == Path.home() / "data/cifar"
    assert s.datasets["cifar10"].mean == (0.4914, 0.4822, 0.4465)
    assert s.models["wt80"].weights == tmp_path / "checkpoints/resnet20-wt80.pt"
    assert [p.name for p in s.pairs] == ["resnet20-wt80", "ensemble-wt80"]
    assert s.pairs[1].methods == ("msp", "ensemble")
    assert [m.ratio for m in s.families[0].members] == [0.5, 0.8, None]
    assert s.gates["accuracy_margin"] == {"max_drop": 0.005, "max_relative_drop": None, "mode": "confident"}


@pytest.mark.parametrize(("value", "match"), [
    ('["suites/test_accuracy_margin.py"]', r"'pairs\[0\]\.suites\[0\]': expected a suite file name .*\(no folder\)"),
    ('["accuracy_margin"]', r"'pairs\[0\]\.suites\[0\]': expected a suite file name"),
    ('"test_accuracy_margin.py"', r"'pairs\[0\]\.suites': expected an array"),
    ('["test_a.py", "test_a.py"]', r"'pairs\[0\]\.suites': expected distinct suite files"),
])
def test_pair_suites_are_suite_file_names(tmp_path: Path, value: str, match: str) -> None:
    text = MINIMAL.replace('[[pairs]]', '[[pairs]]\nsuites = ["test_accuracy_margin.py"]')
    assert load_settings(write(tmp_path, text)).pairs[0].suites == ("test_accuracy_margin.py",)
    assert load_settings(write(tmp_path, MINIMAL)).pairs[0].suites == ()
    with pytest.raises(ConfigError, match=match):
        load_settings(write(tmp_path, MINIMAL.replace('[[pairs]]', f'[[pairs]]\nsuites = {value}')))


def test_expect_fail_names_known_gates(tmp_path: Path) -> None:
    text = MINIMAL.replace('[[pairs]]', '[[pairs]]\nexpect_fail = ["corruptions"]')
    assert load_settings(write(tmp_path, text)).pairs[0].expect_fail == ("corruptions",)
    bad = MINIMAL.replace('[[pairs]]', '[[pairs]]\nexpect_fail = ["corruption"]')
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.expect_fail\[0\].*corruption"):
        load_settings(write(tmp_path, bad))
