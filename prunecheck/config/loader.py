"""Configuration loading: a TOML file turned into a validated :class:`Settings`.

Where the configuration comes from: an explicit path (:func:`find_config`), else the
first ``prunecheck.toml`` or ``pyproject.toml`` with a ``[tool.prunecheck]`` table in
the rootdir or in a collected path's directory or one of its parents
(:func:`discover_config`, the order pytest uses for its ini file); with none of these
the caller runs the built-in demo.

:func:`load_settings` reads the file and :func:`parse_settings` (pure, no I/O)
validates the mapping. Every invalid value raises exactly one
:class:`~prunecheck.core.errors.ConfigError` that names the file, the key path
(``models.wt80.format``, ``pairs[1].parent``; array indices count from 0) and says
what was expected and what was found. Nothing is imported or loaded here: model
factories are only checked for ``"package.module:callable"`` syntax.

``[gates.<suite>]`` tables are validated against the typed options classes of
``prunecheck.config.options`` (types, ranges, choices), read when a configuration is parsed.
The full format is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import keyword
import math
import os
import re
import reprlib
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prunecheck.config import options as _options
from prunecheck.config.options import SuiteOptions
from prunecheck.core.errors import ConfigError, PrunecheckDeprecationWarning
from prunecheck.config.settings import (
    CORRUPTION_BACKENDS,
    DatasetSpec,
    FamilyMember,
    FamilySpec,
    ModelSpec,
    PairSpec,
    RunSettings,
    Settings,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CONFIG_FILENAME", "discover_config", "find_config", "load_settings", "parse_settings"]

CONFIG_FILENAME = "prunecheck.toml"
PYPROJECT_FILENAME = "pyproject.toml"

TOP_LEVEL_KEYS = ("run", "datasets", "models", "pairs", "families", "gates")
RUN_KEYS = (
    "device", "batch_size", "cache_dir", "report_dir", "seed", "limit", "num_workers",
    "bootstrap_resamples", "channels_last", "precision", "corruption_backend", "prediction_cache",
)
PRECISIONS = ("fp32", "bf16", "fp16")
DATASET_KEYS = (
    "kind", "root", "split", "download", "mean", "std", "resize", "crop", "corruptions_root",
    "options", "corruption_profile",
)
#: ``[datasets.<name>] corruption_profile``: constants of generated corruptions (docs/corruptions.md).
CORRUPTION_PROFILES = ("auto", "cifar", "imagenet")
DATASET_KINDS = ("cifar10", "cifar100", "imagefolder", "imagenet-val", "demo")
MODEL_KEYS = (
    "factory", "kwargs", "weights", "format", "trust", "members", "ensemble_average",
    "input_shape", "state_dict_key", "strip_prefix",
)
MODEL_FORMATS = ("state_dict", "torchscript", "pickle", "safetensors", "torch_pruning", "exported", "onnx")
#: Formats whose file holds only weights: the architecture comes from 'factory'.
FACTORY_FORMATS = ("state_dict", "safetensors", "torch_pruning")
#: Formats whose loader reads a state dict out of the file, so the key options apply.
STATE_DICT_KEY_FORMATS = ("state_dict",)
STRIP_PREFIX_FORMATS = ("state_dict", "safetensors")
ENSEMBLE_AVERAGES = ("probs", "logits")
PAIR_KEYS = (
    "name", "parent", "pruned", "dataset", "reference", "ood_dataset", "methods",
    "pre_finetune", "schedule", "schedule_finetuned", "mask_mode", "expect_fail", "suites",
)
UNCERTAINTY_METHODS = ("msp", "mc_dropout", "ensemble")
MASK_MODES = ("unstructured", "channels")
FAMILY_KEYS = ("name", "parent", "dataset", "members", "deployed", "expect_fail")
FAMILY_MEMBER_KEYS = ("model", "ratio")
CIFAR_SPLITS = ("train", "test")

# Per-kind normalisation (mean, std) used when ``mean`` / ``std`` are omitted.
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KIND_NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": _IMAGENET_STATS,
    "imagenet-val": _IMAGENET_STATS,
    "demo": _IMAGENET_STATS,
}
# Per-kind (split, resize, crop) used when omitted.
KIND_GEOMETRY: dict[str, tuple[str, int | None, int | None]] = {
    "cifar10": ("test", None, None),
    "cifar100": ("test", None, None),
    "imagefolder": ("test", None, None),
    "imagenet-val": ("test", 256, 224),
    "demo": ("test", None, None),
}

# Names of datasets, models, pairs and families end up in pytest ids and report file names.
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_DEVICE_RE = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxdict = 6


# ----------------------------------------------------------------------------------------
# Discovery and reading
# ----------------------------------------------------------------------------------------


def find_config(start_dir: Path, explicit: str | Path | None = None) -> Path | None:
    """Locate the configuration file.

    Args:
        start_dir: Directory searched when no explicit path is given (usually the
            pytest root or invocation directory). Relative explicit paths are taken
            relative to it.
        explicit: A path the user named (``--prunecheck-config``); it must exist.

    Returns:
        The explicit path; else ``start_dir/prunecheck.toml``; else
        ``start_dir/pyproject.toml`` if it has a ``[tool.prunecheck]`` table; else
        ``None`` (the caller then runs the built-in demo).

    Raises:
        ConfigError: The explicit path does not name an existing file, or
            ``pyproject.toml`` is not valid TOML.
    """
    start_dir = Path(start_dir).expanduser()
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = start_dir / path
        if not path.is_file():
            found = "a directory" if path.is_dir() else "nothing"
            raise ConfigError(
                f"expected an existing configuration file, found {found} at this path",
                source=str(path),
            )
        return path
    candidate = start_dir / CONFIG_FILENAME
    if candidate.is_file():
        return candidate
    pyproject = start_dir / PYPROJECT_FILENAME
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool")
        if isinstance(tool, Mapping) and "prunecheck" in tool:
            return pyproject
    return None


def discover_config(rootdir: Path | None, paths: Iterable[Path] = ()) -> Path | None:
    """Find the configuration file the way pytest finds its ini file.

    The search order (documented in docs/configuration.md; the first file found wins):

    1. the rootdir itself;
    2. for each collected path in command-line order, its directory (the path itself
       when it is a directory) and then every parent directory up to the file system root.

    In each directory ``prunecheck.toml`` comes before a ``pyproject.toml`` with a
    ``[tool.prunecheck]`` table (see :func:`find_config`). So ``pytest proj/suites``
    run from proj's parent finds ``proj/prunecheck.toml``.

    Args:
        rootdir: pytest's rootdir (or the current directory for the command), or None.
        paths: The collected paths (files or directories; missing ones are skipped).

    Returns:
        The file, or ``None`` when no directory on the way has one.

    Raises:
        ConfigError: A ``pyproject.toml`` on the way is not valid TOML.
    """
    seen: set[Path] = set()

    def directories() -> Iterator[Path]:
        if rootdir is not None:
            yield Path(rootdir).resolve()
        for path in paths:
            path = Path(path).expanduser().resolve()
            start = path if path.is_dir() else path.parent
            yield start
            yield from start.parents

    for directory in directories():
        if directory in seen or not directory.is_dir():
            continue
        seen.add(directory)
        found = find_config(directory)
        if found is not None:
            return found
    return None


def load_settings(path: Path) -> Settings:
    """Read and validate a configuration file.

    For a file named ``pyproject.toml`` the ``[tool.prunecheck]`` table is used
    and error key paths start with ``tool.prunecheck.``. Relative paths in the file
    are resolved against the file's directory.

    Args:
        path: A ``prunecheck.toml`` or ``pyproject.toml`` file.

    Returns:
        The validated settings, with every gate suite's defaults filled in.

    Raises:
        ConfigError: The file cannot be read, is not valid TOML, or holds an
            invalid value (the message names the file and the key).
    """
    path = Path(path).expanduser()
    data: Mapping[str, Any] = _read_toml(path)
    prefix = ""
    if path.name == PYPROJECT_FILENAME:
        tool = data.get("tool")
        section = tool.get("prunecheck") if isinstance(tool, Mapping) else None
        if section is None:
            raise ConfigError(
                "expected a [tool.prunecheck] table in pyproject.toml, found none",
                source=str(path),
                key="tool.prunecheck",
            )
        if not isinstance(section, Mapping):
            raise ConfigError(
                f"expected a table, found {_describe(section)}",
                source=str(path),
                key="tool.prunecheck",
            )
        data, prefix = section, "tool.prunecheck."
    return parse_settings(
        data, source=str(path), base_dir=path.absolute().parent, key_prefix=prefix
    )


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; every failure becomes a ConfigError naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration file: {exc.strerror or exc}", source=str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"expected UTF-8 text, found an undecodable byte at offset {exc.start}",
            source=str(path),
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML syntax: {exc}", source=str(path)) from None


# ----------------------------------------------------------------------------------------
# Validation primitives
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where values come from: the source file, base directory and key prefix."""

    source: str
    base_dir: Path
    prefix: str = ""

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.prefix + key)


def _describe(value: Any) -> str:
    """TOML-flavoured description of a found value, e.g. ``string 'onnx'``."""
    if isinstance(value, bool):
        kind = "boolean"
        shown = "true" if value else "false"
        return f"{kind} {shown}"
    if isinstance(value, int):
        kind = "integer"
    elif isinstance(value, float):
        kind = "float"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, Mapping):
        return f"table with keys {_repr.repr(list(value))}"
    elif isinstance(value, (list, tuple)):
        kind = "array"
    else:
        kind = type(value).__name__
    return f"{kind} {_repr.repr(value)}"


def _one_of(options: tuple[str, ...] | list[str]) -> str:
    return ", ".join(repr(o) for o in options) if options else "(none defined)"


def _did_you_mean(word: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _table(where: _Where, key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(key, f"expected a table, found {_describe(value)}")
    return value


def _check_keys(
    where: _Where, key: str, table: Mapping[str, Any], allowed: tuple[str, ...], hint: str = ""
) -> None:
    for name in table:
        if name not in allowed:
            path = f"{key}.{name}" if key else str(name)
            raise where.error(
                path,
                f"unknown key {name!r}{_did_you_mean(str(name), allowed)}; "
                f"expected one of {_one_of(allowed)}{hint}",
            )


def _required(where: _Where, key: str, table: Mapping[str, Any], name: str, expected: str) -> Any:
    if name not in table:
        raise where.error(f"{key}.{name}", f"missing required key; expected {expected}")
    return table[name]


def _str(where: _Where, key: str, value: Any, choices: tuple[str, ...] | None = None) -> str:
    if choices is not None:
        if not isinstance(value, str) or value not in choices:
            raise where.error(key, f"expected one of {_one_of(choices)}, found {_describe(value)}")
        return value
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, found {_describe(value)}")
    return value


def _bool(where: _Where, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise where.error(key, f"expected a boolean (true or false), found {_describe(value)}")
    return value


def _int(where: _Where, key: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"expected an integer, found {_describe(value)}")
    if minimum is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise where.error(key, f"expected {what}, found {_describe(value)}")
    return value


def _float(where: _Where, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(key, f"expected a number, found {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise where.error(key, f"expected a finite number, found {_describe(value)}")
    if positive and number <= 0:
        raise where.error(key, f"expected a number > 0, found {_describe(value)}")
    return number


def _array(where: _Where, key: str, value: Any, length: int | None = None) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        what = f"an array of {length} elements" if length is not None else "an array"
        raise where.error(key, f"expected {what}, found {_describe(value)}")
    if length is not None and len(value) != length:
        raise where.error(
            key, f"expected an array of {length} elements, found {len(value)}: {_describe(value)}"
        )
    return list(value)


def _floats3(where: _Where, key: str, value: Any, *, positive: bool) -> tuple[float, float, float]:
    items = _array(where, key, value, length=3)
    a, b, c = (_float(where, f"{key}[{i}]", v, positive=positive) for i, v in enumerate(items))
    return (a, b, c)


def _path(where: _Where, key: str, value: Any) -> Path:
    """A filesystem path: ``~`` expanded, relative paths joined to the base directory."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise where.error(key, f"expected a path string, found {_describe(value)}")
    if not value.strip():
        raise where.error(key, f"expected a non-empty path, found {_describe(value)}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else where.base_dir / path


def _location(where: _Where, key: str, value: Any) -> str:
    """A folder (resolved like :func:`_path`) or a URL with a scheme (``s3://bucket/prefix``), kept as text."""
    if isinstance(value, str) and "://" in value:
        scheme, _, rest = value.partition("://")
        if not scheme or not rest.strip("/"):
            raise where.error(key, f"expected a URL like s3://bucket/prefix, found {_describe(value)}")
        return value
    return str(_path(where, key, value))


def _name(where: _Where, key: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise where.error(
            key,
            f"expected a {what} name made of letters, digits, '-', '_' or '.' "
            f"(it appears in pytest ids), found {_describe(value)}",
        )
    return value


def _ref(where: _Where, key: str, value: Any, known: Mapping[str, Any], what: str) -> str:
    """A reference to a named entry (``what`` is ``model`` or ``dataset``)."""
    table = "models" if what == "model" else "datasets"
    if not isinstance(value, str) or value not in known:
        hint = _did_you_mean(value, list(known)) if isinstance(value, str) else ""
        raise where.error(
            key,
            f"expected the name of a {what} defined under [{table}.<name>], "
            f"found {_describe(value)}{hint}; known {table}: {_one_of(list(known))}",
        )
    return value


def _plain(value: Any) -> Any:
    """Deep copy of a TOML value with every table as a plain dict."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


# ----------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------


def parse_settings(
    data: Mapping[str, Any], *, source: str, base_dir: Path, key_prefix: str = ""
) -> Settings:
    """Validate a configuration mapping (parsed TOML) into :class:`Settings`.

    Pure: no file is read and nothing is imported. Relative paths are joined to
    ``base_dir`` (``~`` is expanded); defaults are filled in, including every
    suite of ``prunecheck.config.options.SUITES`` under ``gates``.

    Args:
        data: The top-level tables ``run``, ``datasets``, ``models``, ``pairs``,
            ``families`` and ``gates`` (all optional, but at least one pair or
            family is required).
        source: The file path (or a label such as ``"<built-in demo>"``) put into
            ``Settings.source`` and every error.
        base_dir: Directory relative paths are resolved against.
        key_prefix: Prepended to error key paths (``"tool.prunecheck."`` for
            pyproject.toml).

    Returns:
        The validated settings.

    Raises:
        ConfigError: The first invalid value found, naming ``source`` and the key.

    Example:
        >>> s = parse_settings(
        ...     {"datasets": {"d": {"kind": "demo"}},
        ...      "models": {"p": {"factory": "m:f", "weights": "p.pt"},
        ...                 "q": {"factory": "m:f", "weights": "q.pt"}},
        ...      "pairs": [{"parent": "p", "pruned": "q", "dataset": "d"}]},
        ...     source="x.toml", base_dir=Path("/proj"))
        >>> s.pairs[0].name, s.models["q"].weights
        ('q', PosixPath('/proj/q.pt'))
    """
    where = _Where(source=source, base_dir=Path(base_dir).expanduser(), prefix=key_prefix)
    if not isinstance(data, Mapping):
        raise where.error("", f"expected a table of settings, found {_describe(data)}")
    _check_keys(where, "", data, TOP_LEVEL_KEYS)
    run = _parse_run(where, data.get("run", {}))
    datasets = _parse_named(where, "datasets", data.get("datasets", {}), "dataset", _parse_dataset)
    models = _parse_named(where, "models", data.get("models", {}), "model", _parse_model)
    _check_ensembles(where, models)
    pairs = _parse_pairs(where, data.get("pairs", []), models, datasets)
    families = _parse_families(where, data.get("families", []), models, datasets, pairs)
    if not pairs and not families:
        raise where.error(
            "pairs",
            "expected at least one [[pairs]] or [[families]] entry, found none: "
            "the configuration would gate nothing",
        )
    gates, legacy_backend = _parse_gates(where, data.get("gates", {}))
    if legacy_backend is not None:
        run_table = data.get("run", {})
        if "corruption_backend" in run_table and run_table["corruption_backend"] != legacy_backend:
            raise where.error(
                "gates.corruptions.backend",
                f"expected the corruption backend once, under [run] corruption_backend "
                f"({run_table['corruption_backend']!r}), found a different one here: {legacy_backend!r}",
            )
        run = dataclasses.replace(run, corruption_backend=legacy_backend)
    return Settings(
        source=source,
        run=run,
        datasets=datasets,
        models=models,
        pairs=pairs,
        families=families,
        gates=gates,
    )


def _parse_run(where: _Where, raw: Any) -> RunSettings:
    table = _table(where, "run", raw)
    _check_keys(where, "run", table, RUN_KEYS)
    defaults = RunSettings()
    values: dict[str, Any] = {}
    device = table.get("device", defaults.device)
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise where.error(
            "run.device",
            f"expected 'auto', 'cpu', 'cuda', 'cuda:N' (N a device index) or 'mps', "
            f"found {_describe(device)}",
        )
    values["device"] = device
    values["batch_size"] = _int(
        where, "run.batch_size", table.get("batch_size", defaults.batch_size), 1
    )
    values["seed"] = _int(where, "run.seed", table.get("seed", defaults.seed), 0)
    values["num_workers"] = _int(
        where, "run.num_workers", table.get("num_workers", defaults.num_workers), 0
    )
    values["bootstrap_resamples"] = _int(
        where,
        "run.bootstrap_resamples",
        table.get("bootstrap_resamples", defaults.bootstrap_resamples),
        1,
    )
    values["channels_last"] = _bool(
        where, "run.channels_last", table.get("channels_last", defaults.channels_last)
    )
    values["precision"] = _str(
        where, "run.precision", table.get("precision", defaults.precision), PRECISIONS
    )
    values["corruption_backend"] = _str(
        where, "run.corruption_backend",
        table.get("corruption_backend", defaults.corruption_backend), CORRUPTION_BACKENDS,
    )
    if "limit" in table:
        values["limit"] = _int(where, "run.limit", table["limit"], 1)
    cache_dir = table.get("cache_dir", defaults.cache_dir)
    if isinstance(cache_dir, str) and "://" in cache_dir:
        # A URL cache_dir shares the predictions; generated corruptions stay in a local folder.
        values["prediction_cache"] = _location(where, "run.cache_dir", cache_dir).rstrip("/") + "/predictions"
        cache_dir = defaults.cache_dir
    values["cache_dir"] = _path(where, "run.cache_dir", cache_dir)
    if "prediction_cache" in table:
        values["prediction_cache"] = _location(where, "run.prediction_cache", table["prediction_cache"])
    values["report_dir"] = _path(
        where, "run.report_dir", table.get("report_dir", defaults.report_dir)
    )
    return RunSettings(**values)


def _parse_named(
    where: _Where,
    section: str,
    raw: Any,
    what: str,
    parse_one: Callable[[_Where, str, str, Mapping[str, Any]], Any],
) -> dict[str, Any]:
    table = _table(where, section, raw)
    result: dict[str, Any] = {}
    for name, entry in table.items():
        key = f"{section}.{name}"
        _name(where, key, name, what)
        result[name] = parse_one(where, key, name, _table(where, key, entry))
    return result


def _parse_dataset(where: _Where, key: str, name: str, table: Mapping[str, Any]) -> DatasetSpec:
    _check_keys(
        where, key, table, DATASET_KEYS,
        hint=f"; put kind-specific extras under [{key}.options]",
    )
    raw_kind = _required(where, key, table, "kind", f"one of {_one_of(DATASET_KINDS)}")
    kind = _str(where, f"{key}.kind", raw_kind, DATASET_KINDS)
    mean_default, std_default = KIND_NORMALISATION[kind]
    split_default, resize_default, crop_default = KIND_GEOMETRY[kind]
    if kind == "demo":
        root = _path(where, f"{key}.root", table["root"]) if "root" in table else None
    else:
        root = _path(
            where, f"{key}.root",
            _required(where, key, table, "root", "a path (every kind except 'demo' needs a root)"),
        )
    split = _str(where, f"{key}.split", table.get("split", split_default))
    if kind in ("cifar10", "cifar100") and split not in CIFAR_SPLITS:
        raise where.error(
            f"{key}.split",
            f"expected one of {_one_of(CIFAR_SPLITS)} for kind {kind!r}, found {_describe(split)}",
        )
    resize = resize_default
    if "resize" in table:
        resize = _int(where, f"{key}.resize", table["resize"], 1)
    crop = _int(where, f"{key}.crop", table["crop"], 1) if "crop" in table else crop_default
    if resize is not None and crop is not None and crop > resize:
        raise where.error(
            f"{key}.crop",
            f"expected a crop no larger than resize ({resize}), found integer {crop}",
        )
    return DatasetSpec(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        root=root,
        split=split,
        download=_bool(where, f"{key}.download", table.get("download", False)),
        mean=_floats3(where, f"{key}.mean", table.get("mean", mean_default), positive=False),
        std=_floats3(where, f"{key}.std", table.get("std", std_default), positive=True),
        resize=resize,
        crop=crop,
        corruptions_root=(
            _path(where, f"{key}.corruptions_root", table["corruptions_root"])
            if "corruptions_root" in table else None
        ),
        options=_plain(_table(where, f"{key}.options", table.get("options", {}))),
        corruption_profile=_str(
            where, f"{key}.corruption_profile", table.get("corruption_profile", "auto"), CORRUPTION_PROFILES
        ),
    )


def _check_factory(where: _Where, key: str, value: Any) -> str:
    text = _str(where, key, value)
    parts = text.split(":")
    ok = len(parts) == 2 and all(
        part and all(seg.isidentifier() and not keyword.iskeyword(seg) for seg in part.split("."))
        for part in parts
    )
    if not ok:
        raise where.error(
            key,
            "expected 'package.module:callable' (dotted identifiers, exactly one ':'), "
            f"found {_describe(value)}",
        )
    return text


def _parse_model(where: _Where, key: str, name: str, table: Mapping[str, Any]) -> ModelSpec:
    _check_keys(where, key, table, MODEL_KEYS)
    input_shape = None
    if "input_shape" in table:
        items = _array(where, f"{key}.input_shape", table["input_shape"], length=3)
        dims = tuple(_int(where, f"{key}.input_shape[{i}]", v, 1) for i, v in enumerate(items))
        if dims[0] != 3:
            raise where.error(
                f"{key}.input_shape",
                f"expected [3, H, W] (RGB input), found {_describe(table['input_shape'])}",
            )
        input_shape = dims
    if "members" in table:
        items = _array(where, f"{key}.members", table["members"])
        members = tuple(
            _name(where, f"{key}.members[{i}]", m, "model") for i, m in enumerate(items)
        )
        if len(members) < 2:
            raise where.error(
                f"{key}.members",
                f"expected an ensemble of at least 2 member models, found {len(members)}",
            )
        for i, member in enumerate(members):
            if member in members[:i]:
                raise where.error(
                    f"{key}.members[{i}]", f"expected distinct members, found {member!r} twice"
                )
        for other in ("factory", "kwargs", "weights", "format", "trust", "state_dict_key", "strip_prefix"):
            if other in table:
                raise where.error(
                    f"{key}.{other}",
                    f"expected no {other!r} on an ensemble (a model with 'members'); "
                    f"set it on each member model instead, found {_describe(table[other])}",
                )
        average = _str(
            where, f"{key}.ensemble_average", table.get("ensemble_average", "probs"),
            ENSEMBLE_AVERAGES,
        )
        return ModelSpec(
            name=name, members=members, ensemble_average=average,  # type: ignore[arg-type]
            input_shape=input_shape,  # type: ignore[arg-type]
        )
    if "ensemble_average" in table:
        raise where.error(
            f"{key}.ensemble_average",
            "expected 'ensemble_average' only on an ensemble (a model with 'members'), "
            f"found it on a single model: {_describe(table['ensemble_average'])}",
        )
    fmt = _str(where, f"{key}.format", table.get("format", "state_dict"), MODEL_FORMATS)
    trust = _bool(where, f"{key}.trust", table.get("trust", False))
    factory = None
    if "factory" in table:
        factory = _check_factory(where, f"{key}.factory", table["factory"])
    kwargs = _plain(_table(where, f"{key}.kwargs", table.get("kwargs", {})))
    if "weights" not in table:
        needs = "'factory' and 'weights'" if fmt in FACTORY_FORMATS else "'weights'"
        raise where.error(
            f"{key}.weights",
            f"missing required key; format {fmt!r} needs {needs} (or 'members' for an ensemble)",
        )
    weights = _path(where, f"{key}.weights", table["weights"])
    if fmt in FACTORY_FORMATS:
        if factory is None:
            raise where.error(
                f"{key}.factory",
                f"missing required key; format {fmt!r} needs a 'package.module:callable' "
                "that builds the architecture the weights are loaded into",
            )
    else:
        if factory is not None:
            raise where.error(
                f"{key}.factory",
                f"expected no 'factory' with format {fmt!r} (the file holds the whole model), "
                f"found {_describe(table['factory'])}",
            )
        if "kwargs" in table:
            raise where.error(
                f"{key}.kwargs",
                f"expected no 'kwargs' with format {fmt!r} (there is no factory to pass them to), "
                f"found {_describe(table['kwargs'])}",
            )
    if fmt == "pickle" and not trust:
        raise where.error(
            f"{key}.trust",
            "expected trust = true for format 'pickle', found "
            f"{'boolean false' if 'trust' in table else 'no trust key'}: unpickling a file runs "
            "arbitrary code from it. Only if you trust the file completely, opt in with "
            f"'trust = true' under [{key}]; otherwise save a state_dict or TorchScript instead",
        )
    key_options: dict[str, str] = {}
    for option, formats in (("state_dict_key", STATE_DICT_KEY_FORMATS), ("strip_prefix", STRIP_PREFIX_FORMATS)):
        if option in table:
            if fmt not in formats:
                raise where.error(
                    f"{key}.{option}",
                    f"expected {option!r} only with format {' or '.join(repr(f) for f in formats)} "
                    f"(a file holding a state dict), found it with format {fmt!r}",
                )
            value = table[option]
            if not isinstance(value, str) or not value:
                raise where.error(f"{key}.{option}", f"expected a non-empty string, found {_describe(value)}")
            key_options[option] = value
    return ModelSpec(
        name=name, factory=factory, kwargs=kwargs, weights=weights,
        format=fmt, trust=trust, input_shape=input_shape,  # type: ignore[arg-type]
        **key_options,
    )


def _check_ensembles(where: _Where, models: Mapping[str, ModelSpec]) -> None:
    for name, spec in models.items():
        for i, member in enumerate(spec.members):
            key = f"models.{name}.members[{i}]"
            if member == name:
                raise where.error(key, f"expected other models, found the ensemble {name!r} itself")
            _ref(where, key, member, models, "model")
            if models[member].members:
                raise where.error(
                    key,
                    f"expected a single (non-ensemble) model, found ensemble {member!r}: "
                    "ensembles cannot nest; list its members directly",
                )


def _array_of_tables(where: _Where, key: str, raw: Any) -> list[Mapping[str, Any]]:
    items = raw if isinstance(raw, (list, tuple)) else None
    if items is None:
        raise where.error(key, f"expected an array of tables ([[{key}]]), found {_describe(raw)}")
    return [_table(where, f"{key}[{i}]", item) for i, item in enumerate(items)]


def _parse_pairs(
    where: _Where, raw: Any, models: Mapping[str, ModelSpec], datasets: Mapping[str, DatasetSpec]
) -> tuple[PairSpec, ...]:
    pairs: list[PairSpec] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(_array_of_tables(where, "pairs", raw)):
        key = f"pairs[{i}]"
        _check_keys(where, key, table, PAIR_KEYS)

        def model(field: str, table: Mapping[str, Any] = table, key: str = key) -> str:
            value = _required(where, key, table, field, "the name of a model")
            return _ref(where, f"{key}.{field}", value, models, "model")

        def optional_model(
            field: str, table: Mapping[str, Any] = table, key: str = key
        ) -> str | None:
            if field not in table:
                return None
            return _ref(where, f"{key}.{field}", table[field], models, "model")

        parent, pruned = model("parent"), model("pruned")
        if parent == pruned:
            raise where.error(
                f"{key}.pruned",
                f"expected a model different from the parent, found {pruned!r} for both",
            )
        dataset = _ref(
            where, f"{key}.dataset",
            _required(where, key, table, "dataset", "the name of a dataset"), datasets, "dataset",
        )
        name = _name(where, f"{key}.name", table.get("name", pruned), "pair")
        if name in seen:
            raise where.error(
                f"{key}.name",
                f"expected a unique pair name, found {name!r} already used by pairs[{seen[name]}]"
                + ("" if "name" in table else " (the name defaults to the pruned model)"),
            )
        seen[name] = i
        reference = optional_model("reference")
        if reference is not None and reference in (parent, pruned):
            raise where.error(
                f"{key}.reference",
                "expected a separately trained model (not the pair's parent or pruned "
                f"model), found {reference!r}",
            )
        ood = (
            _ref(where, f"{key}.ood_dataset", table["ood_dataset"], datasets, "dataset")
            if "ood_dataset" in table else None
        )
        if ood is not None and ood == dataset:
            raise where.error(
                f"{key}.ood_dataset",
                f"expected a dataset other than the pair's dataset, found {ood!r}",
            )
        methods = ["msp"]
        for j, method in enumerate(_array(where, f"{key}.methods", table.get("methods", []))):
            method = _str(where, f"{key}.methods[{j}]", method, UNCERTAINTY_METHODS)
            if method not in methods:
                methods.append(method)
        if "ensemble" in methods:
            for role, model_name in (("parent", parent), ("pruned", pruned)):
                if not models[model_name].members:
                    raise where.error(
                        f"{key}.methods",
                        f"method 'ensemble' needs the {role} to be an ensemble (a model with "
                        f"'members'), found single model {model_name!r}",
                    )
        schedule = tuple(
            _ref(where, f"{key}.schedule[{j}]", step, models, "model")
            for j, step in enumerate(_array(where, f"{key}.schedule", table.get("schedule", [])))
        )
        schedule_finetuned = tuple(
            _ref(where, f"{key}.schedule_finetuned[{j}]", step, models, "model")
            for j, step in enumerate(
                _array(where, f"{key}.schedule_finetuned", table.get("schedule_finetuned", []))
            )
        )
        if schedule_finetuned and len(schedule_finetuned) != len(schedule):
            raise where.error(
                f"{key}.schedule_finetuned",
                f"expected one fine-tuned model per schedule step ({len(schedule)}), "
                f"found {len(schedule_finetuned)}",
            )
        pairs.append(
            PairSpec(
                name=name, parent=parent, pruned=pruned, dataset=dataset,
                reference=reference, ood_dataset=ood, methods=tuple(methods),
                pre_finetune=optional_model("pre_finetune"), schedule=schedule,
                schedule_finetuned=schedule_finetuned,
                mask_mode=_str(  # type: ignore[arg-type]
                    where, f"{key}.mask_mode", table.get("mask_mode", "unstructured"), MASK_MODES
                ),
                expect_fail=_gate_names(where, f"{key}.expect_fail", table.get("expect_fail", [])),
                suites=_suite_files(where, f"{key}.suites", table.get("suites", [])),
            )
        )
    return tuple(pairs)


_SUITE_FILE_RE = re.compile(r"test_[A-Za-z0-9_]+\.py")


def _suite_files(where: _Where, key: str, raw: Any) -> tuple[str, ...]:
    """Suite file names (``test_<name>.py``, no folder) a pair is restricted to; the plugin
    checks at collection that each names a file in the suites folder."""
    names = []
    for j, value in enumerate(_array(where, key, raw)):
        if not isinstance(value, str) or not _SUITE_FILE_RE.fullmatch(value):
            raise where.error(f"{key}[{j}]", f"expected a suite file name such as 'test_accuracy_margin.py' "
                                            f"(no folder), found {_describe(value)}")
        names.append(value)
    if len(set(names)) != len(names):
        raise where.error(key, f"expected distinct suite files, found {_describe(raw)}")
    return tuple(names)


def _gate_names(where: _Where, key: str, raw: Any) -> tuple[str, ...]:
    """Names of gates known to fail for a pair or family (reported as xfail, with the message)."""
    known = tuple(_options.SUITES)
    return tuple(_str(where, f"{key}[{j}]", v, known) for j, v in enumerate(_array(where, key, raw)))


def _parse_families(
    where: _Where,
    raw: Any,
    models: Mapping[str, ModelSpec],
    datasets: Mapping[str, DatasetSpec],
    pairs: tuple[PairSpec, ...],
) -> tuple[FamilySpec, ...]:
    families: list[FamilySpec] = []
    taken = {pair.name: f"pairs[{i}]" for i, pair in enumerate(pairs)}
    for i, table in enumerate(_array_of_tables(where, "families", raw)):
        key = f"families[{i}]"
        _check_keys(where, key, table, FAMILY_KEYS)
        raw_name = _required(where, key, table, "name", "a family name")
        name = _name(where, f"{key}.name", raw_name, "family")
        if name in taken:
            raise where.error(
                f"{key}.name",
                f"expected a name not used by another pair or family (reports are keyed by it), "
                f"found {name!r} already used by {taken[name]}",
            )
        taken[name] = key
        parent = _ref(
            where, f"{key}.parent",
            _required(where, key, table, "parent", "the name of a model"), models, "model",
        )
        dataset = _ref(
            where, f"{key}.dataset",
            _required(where, key, table, "dataset", "the name of a dataset"), datasets, "dataset",
        )
        raw_members = _array(
            where, f"{key}.members",
            _required(
                where, key, table, "members",
                'an array of model names or {model = "...", ratio = 0.8} tables',
            ),
        )
        if not raw_members:
            raise where.error(
                f"{key}.members", "expected at least one pruned member model, found an empty array"
            )
        members: list[FamilyMember] = []
        for j, item in enumerate(raw_members):
            mkey = f"{key}.members[{j}]"
            if isinstance(item, Mapping):
                _check_keys(where, mkey, item, FAMILY_MEMBER_KEYS)
                model_name = _ref(
                    where, f"{mkey}.model",
                    _required(where, mkey, item, "model", "the name of a model"), models, "model",
                )
                ratio = None
                if "ratio" in item:
                    ratio = _float(where, f"{mkey}.ratio", item["ratio"])
                    if not 0.0 <= ratio <= 1.0:
                        raise where.error(
                            f"{mkey}.ratio",
                            f"expected a prune ratio in [0, 1], found {_describe(item['ratio'])}",
                        )
            elif isinstance(item, str):
                model_name, ratio = _ref(where, mkey, item, models, "model"), None
            else:
                raise where.error(
                    mkey,
                    'expected a model name or a {model = "...", ratio = 0.8} table, '
                    f"found {_describe(item)}",
                )
            if model_name == parent:
                raise where.error(
                    mkey, f"expected a pruned model, found the family's parent {parent!r}"
                )
            if any(m.model == model_name for m in members):
                raise where.error(mkey, f"expected distinct members, found {model_name!r} twice")
            members.append(FamilyMember(model=model_name, ratio=ratio))
        deployed = None
        if "deployed" in table:
            names = [m.model for m in members]
            deployed = table["deployed"]
            if not isinstance(deployed, str) or deployed not in names:
                raise where.error(
                    f"{key}.deployed",
                    f"expected one of the family's members ({_one_of(names)}), "
                    f"found {_describe(deployed)}",
                )
        families.append(
            FamilySpec(
                name=name, parent=parent, dataset=dataset, members=tuple(members),
                deployed=deployed,
                expect_fail=_gate_names(where, f"{key}.expect_fail", table.get("expect_fail", [])),
            )
        )
    return tuple(families)


# ----------------------------------------------------------------------------------------
# Gates
# ----------------------------------------------------------------------------------------


def _parse_gates(where: _Where, raw: Any) -> tuple[dict[str, SuiteOptions], str | None]:
    """Validate ``[gates.<suite>]`` tables against the typed schema of ``prunecheck.config.options``.

    Returns every registered suite's options (defaults where not configured) and the
    corruption backend if it was given at its former place, ``[gates.corruptions] backend``
    (deprecated: it is an engine setting, ``[run] corruption_backend``).
    """
    suites = _options.SUITES  # read now, not at import: a suite may register its class later
    result = {name: cls() for name, cls in suites.items()}
    legacy_backend = None
    table = _table(where, "gates", raw)
    names = sorted(suites)
    for suite, values in table.items():
        key = f"gates.{suite}"
        if suite not in suites:
            raise where.error(
                key,
                f"unknown gate suite {suite!r}{_did_you_mean(suite, names)}; "
                f"expected one of {_one_of(names)}",
            )
        values = dict(_table(where, key, values))
        if suite == "corruptions" and "backend" in values:
            legacy_backend = _str(where, f"{key}.backend", values.pop("backend"), CORRUPTION_BACKENDS)
            warnings.warn(
                PrunecheckDeprecationWarning(
                    f"{where.source}, key '{where.prefix}{key}.backend': deprecated location; the corruption "
                    f"backend is an engine setting now: write corruption_backend = {legacy_backend!r} under [run]"
                ),
                stacklevel=2,
            )
        known = suites[suite]._names()
        for name in values:
            if name == "mode" and suite not in _options.MODE_SUITES:
                raise where.error(
                    f"{key}.mode",
                    f"gate modes are not implemented for the {suite!r} gates, found {_describe(values[name])}; "
                    f"'mode' is accepted in [gates.<suite>] for {_one_of(_options.MODE_SUITES)}",
                )
            if name not in known:
                raise where.error(
                    f"{key}.{name}",
                    f"unknown option {name!r} for suite {suite!r}{_did_you_mean(name, known)}; "
                    f"expected one of {_one_of(sorted(known))}",
                )
        try:
            result[suite] = suites[suite].from_table(values)
        except _options.OptionError as exc:
            raise where.error(f"{key}.{exc.key}", str(exc)) from None
    return result, legacy_backend
