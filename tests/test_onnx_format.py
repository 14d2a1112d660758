"""ONNX artifacts (fp32 and dynamically quantized int8) evaluated with ONNX Runtime and gated
against their PyTorch parent through the plugin, the engine and the cache."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.nn.efficiency import efficiency_facts
from prunecheck.nn.models import load_model
from prunecheck.testing import RedChannelNet, class_colour_images, model_table, red_channel_weights, write_planted_project

pytest.importorskip("onnxruntime")  # dev installs it; a bare install without the extra skips visibly
# The accuracy margin and efficiency facts are the point here; the per-class and PIE nodes
# of the accuracy suite need more images per class than this tiny set has.
ONLY = ("-k", "not class_accuracy and not exemplars")

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"
INPUT = (3, 8, 8)


def export_onnx(model: nn.Module, path: Path, shape: tuple[int, ...] = INPUT) -> Path:
    """torch.onnx.export with a dynamic batch dimension (TorchScript-based exporter: fast on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (torch.zeros(2, *shape),), str(path), dynamo=False, input_names=["images"],
            output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


def quantize(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


class Small(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture
def small(request) -> Small:
    torch.manual_seed(0)
    model = Small(getattr(request, "param", 8)).eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.conv.weight[:3] = 0  # three zero filters: the artifact's zeros are counted too
        model.conv.bias[:3] = 0
    return model


def test_onnx_matches_pytorch_and_reports_the_artifact(tmp_path, small):
    path = export_onnx(small, tmp_path / "small.onnx")
    loaded = load_model(ModelSpec(name="onnx", weights=path, format="onnx"))
    x = torch.randn(7, *INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), small(x), atol=1e-4, rtol=1e-4)
    assert loaded.module.providers[-1] == "CPUExecutionProvider"
    facts, reference = efficiency_facts(loaded, INPUT), efficiency_facts(small, INPUT)
    # Same conv and linear work (BatchNorm is folded into the conv in the file): 2*64*8*27 + 2*8*10.
    assert facts.flops == reference.flops == 2 * 64 * 8 * 27 + 2 * 8 * 10
    assert facts.prunable_parameters == 8 * 27 + 80
    assert facts.prunable_nonzero == 5 * 27 + 80
    assert facts.artifact_bytes == facts.raw_bytes == path.stat().st_size
    assert not facts.structure_traced


@pytest.mark.parametrize("small", [64], indirect=True)
def test_quantized_onnx_counts_int8_weights_and_is_smaller(tmp_path, small):
    fp32 = export_onnx(small, tmp_path / "small.onnx")
    int8 = quantize(fp32, tmp_path / "small.int8.onnx")
    loaded = load_model(ModelSpec(name="int8", weights=int8, format="onnx"))
    facts = efficiency_facts(loaded, INPUT)
    assert facts.flops == 2 * 64 * 64 * 27 + 2 * 64 * 10  # ConvInteger + MatMulInteger, same work
    assert facts.prunable_parameters == 64 * 27 + 640
    assert facts.prunable_nonzero <= 61 * 27 + 640  # zero filters stay zero (small weights may round to 0)
    assert facts.prunable_nonzero >= 61 * 27 * 0.8
    assert facts.artifact_bytes == int8.stat().st_size < fp32.stat().st_size
    x = torch.randn(64, *INPUT, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        agree = (loaded.module(x).argmax(1) == small(x).argmax(1)).float().mean().item()
    assert agree > 0.8


def test_fingerprint_follows_the_file_and_garbage_is_refused(tmp_path, small):
    a = load_model(ModelSpec(name="a", weights=export_onnx(small, tmp_path / "a.onnx"), format="onnx"))
    with torch.no_grad():
        small.fc.bias.add_(1.0)
    b = load_model(ModelSpec(name="b", weights=export_onnx(small, tmp_path / "b.onnx"), format="onnx"))
    assert a.fingerprint != b.fingerprint
    bad = tmp_path / "bad.onnx"
    torch.save({"not": "onnx"}, bad)  # a pickle: ONNX Runtime parses protobuf only, nothing is unpickled
    with pytest.raises(ModelError, match=r"model 'bad': ONNX Runtime cannot open .*bad.onnx"):
        load_model(ModelSpec(name="bad", weights=bad, format="onnx"))


def test_onnx_artifacts_are_gated_against_the_pytorch_parent(pytester):
    weights = red_channel_weights()
    parent = RedChannelNet()
    parent.load_state_dict(weights)
    root = pytester.path
    export_onnx(parent, root / "shipped.onnx", shape=(3, 32, 32))
    quantize(root / "shipped.onnx", root / "shipped.int8.onnx")
    config = model_table("parent", "parent.pt") + textwrap.dedent("""
        [models.fp32]
        weights = "shipped.onnx"
        format = "onnx"

        [models.int8]
        weights = "shipped.int8.onnx"
        format = "onnx"

        [[pairs]]
        name = "onnx-fp32"
        parent = "parent"
        pruned = "fp32"
        dataset = "colours"

        [[pairs]]
        name = "onnx-int8"
        parent = "parent"
        pruned = "int8"
        dataset = "colours"
    """)
    write_planted_project(
        root, config=config, datasets={"colours": class_colour_images(200)}, checkpoints={"parent": weights},
        suites=(SUITE,),
    )
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-rA", *ONLY)
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    gates = {g["subject"]: g for g in report["gates"]}
    assert gates["onnx-fp32"]["pruned"] == pytest.approx(1.0) and gates["onnx-fp32"]["passed"]
    int8 = gates["onnx-int8"]
    outcomes = {"passed": 4} if int8["passed"] else {"passed": 3, "failed": 1}
    result.assert_outcomes(**outcomes)
    sizes = {
        entry["subject"]: entry["payload"]["pruned"]["artifact_bytes"]
        for entry in report["data"] if entry["section"] == "efficiency"
    }
    assert sizes == {
        "onnx-fp32": (root / "shipped.onnx").stat().st_size,
        "onnx-int8": (root / "shipped.int8.onnx").stat().st_size,
    }
    # A second run reads every prediction from the cache keyed by the files' hashes.
    again = pytester.runpytest("suites", "-p", "no:cacheprovider", *ONLY)
    again.assert_outcomes(**outcomes)
