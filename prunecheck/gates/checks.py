"""The ``gate`` fixture's value: computes a gate from predictions, records it, fails the test.

Suites stay declarative: they name the metric and the threshold key; this module
turns parent/pruned predictions into values, a degradation, an optional paired
bootstrap interval (for the ``confident`` and ``lenient`` modes), applies the
mode, records the :class:`GateResult` on the test report (so it survives
pytest-xdist and reaches JUnit XML) and fails the test with the full message.
A metric that cannot be computed fails the gate closed, with the reason.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from prunecheck.config.options import SuiteOptions
from prunecheck.config.settings import Settings
from prunecheck.gates.decide import Direction, GateResult, Outcome, decide, fail_closed, with_relative_drop

GATE_PROPERTY = "prunecheck_gate"
DATA_PROPERTY = "prunecheck_data"
# Marks tests that use prunecheck fixtures, so their errors count as failed gates.
TEST_PROPERTY = "prunecheck_test"


class GateChecker:
    """Per-test helper handed to suites as the ``gate`` fixture."""

    def __init__(self, settings: Settings, node: pytest.Item):
        self.settings = settings
        self.node = node
        self.results: list[GateResult] = []

    def config(self, suite: str) -> SuiteOptions:
        """Typed options of ``suite`` (``prunecheck.config.options``; defaults where not configured)."""
        return self.settings.gates[suite]

    # -- building results ---------------------------------------------------------
    def degradation(
        self,
        gate: str,
        metric: str,
        parent,
        pruned,
        *,
        threshold_key: str,
        label: str | None = None,
        subject: str = "",
        metric_kwargs: dict[str, Any] | None = None,
    ) -> GateResult:
        """Gate on the degradation of ``metric`` (from prunecheck.metrics) from parent to pruned.

        ``parent``/``pruned`` are :class:`prunecheck.engine.predictor.Predictions` of the same view.
        """
        from prunecheck.engine import compact
        from prunecheck import metrics

        options = self.config(gate)
        threshold = options[threshold_key]
        mode = options.get("mode", "point")  # suites without gate modes compare the point estimate
        kwargs = metric_kwargs or {}
        view = parent.view.id
        label = label or f"{metric} {'drop' if metrics.METRICS[metric].higher_is_better else 'increase'}"
        # Accuracy-type suites may also bound the drop relative to the parent (both must hold).
        max_relative_drop = options.get("max_relative_drop")

        def build() -> GateResult:
            # From the rows, or from per-sample summaries where the view is stored compact.
            parent_value = compact.score(parent, metric, **kwargs)
            pruned_value = compact.score(pruned, metric, **kwargs)
            value = metrics.degradation(metric, parent_value, pruned_value)
            ci = None
            if mode != "point":
                boot = compact.paired_bootstrap(
                    metric, parent, pruned,
                    n_resamples=self.settings.run.bootstrap_resamples, seed=self.settings.run.seed,
                    as_degradation=True, metric_kwargs=kwargs or None,
                )
                ci = (boot.low, boot.high)
            return decide(
                name=gate, metric=label, value=value, threshold=threshold, threshold_name=threshold_key,
                direction="max", mode=mode, ci=ci, parent=parent_value, pruned=pruned_value,
                subject=subject, view=view,
            )

        result = fail_closed(
            build, name=gate, metric=label, threshold=threshold, threshold_name=threshold_key,
            subject=subject, view=view,
        )
        return with_relative_drop(result, max_relative_drop)

    def value(
        self,
        gate: str,
        metric: str,
        compute: Callable[[], float],
        *,
        threshold_key: str,
        direction: Direction,
        subject: str = "",
        view: str = "nominal",
        parent: float | None = None,
        pruned: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> GateResult:
        """Gate on a value computed by ``compute`` (point mode); failures to compute fail closed."""
        threshold = self.config(gate)[threshold_key]
        return fail_closed(
            lambda: decide(
                name=gate, metric=metric, value=float(compute()), threshold=threshold,
                threshold_name=threshold_key, direction=direction, parent=parent, pruned=pruned,
                subject=subject, view=view, details=details,
            ),
            name=gate, metric=metric, threshold=threshold, threshold_name=threshold_key,
            direction=direction, subject=subject, view=view,
        )

    # -- recording ----------------------------------------------------------------
    def check(self, *items: GateResult | Outcome) -> None:
        """Record every result (and an outcome's report data), then fail the test listing all
        the failed ones.

        When every failed gate is listed in its pair's or family's ``expect_fail``,
        the test is reported as xfail with the same message instead.
        """
        results: list[GateResult] = []
        for item in items:
            if isinstance(item, Outcome):
                for section, subject, payload in item.records:
                    self.record(section, subject, payload)
                results.extend(item.results)
            else:
                results.append(item)
        for result in results:
            self.results.append(result)
            self.node.user_properties.append((GATE_PROPERTY, json.dumps(result.to_dict(), allow_nan=True)))
        failed = [result for result in results if not result.passed]
        if not failed:
            return
        # The first line is what pytest's short summary shows: it carries the first gate's message.
        lines = [f"[{r.subject}{'/' + r.view if r.view != 'nominal' else ''}] {r.message}" for r in failed]
        text = "\n".join(lines)
        # ``from None``: a suite that checks a failed-closed result inside its ``except`` block
        # must not print the caught error again as "During handling of the above exception".
        if all(r.name in self._expected_failures(r.subject) for r in failed):
            raise pytest.xfail.Exception("known failure (expect_fail): " + text) from None
        more = f" (and {len(failed) - 1} more below)" if len(failed) > 1 else ""
        message = f"prunecheck gate failed: {lines[0]}{more}" + "".join("\n" + line for line in lines[1:])
        raise pytest.fail.Exception(message, pytrace=False) from None

    def _expected_failures(self, subject: str) -> tuple[str, ...]:
        for spec in (*self.settings.pairs, *self.settings.families):
            if spec.name == subject:
                return spec.expect_fail
        return ()

    def record(self, section: str, subject: str, payload: dict[str, Any]) -> None:
        """Attach report data (tables, curves) that is not a gate, e.g. efficiency facts."""
        entry = {"section": section, "subject": subject, "payload": payload}
        self.node.user_properties.append((DATA_PROPERTY, json.dumps(entry, allow_nan=True)))
