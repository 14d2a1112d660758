"""Typed options of the gate suites: what a ``[gates.<suite>]`` table may hold.

One frozen dataclass per suite declares every option with its type, default,
range and choices in one line; ``prunecheck.config.loader`` validates a configuration's
``[gates.*]`` tables against these classes once, when the file is loaded, so a
bad value is one configuration error naming the file and the key, never a strange
gate result later. Adding an option is one line in its suite's class, e.g.::

    max_class_drop: float = option(0.02, at_least=0.0, at_most=1.0)

The type comes from the annotation (``float`` takes TOML integers too; arrays are
``tuple[float, ...]`` etc.), choices from a ``Literal`` annotation or ``choices=``.
Checks that involve several options go in the class's ``check`` method.

Suites read options as attributes (``options.max_drop``). The values are also
readable as a mapping (``options["max_drop"]``, ``dict(options)``), so suite files
written against the former plain dicts keep working.

Pure: nothing here imports torch or reads files.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from prunecheck.core.corruption_names import ALL_CORRUPTIONS, SEVERITIES

__all__ = [
    "GATE_MODES", "MODE_SUITES", "SUITES", "OptionError", "SuiteOptions", "option",
    "AccuracyMarginOptions", "ClassAccuracyOptions", "PiesOptions", "UncertaintyOptions", "CorruptionsOptions", "FunctionalOptions",
    "InstabilityOptions", "default_gate_options",
]

GateMode = Literal["point", "confident", "lenient"]
GATE_MODES: tuple[str, ...] = typing.get_args(GateMode)

#: The suites whose gates implement the modes point / confident / lenient (SPEC 4):
#: only their tables accept ``mode``; in any other suite it is a configuration error.
#: For ``corruptions`` this covers the per-corruption accuracy gates and the family
#: gates (prune potential, excess error). Adding a suite here means giving its
#: options class a ``mode`` field (a test checks the two agree).
MODE_SUITES: tuple[str, ...] = ("accuracy_margin", "class_accuracy", "uncertainty", "corruptions", "functional")

#: Corruption names and the group words that select several of them.
CORRUPTION_CHOICES: tuple[str, ...] = ("benchmark", "extra", "all", *ALL_CORRUPTIONS)


class OptionError(ValueError):
    """An option value outside its declared type, range or choices; ``key`` names the option."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Constraint:
    """What an option accepts besides its type (numbers: per element for arrays)."""

    at_least: float | None = None  # inclusive lower bound
    above: float | None = None  # exclusive lower bound
    at_most: float | None = None  # inclusive upper bound
    choices: tuple[str, ...] | None = None  # strings (or array elements) restricted to these
    min_items: int = 0  # arrays: at least this many elements
    distinct: bool = False  # arrays: no element twice
    help: str = ""

    def describe(self) -> str:
        """The accepted range in words, e.g. ``a number >= 0 and <= 1``."""
        parts = []
        if self.at_least is not None:
            parts.append(f">= {self.at_least:g}")
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.at_most is not None:
            parts.append(f"<= {self.at_most:g}")
        return " and ".join(parts)

    def admits(self, number: float) -> bool:
        return (
            (self.at_least is None or number >= self.at_least)
            and (self.above is None or number > self.above)
            and (self.at_most is None or number <= self.at_most)
        )


def option(
    default: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    choices: tuple[str, ...] | None = None,
    min_items: int = 0,
    distinct: bool = False,
    help: str = "",
) -> Any:
    """Declare one option: its default and what else it must satisfy (a dataclass field)."""
    constraint = Constraint(at_least, above, at_most, choices, min_items, distinct, help)
    return dataclasses.field(default=default, metadata={"constraint": constraint})


@dataclass(frozen=True, eq=False)
class SuiteOptions(Mapping):
    """Base of every suite's options: attribute access plus a read-only mapping view."""

    suite: ClassVar[str] = ""

    # -- mapping view (for suites written against the former dicts) -------------------
    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({body})"

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        """Plain values (arrays as lists), e.g. for JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.items()}

    def check(self) -> None:
        """Checks across options; raise :class:`OptionError` naming the option at fault."""

    # -- validation ---------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "SuiteOptions":
        """Validate a ``[gates.<suite>]`` table (without unknown keys) into options.

        Raises:
            OptionError: the first value of the wrong type, out of range or not a
                choice; ``key`` is the option name, with ``[i]`` for array elements.
        """
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in table:
                constraint = f.metadata.get("constraint", Constraint())
                values[f.name] = _convert(f.name, table[f.name], hints[f.name], constraint)
        options = cls(**values)
        options.check()
        return options


def _convert(key: str, value: Any, annotation: Any, constraint: Constraint) -> Any:
    """Check ``value`` against a type annotation and a constraint; return the typed value."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        # ``float | None``: unset (the default None) means "not checked"; TOML has no null,
        # so a value given in the file is always the non-None type.
        if value is None:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _convert(key, value, inner, constraint)
    if origin is tuple:  # tuple[T, ...]: a TOML array
        if not isinstance(value, (list, tuple)):
            raise OptionError(key, f"expected an array, found {describe(value)}")
        items = tuple(_convert(f"{key}[{i}]", v, args[0], constraint) for i, v in enumerate(value))
        if len(items) < constraint.min_items:
            raise OptionError(
                key, f"expected an array of at least {constraint.min_items} element(s), found {describe(value)}"
            )
        if constraint.distinct and len(set(items)) != len(items):
            raise OptionError(key, f"expected distinct values, found {describe(value)}")
        return items
    if origin is Literal:
        return _choice(key, value, tuple(args))
    if annotation is bool:
        if not isinstance(value, bool):
            raise OptionError(key, f"expected a boolean (true or false), found {describe(value)}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise OptionError(key, f"expected a string, found {describe(value)}")
        return _choice(key, value, constraint.choices) if constraint.choices else value
    if annotation in (int, float):
        kinds = (int,) if annotation is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            what = "an integer" if annotation is int else "a number"
            raise OptionError(key, f"expected {what}, found {describe(value)}")
        if annotation is float and math.isnan(value):  # inf passes where the range allows it (no gate)
            raise OptionError(key, f"expected a number, found {describe(value)}")
        if not constraint.admits(value):
            what = "an integer" if annotation is int else "a number"
            raise OptionError(key, f"expected {what} {constraint.describe()}, found {describe(value)}")
        return annotation(value)
    raise TypeError(f"option {key!r}: unsupported annotation {annotation!r}")  # a schema bug


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        import difflib

        close = difflib.get_close_matches(value, choices, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        shown = ", ".join(repr(c) for c in choices)
        raise OptionError(key, f"expected one of {shown}, found {describe(value)}{hint}")
    return value


def describe(value: Any) -> str:
    """TOML-flavoured description of a found value, e.g. ``string 'onnx'``, ``array [1.0]``."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    kinds = ((int, "integer"), (float, "float"), (str, "string"), ((list, tuple), "array"))
    for kind, word in kinds:
        if isinstance(value, kind):
            shown = repr(list(value)) if isinstance(value, tuple) else repr(value)
            return f"{word} {shown if len(shown) <= 80 else shown[:77] + '...'}"
    if isinstance(value, Mapping):
        return f"table with keys {list(value)!r}"
    return f"{type(value).__name__} {value!r}"


# -- the suites ---------------------------------------------------------------------------
FRACTION = dict(at_least=0.0, at_most=1.0)  # accuracies, errors and rates (SPEC: fractions)


@dataclass(frozen=True, eq=False)
class AccuracyMarginOptions(SuiteOptions):
    """``[gates.accuracy_margin]`` (SPEC 4.1)."""

    suite: ClassVar[str] = "accuracy_margin"
    mode: GateMode = option("point")
    max_drop: float = option(0.005, **FRACTION)
    # drop / accuracy(parent) as well (0.01 = 1 % of the parent's accuracy); None = not checked
    max_relative_drop: float | None = option(None, **FRACTION)


@dataclass(frozen=True, eq=False)
class ClassAccuracyOptions(SuiteOptions):
    """``[gates.class_accuracy]``: the worst class's accuracy drop (Hooker et al. 2019).

    0.10 sits more than 3 standard errors above the noise of a 200-image class at
    90 % accuracy (docs/metrics.md); classes with fewer than ``min_class_images``
    images are reported, not gated.
    """

    suite: ClassVar[str] = "class_accuracy"
    mode: GateMode = option("point")
    max_class_drop: float = option(0.10, **FRACTION)
    min_class_images: int = option(50, at_least=1)
    report_classes: int = option(10, at_least=1)


@dataclass(frozen=True, eq=False)
class PiesOptions(SuiteOptions):
    """``[gates.pies]``: pruning identified exemplars (Hooker et al. 2019). No gate modes."""

    suite: ClassVar[str] = "pies"
    max_pie_fraction: float | None = option(None, **FRACTION)  # None: reported, not gated
    thumbnails: int = option(16, at_least=0)
    thumbnail_size: int = option(64, at_least=8)


@dataclass(frozen=True, eq=False)
class UncertaintyOptions(SuiteOptions):
    """``[gates.uncertainty]`` (SPEC 4.2; seeds 000, 001, 003)."""

    suite: ClassVar[str] = "uncertainty"
    mode: GateMode = option("point")
    max_ause_increase: float = option(0.01, at_least=0.0)
    max_ece_increase: float = option(0.02, **FRACTION)
    max_nll_increase: float = option(0.1, at_least=0.0)
    ece_bins: int = option(15, at_least=1)
    ause_steps: int = option(50, at_least=2)
    # msp: 1 - max p; variance: predicted class variance over MC passes / ensemble members
    ause_uncertainty: Literal["msp", "variance"] = option("msp")
    # mc_dropout / ensemble: "prunecheck" (mean probs, ECE on max p) or "seed000" (softmax of
    # mean logits, logit variance for AUSE, ECE on normalised variance; docs/uncertainty.md)
    protocol: Literal["prunecheck", "seed000"] = option("prunecheck")
    mc_passes: int = option(5, at_least=2)  # one pass has no spread to measure
    ood_max_entropy_drop: float = option(0.05, at_least=0.0)  # nats
    ood_max_disagreement_drop: float = option(0.05, at_least=0.0)  # ensembles, nats
    # a rank correlation needs at least two distinct radii
    blur_radii: tuple[float, ...] = option((0.0, 1.0, 2.0, 3.0, 5.0), at_least=0.0, min_items=2, distinct=True)
    min_blur_spearman: float = option(0.8, at_least=-1.0, at_most=1.0)


@dataclass(frozen=True, eq=False)
class CorruptionsOptions(SuiteOptions):
    """``[gates.corruptions]`` (SPEC 4.3; seed 002)."""

    suite: ClassVar[str] = "corruptions"
    mode: GateMode = option("point")
    # names, or "benchmark" (15), "extra" (4), "all" (19); [] for noise levels only
    corruptions: tuple[str, ...] = option(("benchmark",), choices=CORRUPTION_CHOICES, distinct=True)
    severities: tuple[int, ...] = option((3,), at_least=min(SEVERITIES), at_most=max(SEVERITIES), distinct=True)
    # L-inf uniform noise eps (normalised space) counted as extra corruptions; 0 = none
    noise_levels: tuple[float, ...] = option((0.0,), at_least=0.0)
    max_drop: float = option(0.005, **FRACTION)
    max_relative_drop: float | None = option(None, **FRACTION)  # as [gates.accuracy_margin]
    delta: float = option(0.005, **FRACTION)  # prune potential: error within delta of the parent's
    policy: Literal["mean", "min"] = option("mean")  # over the configured corruptions
    max_excess_error_diff: float = option(0.01, **FRACTION)

    def check(self) -> None:
        if self.corruptions and not self.severities:
            raise OptionError("severities", "expected at least one severity in 1..5 for the configured corruptions, found []")
        if not self.corruptions and not any(eps > 0 for eps in self.noise_levels):
            raise OptionError(
                "corruptions",
                "expected at least one corruption or a noise level > 0, found corruptions = [] and "
                f"noise_levels = {list(self.noise_levels)}",
            )


@dataclass(frozen=True, eq=False)
class FunctionalOptions(SuiteOptions):
    """``[gates.functional]`` (SPEC 4.4; seed 002, Sec. 4)."""

    suite: ClassVar[str] = "functional"
    mode: GateMode = option("point")
    eps: tuple[float, ...] = option((0.0, 0.1, 0.2, 0.3), at_least=0.0, min_items=1, distinct=True)
    repetitions: int = option(10, at_least=1)  # seed 002 used 100; docs/similarity_and_instability.md
    max_images: int = option(1000, at_least=1)
    min_agreement: float = option(0.9, **FRACTION)
    # pruned-vs-parent agreement minus reference-vs-parent, per eps
    min_reference_margin: float = option(0.0, at_least=-1.0, at_most=1.0)
    backselect: bool = option(False)
    backselect_images: int = option(16, at_least=1)
    backselect_pixels_per_round: int = option(64, at_least=1)
    backselect_keep_fraction: float = option(0.1, above=0.0, at_most=1.0)


@dataclass(frozen=True, eq=False)
class InstabilityOptions(SuiteOptions):
    """``[gates.instability]`` (SPEC 4.5; seed 004). No gate modes."""

    suite: ClassVar[str] = "instability"
    max_instability: float = option(0.5, **FRACTION)  # per pruning step (schedule / pre_finetune)
    # no step known: the parent with the final zero mask in one shot is a different quantity
    # ("one-shot mask damage"); it fails only when the mask alone leaves < 1/5 of the accuracy
    max_mask_damage: float = option(0.8, **FRACTION)


#: Every suite's options class by ``[gates.<suite>]`` name; read when a config is parsed.
SUITES: dict[str, type[SuiteOptions]] = {
    cls.suite: cls
    for cls in (
        AccuracyMarginOptions, ClassAccuracyOptions, PiesOptions, UncertaintyOptions, CorruptionsOptions,
        FunctionalOptions, InstabilityOptions,
    )
}


def default_gate_options() -> dict[str, SuiteOptions]:
    """Every registered suite's options at their defaults."""
    return {suite: cls() for suite, cls in SUITES.items()}
