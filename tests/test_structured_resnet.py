"""The done-when check of structured pruning: a Torch-Pruning 50% channel-pruned ResNet-18
against its parent, shrunk and masked, saved as .pt2, as tp.state_dict and as ONNX."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.nn.efficiency import efficiency_facts, pair_ratios
from prunecheck.nn.models import load_model, model_from_module

tp = pytest.importorskip("torch_pruning")
torchvision = pytest.importorskip("torchvision")

INPUT = (3, 32, 32)
FACTORY = "torchvision.models:resnet18"
KWARGS = {"num_classes": 10}


def _prune_shrunk_and_masked(parent: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, float]:
    """Torch-Pruning removes 50% of the channels of every coupled group (fc outputs kept); the masked
    twin gets exactly the same channels zeroed (weights, biases, BN gamma/beta, consumers' input
    slices) instead of removed; the filters-only twin zeroes only the producers' side, as a masked
    filter-pruning method does, leaving the consumers' input slices non-zero."""
    shrunk, masked, filters_only = copy.deepcopy(parent), copy.deepcopy(parent), copy.deepcopy(parent)
    example = torch.zeros(1, *INPUT)
    _, before = tp.utils.count_ops_and_params(shrunk, example)
    pruner = tp.pruner.MetaPruner(
        shrunk, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
        ignored_layers=[shrunk.fc],
    )
    names = {module: name for name, module in shrunk.named_modules()}
    twins = dict(masked.named_modules())
    filter_twins = dict(filters_only.named_modules())
    with torch.no_grad():
        for group in pruner.step(interactive=True):
            for dep, idxs in group:
                name = names.get(dep.target.module)
                if name is None:  # an op node (residual add, flatten): no weights
                    continue
                twin = twins[name]
                if pruner.DG.is_out_channel_pruning_fn(dep.handler):
                    for module in (twin, filter_twins[name]):
                        for tensor in (module.weight, getattr(module, "bias", None)):
                            if tensor is not None:
                                tensor[idxs] = 0
                elif pruner.DG.is_in_channel_pruning_fn(dep.handler) and twin.weight.dim() > 1:
                    twin.weight[:, idxs] = 0
            group.prune()
    _, after = tp.utils.count_ops_and_params(shrunk, example)
    return shrunk.eval(), masked.eval(), filters_only.eval(), 1 - after / before


@pytest.mark.slow
def test_torch_pruning_resnet18_in_every_format(tmp_path, capsys):
    torch.manual_seed(0)
    parent = torchvision.models.resnet18(**KWARGS).eval()
    shrunk, masked, filters_only, tp_reduction = _prune_shrunk_and_masked(parent)
    torch.save(parent.state_dict(), tmp_path / "parent.pt")
    torch.save(tp.state_dict(shrunk), tmp_path / "pruned.pth")
    program = torch.export.export(shrunk, (torch.zeros(2, *INPUT),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "pruned.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(shrunk, (torch.zeros(2, *INPUT),), str(tmp_path / "pruned.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})

    parent_model = load_model(ModelSpec(name="parent", factory=FACTORY, kwargs=KWARGS, weights=tmp_path / "parent.pt"))
    variants = {
        "masked": model_from_module("masked", masked),
        "filters-only": model_from_module("filters-only", filters_only),
        "shrunk": model_from_module("shrunk", shrunk),
        "tp.state_dict": load_model(ModelSpec(name="tp", factory=FACTORY, kwargs=KWARGS,
                                              weights=tmp_path / "pruned.pth", format="torch_pruning")),
        "exported": load_model(ModelSpec(name="pt2", weights=tmp_path / "pruned.pt2", format="exported")),
        "onnx": load_model(ModelSpec(name="onnx", weights=tmp_path / "pruned.onnx", format="onnx")),
    }
    parent_facts = efficiency_facts(parent_model, INPUT)
    facts = {k: efficiency_facts(v, INPUT) for k, v in variants.items()}
    ratios = {k: pair_ratios(parent_facts, f) for k, f in facts.items()}
    with capsys.disabled():
        print(f"\nTorch-Pruning parameter reduction (all parameters): {tp_reduction:.4f}")
        print(f"parent: {parent_facts.prunable_parameters} prunable, {parent_facts.flops / 1e6:.2f} MFLOPs")
        for k, r in ratios.items():
            f = facts[k]
            print(f"{k:>14}: zeros {r.zeros:.4f} removable {r.removable:.4f} structural {r.structural:.4f} "
                  f"family ratio {r.prune_ratio:.4f} | MFLOPs {f.flops / 1e6:.2f} effective "
                  f"{f.effective_flops / 1e6:.2f} structural {f.structural_flops / 1e6:.2f}")

    x = torch.randn(4, *INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = shrunk(x)
        for k in ("tp.state_dict", "exported", "onnx"):
            torch.testing.assert_close(variants[k].module(x), reference, atol=1e-3, rtol=1e-3)

    # The ratio is Torch-Pruning's reduction (it counts BN and biases too, hence approximately).
    for k in ("masked", "filters-only", "shrunk", "tp.state_dict", "exported", "onnx"):
        assert ratios[k].prune_ratio == pytest.approx(tp_reduction, abs=0.01), k
    # Masked (either way) and physically removed: identical counts and FLOPs.
    for k in ("masked", "filters-only"):
        assert ratios[k].structural == pytest.approx(ratios["shrunk"].structural, abs=1e-12), k
        assert facts[k].structural_flops == pytest.approx(facts["shrunk"].flops), k
    for k in ("tp.state_dict", "exported", "onnx"):
        assert facts[k].flops == facts["shrunk"].flops, k
    assert ratios["onnx"].structural == pytest.approx(ratios["shrunk"].structural, abs=1e-12)
    assert ratios["filters-only"].zeros < ratios["filters-only"].structural - 0.2  # zeros alone under-count

    # Instability: the masked twin's mask fits the parent; the shrunk ones fail closed with the hint.
    from prunecheck.gates.stability import masked_parent_model

    masked_parent_model(parent_model, variants["masked"])
    masked_parent_model(parent_model, variants["filters-only"])
    for k in ("shrunk", "tp.state_dict", "exported", "onnx"):
        with pytest.raises(ModelError, match=r"pre_finetune = ") as info:
            masked_parent_model(parent_model, variants[k])
        assert "\n" not in str(info.value)
