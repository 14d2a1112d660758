"""Tests of prunecheck.nn.models: every weights format, fingerprints, output check, masks."""

from __future__ import annotations

import copy
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from prunecheck.core.errors import ModelError
from prunecheck.nn.models import (
    LoadedModel,
    apply_mask,
    check_output_width,
    ensemble_from_members,
    load_model,
    model_from_module,
    zero_mask,
)
from prunecheck.config.settings import ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices

ARCH = "pc_tiny_arch"
INPUT = (3, 8, 8)

# An importable architecture module, written to tmp_path so that the factory is
# resolved through importlib exactly as a user's "package.module:callable" is.
ARCH_SOURCE = textwrap.dedent(
    '''
    from pathlib import Path
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, width=4, classes=10, p=0.5):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.drop = nn.Dropout(p)
            self.fc = nn.Linear(width * 4, classes)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn(self.conv(x))))
            return self.fc(self.drop(torch.flatten(x, 1)))

    def make(width=4, classes=10, p=0.5):
        return Tiny(width=width, classes=classes, p=p)

    NOT_CALLABLE = 3

    def touch_and_build(marker):
        Path(marker).write_text("code from the pickle ran")
        return make()
    '''
)


@pytest.fixture
def arch(tmp_path, monkeypatch):
    """The imported architecture module (fresh per test)."""
    folder = tmp_path / "arch"
    folder.mkdir()
    (folder / f"{ARCH}.py").write_text(ARCH_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, ARCH, raising=False)
    import importlib

    module = importlib.import_module(ARCH)
    yield module
    sys.modules.pop(ARCH, None)


@pytest.fixture
def net(arch):
    torch.manual_seed(0)
    model = arch.make()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so they must round-trip too
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model.eval()


def spec_for(path: Path | None, fmt: str = "state_dict", name: str = "tiny", **extra) -> ModelSpec:
    return ModelSpec(name=name, factory=f"{ARCH}:make", weights=path, format=fmt, **extra)


def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(4, *INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def all_eval(module: nn.Module) -> bool:
    return not any(m.training for m in module.modules())


# --------------------------------------------------------------------------- state_dict


def test_state_dict_round_trip(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    loaded = load_model(spec_for(path))
    assert isinstance(loaded, LoadedModel)
    assert loaded.name == "tiny" and not loaded.is_ensemble and loaded.members == ()
    assert same_outputs(loaded.module, net)
    assert all_eval(loaded.module)
    assert all(p.device.type == "cpu" for p in loaded.module.parameters())
    assert loaded.has_dropout
    assert len(loaded.fingerprint) == 64 and int(loaded.fingerprint, 16) >= 0


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model"])
def test_checkpoint_dict_variants(tmp_path, net, key):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 7, key: net.state_dict(), "best_acc": 0.9, "optimizer": {"lr": 0.1}}, path)
    loaded = load_model(spec_for(path))
    assert same_outputs(loaded.module, net)


def test_checkpoint_without_state_dict_names_its_keys(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 7, "weights_here": {"a": 1}}, path)
    with pytest.raises(ModelError, match=r"weights_here"):
        load_model(spec_for(path))


def test_dataparallel_prefix_is_stripped(tmp_path, net):
    path = tmp_path / "dp.pt"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, path)
    assert same_outputs(load_model(spec_for(path)).module, net)


def test_prune_leftovers_are_folded(tmp_path, net):
    pruned = copy.deepcopy(net)
    prune.l1_unstructured(pruned.conv, "weight", amount=0.5)
    prune.random_unstructured(pruned.fc, "weight", amount=0.3)
    state = pruned.state_dict()
    assert "conv.weight_orig" in state and "conv.weight_mask" in state and "conv.weight" not in state
    path = tmp_path / "pruned.pt"
    torch.save(state, path)
    loaded = load_model(spec_for(path)).module
    for layer in ("conv", "fc"):
        expected = state[f"{layer}.weight_orig"] * state[f"{layer}.weight_mask"]
        assert torch.equal(getattr(loaded, layer).weight, expected)
    assert int((loaded.conv.weight == 0).sum()) == loaded.conv.weight.numel() // 2
    assert same_outputs(loaded, pruned.eval())


def test_key_mismatches_are_listed(tmp_path, net):
    state = net.state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ModelError) as info:
        load_model(spec_for(path))
    message = str(info.value)
    assert "missing keys ['fc.bias']" in message
    assert "unexpected keys ['extra.weight']" in message
    assert "'tiny'" in message


def test_shape_mismatch_is_reported(tmp_path, arch):
    path = tmp_path / "wide.pt"
    torch.save(arch.make(width=8).state_dict(), path)
    with pytest.raises(ModelError, match=r"shape mismatches .*conv\.weight \(model \(4, 3, 3, 3\), file \(8, 3, 3, 3\)\)"):
        load_model(spec_for(path))


def test_missing_weights_file_names_model_and_path(tmp_path, arch):
    path = tmp_path / "nowhere.pt"
    for fmt in ("state_dict", "torchscript"):
        with pytest.raises(ModelError, match=r"model 'tiny'.*not found.*nowhere\.pt"):
            load_model(spec_for(path, fmt))
    with pytest.raises(ModelError, match=r"model 'tiny'.*not found.*nowhere\.pt"):
        load_model(spec_for(path, "pickle", trust=True))


@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        ("no_such_module_xyz:make", r"cannot import module 'no_such_module_xyz'"),
        (f"{ARCH}:nope", rf"module '{ARCH}' has no attribute 'nope'"),
        (f"{ARCH}:NOT_CALLABLE", r"is not callable"),
        (f"{ARCH}.make", r"expected factory as \"package.module:callable\""),
    ],
)
def test_factory_errors(tmp_path, net, factory, pattern):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(ModelError, match=pattern):
        load_model(ModelSpec(name="tiny", factory=factory, weights=path))


def test_factory_failure_is_wrapped(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(ModelError, match=r"failed with kwargs \{'bogus': 1\}.*TypeError"):
        load_model(spec_for(path, kwargs={"bogus": 1}))


def test_whole_module_file_needs_pickle_format(tmp_path, net):
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(ModelError, match=r"weights_only=True.*format 'pickle' and trust = true"):
        load_model(spec_for(path))


# --------------------------------------------------------------------------- torchscript


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_round_trip(tmp_path, net, how):
    scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, torch.zeros(1, *INPUT))
    path = tmp_path / f"{how}.pt"
    torch.jit.save(scripted, str(path))
    loaded = load_model(ModelSpec(name="ts", weights=path, format="torchscript"))
    assert same_outputs(loaded.module, net)
    assert all_eval(loaded.module)
    assert loaded.has_dropout  # found by the scripted submodule's original name
    assert set(zero_mask(loaded.module)) == {"conv.weight", "fc.weight"}


def test_torchscript_rejects_other_files(tmp_path, net):
    path = tmp_path / "plain.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(ModelError, match=r"cannot load .*plain\.pt as TorchScript"):
        load_model(ModelSpec(name="ts", weights=path, format="torchscript"))


# --------------------------------------------------------------------------- pickle


class _Booby:
    """Unpickles by calling arch.touch_and_build(marker): code execution on load."""

    def __init__(self, func, marker):
        self.func, self.marker = func, marker

    def __reduce__(self):
        return (self.func, (self.marker,))


def test_pickle_refused_without_trust_and_not_executed(tmp_path, arch, monkeypatch):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    torch.save(_Booby(arch.touch_and_build, str(marker)), path)
    assert not marker.exists()

    def no_loading(*args, **kwargs):
        raise AssertionError("the file was opened for unpickling")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "load", no_loading)
        with pytest.raises(ModelError, match=r"model 'evil'.*trust = true"):
            load_model(ModelSpec(name="evil", weights=path, format="pickle"))
    assert not marker.exists()

    # weights_only=True refuses it as a state dict too, without running it
    with pytest.raises(ModelError, match=r"weights_only=True"):
        load_model(ModelSpec(name="evil", factory=f"{ARCH}:make", weights=path))
    assert not marker.exists()

    # with trust, the code runs (that is what trust means) and the module loads
    loaded = load_model(ModelSpec(name="evil", weights=path, format="pickle", trust=True))
    assert marker.exists()
    assert isinstance(loaded.module, nn.Module) and all_eval(loaded.module)


def test_trusted_pickle_of_module_loads(tmp_path, net):
    path = tmp_path / "whole.pkl"
    torch.save(net.train(), path)
    loaded = load_model(ModelSpec(name="whole", weights=path, format="pickle", trust=True))
    assert all_eval(loaded.module)
    assert same_outputs(loaded.module, net.eval())


def test_trusted_pickle_of_non_module_without_factory(tmp_path):
    path = tmp_path / "list.pkl"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelError, match=r"pickled torch.nn.Module, found list"):
        load_model(ModelSpec(name="l", weights=path, format="pickle", trust=True))


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_same_weights_same_fingerprint(tmp_path, net):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(net.state_dict(), a)
    torch.save({"state_dict": net.state_dict()}, b)  # other file, other layout, same weights
    fa = load_model(spec_for(a, name="first")).fingerprint
    fb = load_model(spec_for(b, name="second")).fingerprint
    assert fa == fb
    assert model_from_module("x", copy.deepcopy(net)).fingerprint == model_from_module("y", copy.deepcopy(net)).fingerprint


def test_fingerprint_changes_with_one_weight(tmp_path, net):
    before = model_from_module("m", copy.deepcopy(net)).fingerprint
    changed = copy.deepcopy(net)
    with torch.no_grad():
        changed.fc.weight[3, 5] += 1e-6
    assert model_from_module("m", changed).fingerprint != before
    buffers = copy.deepcopy(net)
    with torch.no_grad():
        buffers.bn.running_var[0] *= 1.01  # a buffer changes outputs too
    assert model_from_module("m", buffers).fingerprint != before


def test_fingerprint_changes_with_kwargs(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)  # identical weights fit both (p does not change shapes)
    f1 = load_model(spec_for(path, kwargs={"p": 0.5})).fingerprint
    f2 = load_model(spec_for(path, kwargs={"p": 0.1})).fingerprint
    f3 = load_model(spec_for(path, kwargs={"p": 0.5})).fingerprint
    assert f1 != f2 and f1 == f3


def test_fingerprint_does_not_depend_on_trust_or_name(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    assert load_model(spec_for(path, name="a")).fingerprint == load_model(spec_for(path, name="b", trust=True)).fingerprint


# --------------------------------------------------------------------------- ensembles


def test_ensemble_from_catalogue(tmp_path, arch):
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.pt"
        torch.save(arch.make().state_dict(), path)
        paths.append(path)
    catalogue = {
        "m1": spec_for(paths[0], name="m1"),
        "m2": spec_for(paths[1], name="m2"),
        "ens": ModelSpec(name="ens", members=("m1", "m2")),
        "ens_rev": ModelSpec(name="ens_rev", members=("m2", "m1")),
        "ens_logits": ModelSpec(name="ens_logits", members=("m1", "m2"), ensemble_average="logits"),
    }
    ens = load_model(catalogue["ens"], catalogue)
    assert ens.is_ensemble and ens.module is None
    assert [m.name for m in ens.members] == ["m1", "m2"]
    assert ens.has_dropout
    assert len(ens.networks()) == 2
    assert ens.fingerprint == load_model(catalogue["ens"], catalogue).fingerprint
    assert ens.fingerprint != load_model(catalogue["ens_logits"], catalogue).fingerprint
    assert ens.fingerprint != load_model(catalogue["ens_rev"], catalogue).fingerprint
    assert ens.fingerprint not in {m.fingerprint for m in ens.members}

    with pytest.raises(ModelError, match=r"without the catalogue"):
        load_model(catalogue["ens"])
    with pytest.raises(ModelError, match=r"member 'm3' is not a model entry"):
        load_model(ModelSpec(name="e", members=("m1", "m3")), catalogue)
    with pytest.raises(ModelError, match=r"member 'ens' is itself an ensemble"):
        load_model(ModelSpec(name="e", members=("ens",)), catalogue)


def test_has_dropout_false_without_dropout():
    model = model_from_module("lin", nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    assert not model.has_dropout
    assert ensemble_from_members("e", [model, model]).has_dropout is False


def test_model_from_module_sets_eval_and_cpu(net):
    loaded = model_from_module("m", net.train())
    assert loaded.module is net and all_eval(net)
    with pytest.raises(ModelError, match=r"expected a torch.nn.Module, found str"):
        model_from_module("m", "not a module")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output width


def test_output_width_check(net):
    model = model_from_module("small", net)
    check_output_width(model, 10, INPUT, dataset="cifar10")  # fits
    with pytest.raises(ModelError, match=r"^model 'small' outputs 10 classes but dataset 'cifar100' has 100$"):
        check_output_width(model, 100, INPUT, dataset="cifar100")
    ensemble = ensemble_from_members("e", [model, model_from_module("wide", nn.Sequential(nn.Flatten(), nn.Linear(192, 7)))])
    with pytest.raises(ModelError, match=r"model 'wide' outputs 7 classes but dataset 'd' has 10"):
        check_output_width(ensemble, 10, INPUT, dataset="d")


def test_output_width_check_bad_input_and_shape(net):
    with pytest.raises(ModelError, match=r"forward pass on an input of shape \(1, 1, 8, 8\)"):
        check_output_width(model_from_module("m", net), 10, (1, 8, 8), dataset="gray")
    flat = model_from_module("flat", nn.Flatten(0))
    with pytest.raises(ModelError, match=r"expected logits of shape \[1, 10\] for one input, found \(192,\)"):
        check_output_width(flat, 10, INPUT)


# --------------------------------------------------------------------------- masks


def test_zero_mask_reads_exact_zeros(net):
    with torch.no_grad():
        net.conv.weight[0] = 0
        net.fc.weight[:, ::2] = 0
        net.fc.bias.zero_()  # biases are not prunable weights
    mask = zero_mask(net)
    assert set(mask) == {"conv.weight", "fc.weight"}
    for name, keep in mask.items():
        weight = net.get_parameter(name).detach()
        assert keep.dtype == torch.bool and keep.shape == weight.shape
        for index in range(weight.numel()):  # naive reference
            assert bool(keep.reshape(-1)[index]) == (float(weight.reshape(-1)[index]) != 0.0)


def test_mask_round_trip_reproduces_pruned_model(net):
    parent = copy.deepcopy(net)
    pruned = copy.deepcopy(net)
    prune.l1_unstructured(pruned.conv, "weight", amount=0.6)
    prune.l1_unstructured(pruned.fc, "weight", amount=0.8)
    prune.remove(pruned.conv, "weight")
    prune.remove(pruned.fc, "weight")
    rebuilt = apply_mask(parent, zero_mask(pruned))
    expected = pruned.state_dict()  # prune.remove re-registers weights last: compare by name
    assert set(rebuilt.state_dict()) == set(expected)
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert same_outputs(rebuilt, pruned.eval())
    assert model_from_module("a", rebuilt).fingerprint == model_from_module("b", pruned).fingerprint
    # the parent itself is untouched
    for (name, a), (_, b) in zip(parent.state_dict().items(), net.state_dict().items()):
        assert torch.equal(a, b), name


def test_apply_mask_validates(net):
    with pytest.raises(ModelError, match=r"mask for 'fc.weight': expected shape \(10, 16\), found \(10, 15\)"):
        apply_mask(net, {"fc.weight": torch.ones(10, 15, dtype=torch.bool)})
    with pytest.raises(ModelError, match=r"\['bn.weight'\]"):
        apply_mask(net, {"bn.weight": torch.ones(4, dtype=torch.bool)})


@settings(max_examples=30, deadline=None)
@given(keep=st.lists(st.booleans(), min_size=12, max_size=12), zeros=st.lists(st.booleans(), min_size=12, max_size=12))
def test_apply_then_read_mask_property(keep, zeros):
    layer = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1.0, 13.0).reshape(3, 4))
        layer.weight.mul_(~torch.tensor(zeros).reshape(3, 4))  # some weights already zero
    mask = {"weight": torch.tensor(keep).reshape(3, 4)}
    masked = apply_mask(layer, mask)
    read = zero_mask(masked)["weight"].reshape(-1).tolist()
    assert read == [k and not z for k, z in zip(keep, zeros)]
    expected = [w if k else 0.0 for w, k in zip(layer.weight.reshape(-1).tolist(), keep)]
    assert masked.weight.reshape(-1).tolist() == expected
