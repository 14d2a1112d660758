"""Pruning instability of each pair's pruning step(s) (SPEC 4.5; seed 004, Sec. 3).

instability = (acc_before - acc_after) / acc_before, where acc_after is the accuracy right after
pruning, before fine-tuning. The step(s) come from the pair (``prunecheck.gates.stability``), first
match wins:

- ``schedule``: every pre-fine-tune checkpoint is a step; step k starts from the fine-tuned model of
  step k-1 (``schedule_finetuned[k-2]``, or the ``pruned`` model of the pair whose ``pre_finetune`` is
  checkpoint k-1), or from the parent when nothing names it (marked in the report);
- ``pre_finetune``: one step, parent -> that checkpoint;
- otherwise no step is known: the parent with the pruned model's final zero mask applied in one shot
  is a different quantity, "one-shot mask damage", gated by ``max_mask_damage`` (``mask_mode``
  "unstructured": exact zeros; "channels": all-zero output channels, with bias and BatchNorm).

Each step must satisfy instability <= ``[gates.instability] max_instability``; the per-step series
goes to the report's "Pruning instability" section ("parent" = acc_before, "pruned" = acc_after).
An ensemble pair has no single zero mask: it runs only with a pre-fine-tune checkpoint or schedule.
"""

import pytest

from prunecheck.gates import stability

GATE = "instability"


@pytest.mark.prunecheck_pairs.with_args(stability.has_steps)
def test_pruning_instability(pair, gate):
    gate.check(stability.pruning_instability(pair.step_accuracies(), pair.spec, gate.config(GATE)))
