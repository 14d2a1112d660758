"""Pruning instability of each pair's pruning step(s) (SPEC 4.5; seed 004, Sec. 3).

instability = (acc_before - acc_after) / acc_before, where acc_after is the
accuracy right after pruning, before fine-tuning. The step(s) come from the pair
(see ``prunecheck.stability``), first match wins:

- ``schedule``: every pre-fine-tune checkpoint is a step; step k starts from the
  fine-tuned model of step k-1 (``schedule_finetuned[k-2]``, or the ``pruned``
  model of the pair whose ``pre_finetune`` is checkpoint k-1), or from the parent
  when nothing names it (marked in the report);
- ``pre_finetune``: one step, parent -> that checkpoint;
- otherwise: one step, parent -> the parent with the pruned model's zero mask
  (``mask_mode`` "unstructured": exact zeros; "channels": all-zero output
  channels, with their bias and BatchNorm gamma/beta).

Each step must satisfy instability <= ``[gates.instability] max_instability``;
the whole per-step series goes to the report's "Pruning instability" section.
In the gate table, "parent" is acc_before and "pruned" is acc_after of the step.

An ensemble pair has no single zero mask: it runs only when it names its
pre-fine-tune checkpoint or schedule.
"""

from __future__ import annotations

import pytest

from prunecheck.gates import COMPUTE_ERRORS, cannot_compute, decide, failed_closed

GATE = "instability"


def _label(outcome, spec) -> str:
    step = outcome.step
    if step.kind == "mask":
        return f"instability of the parent with the {spec.mask_mode} zero mask of '{spec.pruned}'"
    where = f"step {step.index}/{step.total}: " if step.total > 1 else ""
    if step.acc_before_source == "finetuned":
        start = f"fine-tuned '{step.before}' (accuracy {outcome.acc_before:.4f})"
    elif step.acc_before_source == "parent-fallback":
        start = f"parent '{step.before}' (no pair names the fine-tuned model of step {step.index - 1})"
    else:
        start = f"parent '{step.before}'"
    return f"instability {where}{start} -> '{outcome.after_name}' before fine-tuning"


def _has_steps(spec, settings) -> bool:
    return bool(spec.pre_finetune or spec.schedule or not settings.models[spec.pruned].members)


@pytest.mark.prunecheck_pairs.with_args(_has_steps)
def test_pruning_instability(pair, gate):
    from prunecheck.stability import evaluate_steps

    threshold = gate.config(GATE)["max_instability"]
    try:
        outcomes = evaluate_steps(pair.workspace, pair.spec, pair.workspace.settings.pairs)
    except COMPUTE_ERRORS as exc:
        gate.check(failed_closed(
            name=GATE, metric="pruning instability", threshold=threshold, threshold_name="max_instability",
            reason=cannot_compute(exc), subject=pair.name,
        ))
        return
    gate.record(GATE, pair.name, {
        "parent": pair.spec.parent,
        "pruned": pair.spec.pruned,
        "mask_mode": pair.spec.mask_mode,
        "source": outcomes[0].step.kind,
        "max_instability": threshold,
        "steps": [outcome.to_dict() for outcome in outcomes],
    })
    gate.check(*[
        decide(
            name=GATE, metric=_label(outcome, pair.spec), value=outcome.instability, threshold=threshold,
            threshold_name="max_instability", direction="max",
            parent=outcome.acc_before, pruned=outcome.acc_after, subject=pair.name,
            details=outcome.to_dict(),
        )
        for outcome in outcomes
    ])
