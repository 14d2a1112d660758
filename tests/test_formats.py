"""Model formats on files written by the real libraries: checkpoints with numpy scalars,
Lightning-style nesting, safetensors, torch.export archives, Torch-Pruning files, ONNX.
And the other half of each: a file that would run pickled code is refused without running it."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from prunecheck.config.settings import ModelSpec
from prunecheck.core.errors import ModelError
from prunecheck.nn.efficiency import efficiency_facts, pair_ratios
from prunecheck.nn.models import load_model, mask_transfer_problem, model_from_module, prunable_weights

pytest_plugins = ["pytester"]

ARCH = "pc_formats_arch"
INPUT = (3, 8, 8)
ARCH_SOURCE = textwrap.dedent(
    '''
    import os
    import torch
    from torch import nn

    class Small(nn.Module):
        def __init__(self, width=8, classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.fc = nn.Linear(width, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)) + x)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def make(width=8, classes=10):
        return Small(width, classes)

    def mkdir(path):  # what a malicious pickle would call on load
        os.mkdir(path)
        return {}
    '''
)


@pytest.fixture
def arch(tmp_path, monkeypatch):
    folder = tmp_path / "arch"
    folder.mkdir()
    (folder / f"{ARCH}.py").write_text(ARCH_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, ARCH, raising=False)
    import importlib

    yield importlib.import_module(ARCH)
    sys.modules.pop(ARCH, None)


@pytest.fixture
def net(arch):
    torch.manual_seed(0)
    model = arch.make()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return model.eval()


def _x(n: int = 5) -> torch.Tensor:
    return torch.randn(n, *INPUT, generator=torch.Generator().manual_seed(1))


def _close(a: nn.Module, b: nn.Module, n: int = 5, atol: float = 1e-5) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(_x(n)), b(_x(n)), atol=atol, rtol=1e-4)


class _Payload:
    """Unpickling calls ``func(marker)``: code execution on load, visible as a new directory."""

    def __init__(self, func, marker):
        self.func, self.marker = func, marker

    def __reduce__(self):
        return (self.func, (self.marker,))


# --------------------------------------------------------------------------- checkpoints


def test_numpy_scalars_load_through_the_allowlist(tmp_path, net):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": np.int64(7), "best_acc": np.float64(0.91),
                "lr": np.float32(0.1), "done": np.bool_(True)}, path)
    loaded = load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path))
    _close(loaded.module, net)


def test_numpy_arrays_stay_refused(tmp_path, net):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": net.state_dict(), "history": np.zeros(3)}, path)
    with pytest.raises(ModelError, match=r"model 'm'.*weights_only=True"):
        load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path))


def test_lightning_style_checkpoint_with_state_dict_key_and_strip_prefix(tmp_path, net):
    # What LightningModule.save_checkpoint writes when the network is `self.model`: weights under
    # "state_dict" with a "model." prefix, plus a loss module's buffer and training metadata.
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["criterion.weight"] = torch.ones(10)
    path = tmp_path / "epoch=3-step=120.ckpt"
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": state,
                "optimizer_states": [], "lr_schedulers": [], "hyper_parameters": {"lr": np.float64(0.1)}}, path)
    with pytest.raises(ModelError, match=r"unexpected keys .*set strip_prefix = \"model.\""):
        load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path))
    spec = ModelSpec(name="m", factory=f"{ARCH}:make", weights=path, state_dict_key="state_dict", strip_prefix="model.")
    _close(load_model(spec).module, net)


def test_dotted_state_dict_key_and_clear_errors(tmp_path, net):
    path = tmp_path / "ema.pt"
    torch.save({"ema": {"model": net.state_dict()}, "step": 5}, path)
    _close(load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path, state_dict_key="ema.model")).module, net)
    with pytest.raises(ModelError, match=r"state_dict_key 'ema.net' not found in .*ema.pt.*keys \['ema', 'step'\]"):
        load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path, state_dict_key="ema.net"))
    with pytest.raises(ModelError, match=r"strip_prefix 'net.' matches no key"):
        load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=path, state_dict_key="ema.model", strip_prefix="net."))


def test_safetensors_file_written_by_safetensors(tmp_path, net):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({f"backbone.{k}": v.contiguous() for k, v in net.state_dict().items()}, str(path))
    spec = ModelSpec(name="m", factory=f"{ARCH}:make", weights=path, format="safetensors", strip_prefix="backbone.")
    loaded = load_model(spec)
    _close(loaded.module, net)
    # A pickle handed over as safetensors is a format error, never unpickled.
    evil = tmp_path / "evil.safetensors"
    torch.save(_Payload(os.mkdir, str(tmp_path / "pwned")), evil)
    with pytest.raises(ModelError, match=r"cannot read .*evil.safetensors as safetensors"):
        load_model(ModelSpec(name="m", factory=f"{ARCH}:make", weights=evil, format="safetensors"))
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- torch.export


def _export(net: nn.Module, path, *, dynamic: bool) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    program = torch.export.export(net, (_x(3),), dynamic_shapes=shapes)
    torch.export.save(program, str(path))


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "fixed-batch"])
def test_exported_program_loads_and_counts_like_the_module(tmp_path, net, dynamic):
    path = tmp_path / "model.pt2"
    _export(net, path, dynamic=dynamic)
    loaded = load_model(ModelSpec(name="m", weights=path, format="exported"))
    _close(loaded.module, net, n=7)  # 7 is not a multiple of the exported batch of 3
    assert sorted(w.shape for w in prunable_weights(loaded.module).values()) == sorted(
        w.shape for w in prunable_weights(net).values()
    )
    ours, theirs = efficiency_facts(loaded, INPUT), efficiency_facts(net, INPUT)
    assert (ours.flops, ours.prunable_parameters) == (theirs.flops, theirs.prunable_parameters)
    assert ours.structure_traced and ours.artifact_bytes == path.stat().st_size


def test_exported_masked_model_is_analysed_structurally(tmp_path, net):
    with torch.no_grad():  # channel 0 of the residual stream: both writers zero, with their BN
        for conv, bn in ((net.conv1, net.bn1), (net.conv2, net.bn2)):
            conv.weight[0] = 0
            bn.weight[0] = 0
            bn.bias[0] = 0
    path = tmp_path / "masked.pt2"
    _export(net, path, dynamic=True)
    exported = efficiency_facts(load_model(ModelSpec(name="m", weights=path, format="exported")), INPUT)
    eager = efficiency_facts(net, INPUT)
    # conv1 row 0 (27) + conv2 row 0 and column 0 (9*(8+7)) + fc column 0 (10)
    assert eager.removable_parameters == 27 + 135 + 10
    assert exported.removable_parameters == eager.removable_parameters
    assert exported.structural_flops == pytest.approx(eager.structural_flops)


def _rewrite_pt2(src, dst, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = edit(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item, data)


def test_exported_archive_with_pickled_payload_is_refused_without_running(tmp_path, net):
    path = tmp_path / "model.pt2"
    _export(net, path, dynamic=True)
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save(_Payload(os.mkdir, str(marker)), buffer)
    evil_bytes = buffer.getvalue()

    def pickled_weight(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("/weight_0"):
            return evil_bytes
        return data

    def pickled_sample_inputs(name, data):
        return evil_bytes if "/sample_inputs/" in name else data

    for edit in (pickled_weight, pickled_sample_inputs):
        evil = tmp_path / f"{edit.__name__}.pt2"
        _rewrite_pt2(path, evil, edit)
        with pytest.raises(ModelError, match=r"refusing .*would execute code"):
            load_model(ModelSpec(name="m", weights=evil, format="exported"))
        assert not marker.exists()
    # Proof that the doctored archive is dangerous: torch.export.load itself runs the payload.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.export.load(str(tmp_path / "pickled_sample_inputs.pt2"))
        except Exception:  # noqa: BLE001 - what happens after the payload ran does not matter
            pass
    assert marker.exists()


# --------------------------------------------------------------------------- Torch-Pruning


def _tp_prune(model: nn.Module, ratio: float = 0.5):
    import torch_pruning as tp

    example = torch.zeros(1, *INPUT)
    _, before = tp.utils.count_ops_and_params(model, example)
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
        ignored_layers=[model.fc],
    )
    pruner.step()
    _, after = tp.utils.count_ops_and_params(model, example)
    return model, 1 - after / before


def test_torch_pruning_state_dict_rebuilds_the_smaller_architecture(tmp_path, net, arch):
    import copy

    import torch_pruning as tp

    parent = copy.deepcopy(net)
    pruned, _ = _tp_prune(net)
    path = tmp_path / "pruned.pth"
    torch.save(tp.state_dict(pruned), path)
    loaded = load_model(ModelSpec(name="p", factory=f"{ARCH}:make", weights=path, format="torch_pruning"))
    assert loaded.module.conv1.out_channels == pruned.conv1.out_channels == 4
    _close(loaded.module, pruned)
    # Without the format the file is refused with the format to use.
    with pytest.raises(ModelError, match=r"format 'torch_pruning'"):
        load_model(ModelSpec(name="p", factory=f"{ARCH}:make", weights=path))
    # The ratio is the physical reduction over prunable layers, counted independently here.
    parent_prunable = sum(m.weight.numel() for m in parent.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    pruned_prunable = sum(m.weight.numel() for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    ratios = pair_ratios(efficiency_facts(parent, INPUT), efficiency_facts(loaded, INPUT))
    assert ratios.physically_smaller and ratios.zeros == 0.0
    assert ratios.prune_ratio == pytest.approx(1 - pruned_prunable / parent_prunable)


def test_torch_pruning_file_with_foreign_global_is_refused_without_running(tmp_path, net, arch):
    import torch_pruning as tp

    state = tp.state_dict(net)
    state["attributions"]["conv1"]["payload"] = _Payload(arch.mkdir, str(tmp_path / "pwned"))
    path = tmp_path / "evil.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"cannot read .* as a Torch-Pruning state dict.*factory's module classes"):
        load_model(ModelSpec(name="p", factory=f"{ARCH}:make", weights=path, format="torch_pruning"))
    assert not (tmp_path / "pwned").exists()


def test_structurally_pruned_pair_fails_instability_closed_with_the_hint(tmp_path, net):
    import copy

    from prunecheck.gates.stability import masked_parent_model

    parent = model_from_module("parent", copy.deepcopy(net))
    pruned = model_from_module("small", _tp_prune(net)[0])
    problem = mask_transfer_problem(parent, pruned)
    assert problem is not None and "structurally pruned" in problem and "pre_finetune" in problem
    with pytest.raises(ModelError) as info:
        masked_parent_model(parent, pruned)
    message = str(info.value)
    assert "\n" not in message and "pre_finetune = " in message and "expected shape" not in message
    assert mask_transfer_problem(parent, parent) is None


# --------------------------------------------------------------------------- configuration


def _config(model: dict) -> dict:
    return {
        "datasets": {"d": {"kind": "demo"}},
        "models": {"p": {"factory": "m:f", "weights": "p.pt"}, "q": model},
        "pairs": [{"parent": "p", "pruned": "q", "dataset": "d"}],
    }


@pytest.mark.parametrize(
    "model, spec_fields",
    [
        ({"factory": "m:f", "weights": "q.ckpt", "state_dict_key": "state_dict", "strip_prefix": "model."},
         {"format": "state_dict", "state_dict_key": "state_dict", "strip_prefix": "model."}),
        ({"factory": "m:f", "weights": "q.safetensors", "format": "safetensors", "strip_prefix": "net."},
         {"format": "safetensors", "strip_prefix": "net.", "state_dict_key": None}),
        ({"factory": "m:f", "weights": "q.pth", "format": "torch_pruning"}, {"format": "torch_pruning"}),
        ({"weights": "q.pt2", "format": "exported"}, {"format": "exported", "factory": None}),
        ({"weights": "q.onnx", "format": "onnx"}, {"format": "onnx", "factory": None}),
    ],
)
def test_new_format_keys_parse(model, spec_fields):
    from pathlib import Path

    from prunecheck.config.loader import parse_settings

    spec = parse_settings(_config(model), source="p.toml", base_dir=Path("/proj")).models["q"]
    assert {k: getattr(spec, k) for k in spec_fields} == spec_fields


@pytest.mark.parametrize(
    "model, key, message",
    [
        ({"weights": "q.onnx", "format": "onnx", "strip_prefix": "model."}, "models.q.strip_prefix",
         "expected 'strip_prefix' only with format 'state_dict' or 'safetensors'"),
        ({"factory": "m:f", "weights": "q.safetensors", "format": "safetensors", "state_dict_key": "sd"},
         "models.q.state_dict_key", "only with format 'state_dict'"),
        ({"weights": "q.pth", "format": "torch_pruning"}, "models.q.factory", "format 'torch_pruning' needs"),
        ({"factory": "m:f", "weights": "q.onnx", "format": "onnx"}, "models.q.factory", "expected no 'factory'"),
        ({"factory": "m:f", "weights": "q.pt", "strip_prefix": ""}, "models.q.strip_prefix", "non-empty string"),
    ],
)
def test_new_format_keys_are_validated(model, key, message):
    from pathlib import Path

    from prunecheck.config.loader import parse_settings
    from prunecheck.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_settings(_config(model), source="p.toml", base_dir=Path("/proj"))
    assert key in str(info.value) and message in str(info.value)


# --------------------------------------------------------------------------- the instability suite


def test_instability_suite_fails_closed_for_a_structurally_pruned_pair(pytester, net):
    import copy
    from pathlib import Path

    import torch_pruning as tp

    from prunecheck.testing import class_colour_images, write_planted_project

    suite = Path(__file__).resolve().parents[1] / "suites" / "test_instability.py"
    (pytester.path / f"{ARCH}.py").write_text(ARCH_SOURCE)
    pytester.syspathinsert(pytester.path)
    parent_state = copy.deepcopy(net.state_dict())
    pruned, _ = _tp_prune(net)
    torch.save(tp.state_dict(pruned), pytester.path / "pruned.pth")
    config = textwrap.dedent(f"""
        [models.parent]
        factory = "{ARCH}:make"
        weights = "parent.pt"

        [models.small]
        factory = "{ARCH}:make"
        weights = "pruned.pth"
        format = "torch_pruning"

        [[pairs]]
        name = "tp50"
        parent = "parent"
        pruned = "small"
        dataset = "colours"
    """)
    write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(40)},
        checkpoints={"parent": parent_state}, suites=(suite,),
    )
    result = pytester.runpytest("suites", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*'small' is structurally pruned*pre_finetune = *the gate fails closed*"])
    result.stdout.no_fnmatch_line("*expected shape*")
