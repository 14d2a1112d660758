"""Pruning instability of each pair's pruning step(s) (SPEC 4.5; seed 004, Sec. 3).

instability = (acc_before - acc_after) / acc_before, where acc_after is the
accuracy right after pruning, before fine-tuning. The step(s) come from the pair
(see ``prunecheck.gates.stability``), first match wins:

- ``schedule``: every pre-fine-tune checkpoint is a step; step k starts from the
  fine-tuned model of step k-1 (``schedule_finetuned[k-2]``, or the ``pruned``
  model of the pair whose ``pre_finetune`` is checkpoint k-1), or from the parent
  when nothing names it (marked in the report);
- ``pre_finetune``: one step, parent -> that checkpoint;
- otherwise no step is known: the parent with the pruned model's final zero mask
  applied in one shot is a different quantity, "one-shot mask damage", gated by
  ``max_mask_damage`` (``mask_mode`` "unstructured": exact zeros; "channels":
  all-zero output channels, with their bias and BatchNorm gamma/beta).

Each step must satisfy instability <= ``[gates.instability] max_instability``;
the whole per-step series goes to the report's "Pruning instability" section.
In the gate table, "parent" is acc_before and "pruned" is acc_after of the step.

An ensemble pair has no single zero mask: it runs only when it names its
pre-fine-tune checkpoint or schedule.
"""

from __future__ import annotations

import pytest

from prunecheck.gates.decide import COMPUTE_ERRORS, cannot_compute, failed_closed

GATE = "instability"


def _has_steps(spec, settings) -> bool:
    return bool(spec.pre_finetune or spec.schedule or not settings.models[spec.pruned].members)


@pytest.mark.prunecheck_pairs.with_args(_has_steps)
def test_pruning_instability(pair, gate):
    from prunecheck.gates.stability import evaluate_steps, failure_threshold, step_results

    options = gate.config(GATE)
    try:
        outcomes = evaluate_steps(pair.workspace, pair.spec, pair.workspace.settings.pairs)
    except COMPUTE_ERRORS as exc:
        metric, key, threshold = failure_threshold(pair.spec, options)
        gate.check(failed_closed(
            name=GATE, metric=metric, threshold=threshold, threshold_name=key,
            reason=cannot_compute(exc), subject=pair.name,
        ))
        return
    gate.record(GATE, pair.name, {
        "parent": pair.spec.parent,
        "pruned": pair.spec.pruned,
        "mask_mode": pair.spec.mask_mode,
        "source": outcomes[0].step.kind,
        "max_instability": options["max_instability"],
        "max_mask_damage": options["max_mask_damage"],
        "steps": [outcome.to_dict() for outcome in outcomes],
    })
    gate.check(*step_results(outcomes, pair.spec, options, name=GATE))
