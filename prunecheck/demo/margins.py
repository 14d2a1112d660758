"""How far each demo verdict sits from its threshold, in bootstrap standard errors.

A verdict is platform-proof when the estimate is far from the threshold compared
with its sampling noise: ``|estimate - threshold| >= 3 SE``. The standard error
comes from a paired bootstrap over the test images, computed the same way for
*every* gate the suites run, whatever the configuration declares:

1. the suites run once, normally (in-process ``pytest``, demo settings);
2. right after each test node, its test function is called again ``replicates``
   times; in replicate *r* every prediction the engine hands out (any model, any
   view: nominal, corrupted, noisy, blurred, pre-fine-tune checkpoints, OOD) has
   its rows resampled with one index vector per dataset size, drawn from
   ``numpy.random.default_rng([seed, r, N])``: the same images for every model
   and view of a dataset, as :func:`prunecheck.metrics.paired_bootstrap` does
   for two models;
3. each gate's SE is the standard deviation of its value over the replicates.

Nothing is predicted twice: replicates reuse the in-memory predictions of the
first call. Gates added later (another corruption severity, a per-class gate)
are covered without changes here. A gate whose replicates are not all finite
gets no SE and counts as not clear.

``prunecheck demo margins`` prints the table; tests/test_demo_margins.py
asserts every gate is clear.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from prunecheck.gates.decide import GateResult

#: Required distance to the threshold, in standard errors.
MIN_STANDARD_ERRORS = 3.0
DEFAULT_REPLICATES = 100
SUITES_TEMPLATE = Path(__file__).resolve().parent.parent / "suites_template"


@dataclass
class GateMargin:
    """One gate of one test node, with its bootstrap standard error.

    Attributes:
        node: the test node name, e.g. ``test_corruption_margin[wt95-fog-1]``.
        result: the gate's result on the full test set.
        replicate_values: the gate's value in each bootstrap replicate.
        expected_pass: the declared verdict of the node (prunecheck.demo.expectations).
    """

    node: str
    result: GateResult
    replicate_values: list[float]
    expected_pass: bool = True

    @property
    def se(self) -> float:
        """Standard deviation of the replicate values; NaN when any replicate is not finite."""
        values = np.asarray(self.replicate_values, dtype=float)
        if values.size < 2 or not np.all(np.isfinite(values)):
            return math.nan
        return float(values.std(ddof=1))

    @property
    def distance(self) -> float:
        """Signed distance to the threshold, positive on the passing side."""
        return self.result.margin

    @property
    def standard_errors(self) -> float:
        """``|estimate - threshold| / SE`` (inf when SE is 0 and the distance is not)."""
        se, distance = self.se, abs(self.distance)
        if math.isnan(se) or not math.isfinite(distance):
            return math.nan
        if se == 0.0:
            return math.inf if distance > 0 else 0.0
        return distance / se

    @property
    def clear(self) -> bool:
        """At least :data:`MIN_STANDARD_ERRORS` from the threshold (NaN is never clear)."""
        ratio = self.standard_errors
        return not math.isnan(ratio) and ratio >= MIN_STANDARD_ERRORS

    @property
    def label(self) -> str:
        r = self.result
        return f"{self.node} :: {r.metric}" if r.metric else self.node


class _Resampler:
    """Resamples the rows of every engine prediction while a replicate is active."""

    def __init__(self, seed: int):
        self.seed = seed
        self.replicate: int | None = None
        self._indices: dict[int, np.ndarray] = {}

    def indices(self, n: int) -> np.ndarray:
        if n not in self._indices:
            rng = np.random.default_rng([self.seed, int(self.replicate or 0), n])
            self._indices[n] = rng.integers(0, n, size=n)
        return self._indices[n]

    def start(self, replicate: int) -> None:
        self.replicate, self._indices = replicate, {}

    def stop(self) -> None:
        self.replicate, self._indices = None, {}

    def wrap(self, predict_many: Callable) -> Callable:
        import torch

        memo: dict[tuple, list] = {}
        resampler = self

        def predict(engine, models, dataset, view=None, **kwargs):
            # by fingerprint: a noise view is a fresh dataset object each time it is applied
            key = (id(engine), tuple(id(m) for m in models), dataset.fingerprint(), view,
                   tuple(sorted(kwargs.items())))
            if key not in memo:
                args = (view,) if view is not None else ()
                memo[key] = (predict_many(engine, models, dataset, *args, **kwargs), dataset)
            predictions, _ = memo[key]
            if resampler.replicate is None:
                return predictions
            out = []
            for p in predictions:
                idx = resampler.indices(int(p.labels.shape[0]))
                rows = torch.from_numpy(idx).to(p.labels.device)
                if p.log_probs is None:  # a compact entry (corruption views): resample its summaries
                    summary = dataclasses.replace(
                        p.compact, **{f.name: getattr(p.compact, f.name)[idx] for f in dataclasses.fields(p.compact)})
                    out.append(dataclasses.replace(p, compact=summary, labels=p.labels[rows]))
                else:
                    out.append(dataclasses.replace(p, log_probs=p.log_probs[:, rows], labels=p.labels[rows]))
            return out

        return predict


class MarginProbe:
    """pytest plugin: re-runs each prunecheck test node on bootstrap replicates of its predictions."""

    def __init__(self, replicates: int = DEFAULT_REPLICATES, seed: int = 0,
                 progress: Callable[[GateMargin], None] | None = None):
        if replicates < 2:
            raise ValueError(f"replicates: expected an integer >= 2, found {replicates}")
        self.replicates = replicates
        self.resampler = _Resampler(seed)
        self.margins: list[GateMargin] = []
        self.outcomes: dict[str, str] = {}
        self._patched = False
        self.progress = progress or (lambda margin: None)

    def _patch(self) -> None:
        if self._patched:
            return
        from prunecheck.engine.predictor import PredictionEngine

        self._original = PredictionEngine.predict_many
        PredictionEngine.predict_many = self.resampler.wrap(self._original)
        self._patched = True

    def unpatch(self) -> None:
        if self._patched:
            from prunecheck.engine.predictor import PredictionEngine

            PredictionEngine.predict_many = self._original
            self._patched = False

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function):
        self._patch()
        outcome = yield
        checker = pyfuncitem.funcargs.get("gate")
        if checker is None or not checker.results:
            return
        from prunecheck.demo.expectations import KNOWN_FAILURES

        nominal = list(checker.results)
        values: list[list[float]] = [[] for _ in nominal]
        names = pyfuncitem._fixtureinfo.argnames
        for replicate in range(self.replicates):
            replicate_checker = type(checker)(checker.settings, _Node())  # a fresh gate recorder
            kwargs = {name: _fresh(pyfuncitem.funcargs[name]) for name in names}
            kwargs["gate"] = replicate_checker
            self.resampler.start(replicate)
            _forget_memos()
            try:
                pyfuncitem.obj(**kwargs)
            except (pytest.fail.Exception, pytest.xfail.Exception, pytest.skip.Exception):
                pass
            finally:
                self.resampler.stop()
                _forget_memos()
            got = replicate_checker.results
            for i, result in enumerate(nominal):
                same = i < len(got) and got[i].name == result.name
                values[i].append(got[i].value if same else math.nan)
        expected_pass = pyfuncitem.name not in KNOWN_FAILURES
        for result, replicate_values in zip(nominal, values):
            self.margins.append(GateMargin(pyfuncitem.name, result, replicate_values, expected_pass))
            self.progress(self.margins[-1])
        del outcome

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            status = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            if report.when == "call" or status != "passed":
                self.outcomes[report.nodeid] = status


class _Node:
    """Stands in for a test item when a replicate records gate results."""

    def __init__(self) -> None:
        self.user_properties: list = []


def _fresh(value: Any) -> Any:
    """A shallow copy of dataclass fixture values (Pair, Family), so identity-keyed memos miss."""
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def _forget_memos() -> None:
    """Drop results memoised from predictions (family curves, noise similarity), so a replicate recomputes them."""
    from prunecheck.session import families, similarity

    families.forget()
    similarity.forget()


def measure_margins(
    cache_dir: Path,
    *,
    suites: Path = SUITES_TEMPLATE,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    extra_args: Sequence[str] = (),
    progress: Callable[[GateMargin], None] | None = None,
) -> tuple[list[GateMargin], dict[str, str], int]:
    """Run the demo suites in-process with a :class:`MarginProbe`.

    Args:
        cache_dir: prediction / corruption cache (shared with ``pytest suites/`` runs).
        suites: the suites folder (default: the package's copy of ``suites/``).
        replicates: bootstrap replicates per gate.
        seed: seed of the resampled indices.
        extra_args: more pytest arguments (e.g. ``-k wt95``).
        progress: called with each gate's margin as soon as it is measured.

    Returns:
        (margins of every gate, outcome of every test node, pytest exit code).
    """
    probe = MarginProbe(replicates, seed, progress)
    with tempfile.TemporaryDirectory(prefix="prunecheck-margins-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [
            str(suites), "-c", str(ini), "--rootdir", tmp, "-p", "no:cacheprovider", "-q", "--no-header",
            "-W", "ignore", "--prunecheck-cache-dir", str(cache_dir), "--prunecheck-report-dir", str(Path(tmp) / "r"),
            *extra_args,
        ]
        try:
            code = int(pytest.main(args, plugins=[probe]))
        finally:
            probe.unpatch()
    return probe.margins, probe.outcomes, code


def format_line(m: GateMargin) -> str:
    """One gate's margin on one line (progress output)."""
    r = m.result
    return (f"{m.label}: estimate {r.value:.4f} threshold {r.threshold:g} SE {m.se:.4f} -> "
            f"{m.standard_errors:.1f} SE ({'pass' if r.passed else 'FAIL'}, {'ok' if m.clear else 'TOO CLOSE'})")


def format_table(margins: Sequence[GateMargin]) -> str:
    """The margins as a fixed-width table, least clear first."""
    def order(m: GateMargin) -> float:
        ratio = m.standard_errors
        return -1.0 if math.isnan(ratio) else ratio

    rows = [("gate", "expected", "verdict", "estimate", "threshold", "SE", "|est-thr|/SE", "")]
    for m in sorted(margins, key=order):
        r = m.result
        ratio = m.standard_errors
        rows.append((
            m.label if len(m.label) <= 110 else m.label[:107] + "...",
            "pass" if m.expected_pass else "fail",
            "pass" if r.passed else "FAIL",
            f"{r.value:.4f}", f"{r.threshold:g}", f"{m.se:.4f}",
            "nan" if math.isnan(ratio) else ("inf" if math.isinf(ratio) else f"{ratio:.1f}"),
            "ok" if m.clear else "TOO CLOSE",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def too_close(margins: Sequence[GateMargin]) -> list[GateMargin]:
    """The gates closer than :data:`MIN_STANDARD_ERRORS` standard errors to their threshold."""
    return [m for m in margins if not m.clear]


__all__ = [
    "DEFAULT_REPLICATES", "GateMargin", "MIN_STANDARD_ERRORS", "MarginProbe", "format_table", "measure_margins",
    "too_close",
]
