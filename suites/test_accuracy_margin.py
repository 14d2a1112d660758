"""Accuracy margin (SPEC 4.1) and efficiency facts (SPEC 4.6) for every configured pair.

accuracy(parent) - accuracy(pruned) must stay within ``[gates.accuracy_margin] max_drop``
on nominal data. Efficiency facts are reported with every pair; that test fails
only when they cannot be computed.
"""


def test_accuracy_margin(pair, gate):
    parent, pruned = pair.predictions()
    gate.check(
        gate.degradation(
            "accuracy_margin", "accuracy", parent, pruned, threshold_key="max_drop", subject=pair.name
        )
    )


def test_efficiency_facts(pair, gate):
    gate.record("efficiency", pair.name, pair.efficiency())
