"""The ``gate`` fixture's value: records gate results and report data on the test, fails the test.

The gates themselves are pure functions (:mod:`prunecheck.gates`); this recorder only
hands them the suite's options and the run's bootstrap settings, attaches what they
return to the test report (``user_properties``, so it survives pytest-xdist and
reaches JUnit XML) and fails the test with the full message, or marks it xfail when
every failed gate is a declared ``expect_fail``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from prunecheck.config.options import SuiteOptions
from prunecheck.config.settings import Settings
from prunecheck.gates.decide import GateResult, Outcome
from prunecheck.report.record import DATA_PROPERTY, GATE_PROPERTY


class GateRecorder:
    """Per-test helper handed to suites as the ``gate`` fixture."""

    def __init__(self, settings: Settings, node: pytest.Item):
        self.settings = settings
        self.node = node
        self.results: list[GateResult] = []

    def config(self, suite: str) -> SuiteOptions:
        """Typed options of ``suite`` (``prunecheck.config.options``; defaults where not configured)."""
        return self.settings.gates[suite]

    @property
    def bootstrap(self) -> dict[str, int]:
        """The run's paired-bootstrap settings as the gate functions take them:
        ``{"n_resamples": [run] bootstrap_resamples, "seed": [run] seed}``."""
        return {"n_resamples": self.settings.run.bootstrap_resamples, "seed": self.settings.run.seed}

    def degradation(self, gate: str, metric: str, parent, pruned, **kwargs: Any) -> GateResult:
        """:func:`prunecheck.gates.accuracy.degradation` with ``gate``'s options and the run's bootstrap."""
        from prunecheck.gates import accuracy

        return accuracy.degradation(metric, parent, pruned, self.config(gate), gate=gate, **self.bootstrap, **kwargs)

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
