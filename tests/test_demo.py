"""Tests of the embedded demo: generated data, DemoNet, the zoo builder and the demo settings."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prunecheck.config.settings import DatasetSpec
from prunecheck.core.errors import DataError, PrunecheckError
from prunecheck.data.base import TensorDataset

from prunecheck.config.options import default_gate_options
from prunecheck.data import demo as demo_dataset
from prunecheck.data.demo import NUM_CLASSES, generate_demo_images, load_demo_dataset
from prunecheck.demo import zoo as demo_zoo
from prunecheck.demo.net import DemoNet
from prunecheck.demo.settings import DEMO_SEVERITY, DEMO_TEST_SIZE, demo_settings
from prunecheck.demo.zoo import ZooConfig, ensure_zoo, load_zoo_model, read_manifest

# A toy zoo: a few hundred images, one epoch, width 4 (its tail model keeps half of class 4); builds in a few seconds.
TOY = ZooConfig(
    train_size=200, test_size=100, width=4, epochs=1, batch_size=50, tail_class=4, tail_fraction=0.5,
    ratios=(0.5, 0.8), moderate_ratio=0.5, deployed_ratio=0.8, member_ratios=None,
    finetune_epochs=1, final_finetune_epochs=1, member_finetune_epochs=1, member_final_finetune_epochs=1,
)


def _tiny(**overrides) -> ZooConfig:
    """A zoo of a few dozen images, one member and one pruning step: builds in about a second."""
    base = dict(train_size=30, test_size=10, width=2, epochs=1, batch_size=30, ratios=(0.5,),
                moderate_ratio=0.5, deployed_ratio=0.5, member_ratios=None, member_seeds=(1,),
                finetune_epochs=0, final_finetune_epochs=1, member_finetune_epochs=0,
                member_final_finetune_epochs=0)
    base.update(overrides)
    return ZooConfig(**base)


# --------------------------------------------------------------------------- dataset

def test_same_seed_gives_identical_bytes_and_different_seed_differs():
    a_x, a_y = generate_demo_images("test", 60, seed=3)
    b_x, b_y = generate_demo_images("test", 60, seed=3)
    c_x, _ = generate_demo_images("test", 60, seed=4)
    assert a_x.tobytes() == b_x.tobytes() and np.array_equal(a_y, b_y)
    assert a_x.tobytes() != c_x.tobytes()


def test_splits_are_different_draws():
    train, _ = generate_demo_images("train", 40, seed=0)
    test, _ = generate_demo_images("test", 40, seed=0)
    ood, _ = generate_demo_images("ood", 40, seed=0)
    assert train.tobytes() != test.tobytes() != ood.tobytes()


@pytest.mark.parametrize("n", [0, 7, 50, 103])
def test_shapes_dtypes_label_range_and_balance(n):
    x, y = generate_demo_images("train", n, seed=1)
    assert x.shape == (n, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    if n:
        assert y.min() >= 0 and y.max() < NUM_CLASSES
    counts = np.bincount(y, minlength=NUM_CLASSES)
    assert counts.max() - counts.min() <= 1  # balanced to within one image
    assert counts.sum() == n


def test_ood_labels_are_zero_and_images_vary():
    x, y = generate_demo_images("ood", 30, seed=0)
    assert (y == 0).all()
    assert len({img.tobytes() for img in x}) == 30


def test_images_use_the_value_range_and_are_not_constant():
    x, _ = generate_demo_images("test", 100, seed=0)
    per_image_std = x.reshape(100, -1).astype(np.float64).std(axis=1)
    assert per_image_std.min() > 5  # every image has an object / texture
    assert x.min() < 30 and x.max() > 225


def test_demo_statistics_match_the_generator():
    x, _ = generate_demo_images("train", 2000, seed=0)
    f = x.astype(np.float64) / 255
    assert np.allclose(f.mean(axis=(0, 2, 3)), demo_dataset.DEMO_MEAN, atol=0.01)
    assert np.allclose(f.std(axis=(0, 2, 3)), demo_dataset.DEMO_STD, atol=0.01)


def test_stripe_classes_have_their_orientation():
    # Independent check that labels carry signal: vertical stripes vary along x, horizontal along y.
    x, y = generate_demo_images("test", 400, seed=0)
    g = x.astype(np.float64).mean(axis=1)
    along_x = np.abs(np.diff(g, axis=2)).mean(axis=(1, 2))
    along_y = np.abs(np.diff(g, axis=1)).mean(axis=(1, 2))
    ratio = along_x / along_y
    assert ratio[y == 8].mean() > 1.2  # v-stripes
    assert ratio[y == 7].mean() < 1 / 1.2  # h-stripes
    assert 0.9 < ratio[np.isin(y, [0, 1, 2, 3])].mean() < 1.1  # rotation-free shapes: no preferred axis


def test_load_demo_dataset_uses_split_and_options():
    spec = DatasetSpec(name="d", kind="demo", split="ood", options={"ood_size": 12, "seed": 5})
    ds = load_demo_dataset(spec)
    assert isinstance(ds, TensorDataset)
    assert len(ds) == 12 and ds.num_classes == 10 and ds.image_shape == (3, 32, 32)
    x, _ = generate_demo_images("ood", 12, seed=5)
    assert torch.equal(ds.images(np.arange(12)), torch.from_numpy(x))
    assert ds.mean == demo_dataset.DEMO_MEAN
    again = load_demo_dataset(spec)
    assert again.fingerprint() == ds.fingerprint()
    other = load_demo_dataset(DatasetSpec(name="d", kind="demo", split="ood", options={"ood_size": 12, "seed": 6}))
    assert other.fingerprint() != ds.fingerprint()


def test_demo_classes_are_named_and_views_and_subsets_keep_the_names():
    from prunecheck.core.views import blur
    from prunecheck.data.base import Subset
    from prunecheck.data.views import apply_view

    test = load_demo_dataset(DatasetSpec(name="d", kind="demo", split="test", options={"test_size": 20}))
    assert test.classes == demo_dataset.DEMO_CLASSES and test.classes[4] == "cross"
    assert Subset(test, [0, 1]).classes == test.classes
    assert apply_view(test, blur(2.0)).classes == test.classes
    # the OOD split's labels name no class of the ten
    assert load_demo_dataset(DatasetSpec(name="d", kind="demo", split="ood", options={"ood_size": 4})).classes is None
    with pytest.raises(ValueError, match="expected 10 class names, found 2"):
        TensorDataset("d", test.images(np.arange(2)), test.labels[:2], 10, test.mean, test.std, classes=("a", "b"))


def test_load_demo_dataset_default_sizes():
    ds = load_demo_dataset(DatasetSpec(name="d", kind="demo", split="ood"))
    assert len(ds) == demo_dataset.DEFAULT_SIZES["ood"]


@pytest.mark.parametrize(
    "spec",
    [
        DatasetSpec(name="d", kind="demo", split="validation"),
        DatasetSpec(name="d", kind="demo", split="test", options={"test_size": -1}),
        DatasetSpec(name="d", kind="demo", split="test", options={"seed": "zero"}),
        DatasetSpec(name="d", kind="demo", split="test", options={"size": True}),
    ],
)
def test_bad_specs_raise_data_error_naming_the_dataset(spec):
    with pytest.raises(DataError, match="dataset 'd'"):
        load_demo_dataset(spec)


# --------------------------------------------------------------------------- net

def test_demonet_forward_shape_and_modules():
    torch.manual_seed(0)
    net = DemoNet(num_classes=7, width=4)
    out = net(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 7)
    kinds = {type(m) for m in net.modules()}
    assert nn.Dropout in kinds and nn.BatchNorm2d in kinds and nn.Conv2d in kinds
    assert isinstance(net.classifier, nn.Linear)


def test_demonet_dropout_changes_output_only_in_train_mode():
    torch.manual_seed(0)
    net = DemoNet(width=4, dropout=0.5).eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(net(x), net(x))
    net.dropout.train()
    assert not torch.equal(net(x), net(x))


def test_demonet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dropout"):
        DemoNet(dropout=1.0)


# --------------------------------------------------------------------------- zoo

@pytest.fixture(scope="module")
def toy_zoo(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo") / "demo-zoo"
    lines: list[str] = []
    ensure_zoo(zoo_dir, lines.append, config=TOY)
    return zoo_dir, lines


def _conv_linear_weights(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    # Independent of the code under test: conv weights are 4-D, the linear weight is "classifier.weight".
    return [v for k, v in state.items() if k.endswith("weight") and (v.ndim == 4 or k == "classifier.weight")]


def _zero_fraction(state: dict[str, torch.Tensor]) -> float:
    ws = _conv_linear_weights(state)
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def _load(zoo_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(zoo_dir / f"{name}.pt", weights_only=True)


def test_toy_zoo_files_manifest_and_progress(toy_zoo):
    zoo_dir, lines = toy_zoo
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    expected = {"parent", "reference", "member1", "member2", "wt50", "wt50-pre", "wt80", "wt80-pre",
                "member1-wt80", "member2-wt80", "wt80-tail"}
    assert set(manifest["models"]) == expected
    for info in manifest["models"].values():
        assert (zoo_dir / info["file"]).is_file()
        assert 0.0 <= info["accuracy"] <= 1.0
    assert manifest["zoo_version"] == demo_zoo.ZOO_VERSION
    assert manifest["ensemble"] == ["parent", "member1", "member2"]
    assert manifest["ensemble_pruned"] == ["wt80", "member1-wt80", "member2-wt80"]
    assert manifest["build_seconds"] > 0
    _, labels = generate_demo_images("train", TOY.train_size, TOY.data_seed)
    rare = round(TOY.tail_fraction * int((labels == TOY.tail_class).sum()))
    tail = manifest["tail"]
    assert (tail["model"], tail["class"], tail["fraction"]) == ("wt80-tail", 4, 0.5)
    assert tail["class_train_images"] == rare
    assert tail["train_images"] == TOY.train_size - int((labels == TOY.tail_class).sum()) + rare
    assert manifest["models"]["wt80-tail"]["pre_finetune"] == "wt80-pre"
    assert any("training parent (1/4) epoch 1/1" in line for line in lines)
    assert any("pruned parent to 80% (2/2), fine-tune epoch 1/1" in line for line in lines)
    # no temporary build folders left behind
    assert [p.name for p in zoo_dir.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name,ratio", [("wt50", 0.5), ("wt80", 0.8), ("wt50-pre", 0.5), ("wt80-pre", 0.8),
                                        ("member1-wt80", 0.8), ("member2-wt80", 0.8)])
def test_pruned_models_have_their_target_sparsity(toy_zoo, name, ratio):
    zoo_dir, _ = toy_zoo
    assert _zero_fraction(_load(zoo_dir, name)) == pytest.approx(ratio, abs=2e-3)


def test_unpruned_models_have_no_zero_weights(toy_zoo):
    zoo_dir, _ = toy_zoo
    for name in ("parent", "reference", "member1", "member2"):
        assert _zero_fraction(_load(zoo_dir, name)) < 0.01


def test_pre_finetune_snapshots_share_the_mask_but_differ(toy_zoo):
    zoo_dir, _ = toy_zoo
    for tag in ("wt50", "wt80"):
        pre, tuned = _load(zoo_dir, f"{tag}-pre"), _load(zoo_dir, tag)
        for wp, wt in zip(_conv_linear_weights(pre), _conv_linear_weights(tuned)):
            assert torch.equal(wp == 0, wt == 0)
        assert any(not torch.equal(a, b) for a, b in zip(pre.values(), tuned.values()))


def test_iterative_masks_are_nested(toy_zoo):
    zoo_dir, _ = toy_zoo
    for w50, w80 in zip(_conv_linear_weights(_load(zoo_dir, "wt50")), _conv_linear_weights(_load(zoo_dir, "wt80"))):
        assert bool(((w50 == 0) <= (w80 == 0)).all())  # zeros of step 1 stay zero in step 2


def test_pre_finetune_snapshot_is_the_masked_parent_at_the_first_step(toy_zoo):
    zoo_dir, _ = toy_zoo
    parent, pre = _load(zoo_dir, "parent"), _load(zoo_dir, "wt50-pre")
    assert parent.keys() == pre.keys()
    prunable = [k for k, v in parent.items() if v.ndim == 4 or k == "classifier.weight"]
    for k, v in parent.items():
        if k in prunable:
            kept = pre[k] != 0
            assert torch.equal(pre[k][kept], v[kept])  # surviving weights untouched
        else:
            assert torch.equal(pre[k], v)  # BN statistics and biases unchanged before fine-tuning
    # global magnitude pruning: every kept weight is at least as large as every pruned one
    kept_mags = torch.cat([parent[k][pre[k] != 0].abs() for k in prunable])
    cut_mags = torch.cat([parent[k][pre[k] == 0].abs() for k in prunable])
    assert kept_mags.min() >= cut_mags.max()


def test_second_call_reuses_without_training(toy_zoo, monkeypatch):
    zoo_dir, _ = toy_zoo
    calls = []
    monkeypatch.setattr(demo_zoo, "_train", lambda *a, **k: calls.append(1))
    before = (zoo_dir / "manifest.json").stat().st_mtime_ns
    lines: list[str] = []
    assert ensure_zoo(zoo_dir, lines.append, config=TOY) == zoo_dir
    assert calls == [] and (zoo_dir / "manifest.json").stat().st_mtime_ns == before
    assert any("reusing" in line for line in lines)


def test_zoo_version_change_or_damaged_file_triggers_rebuild(tmp_path, monkeypatch):
    zoo_dir = tmp_path / "z"
    tiny = _tiny()
    builds = []
    real_build = demo_zoo.build_zoo
    monkeypatch.setattr(demo_zoo, "build_zoo", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    ensure_zoo(zoo_dir, config=tiny)
    ensure_zoo(zoo_dir, config=tiny)
    assert len(builds) == 1
    monkeypatch.setattr(demo_zoo, "ZOO_VERSION", "test-next")
    ensure_zoo(zoo_dir, config=tiny)
    assert len(builds) == 2 and read_manifest(zoo_dir)["zoo_version"] == "test-next"
    (zoo_dir / "parent.pt").write_bytes(b"damaged")
    ensure_zoo(zoo_dir, config=tiny)
    assert len(builds) == 3
    assert load_zoo_model(zoo_dir, "parent").classifier.out_features == 10


def test_same_seed_same_weights(tmp_path):
    tiny = _tiny()
    a, b = tmp_path / "a", tmp_path / "b"
    ensure_zoo(a, config=tiny)
    ensure_zoo(b, config=tiny)
    ma, mb = read_manifest(a), read_manifest(b)
    assert {k: v["sha256"] for k, v in ma["models"].items()} == {k: v["sha256"] for k, v in mb["models"].items()}
    assert ma["models"]["parent"]["sha256"] != ma["models"]["reference"]["sha256"]


def test_build_does_not_disturb_global_rng_or_threads(tmp_path):
    tiny = _tiny()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    ensure_zoo(tmp_path / "z", config=tiny)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    tiny = _tiny()
    builds = []
    real_build = demo_zoo.build_zoo
    monkeypatch.setattr(demo_zoo, "build_zoo", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    zoo_dir = tmp_path / "z"
    errors: list[BaseException] = []

    def call():
        try:
            ensure_zoo(zoo_dir, config=tiny)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(builds) == 1
    assert demo_zoo.zoo_is_valid(zoo_dir, tiny)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ratios": (0.8, 0.5)}, "increasing"),
        ({"ratios": (0.5, 1.0)}, r"in \(0, 1\)"),
        ({"deployed_ratio": 0.6}, "deployed_ratio"),
        ({"member_seeds": (0, 2)}, "seeds must differ"),
        ({"epochs": 0}, "epochs"),
        ({"member_ratios": (0.7, 0.9)}, "member_ratios"),
        ({"final_finetune_epochs": -1}, "final_finetune_epochs"),
        ({"tail_class": 10}, "tail_class"),
        ({"tail_fraction": 0.0}, "tail_fraction"),
    ],
)
def test_bad_zoo_config_is_rejected(kwargs, match, tmp_path):
    with pytest.raises(PrunecheckError, match=match):
        ensure_zoo(tmp_path / "z", config=ZooConfig(**kwargs))
    assert not (tmp_path / "z").exists()


def test_long_tail_keeps_the_first_fraction_of_the_rare_class_only():
    x, y = generate_demo_images("train", 400, seed=0)
    kept_x, kept_y = demo_zoo.long_tail(x, y, ZooConfig(tail_class=4, tail_fraction=0.25))
    before, after = np.bincount(y, minlength=NUM_CLASSES), np.bincount(kept_y, minlength=NUM_CLASSES)
    assert after[4] == round(0.25 * before[4]) and after[4] < before[4]
    assert all(after[c] == before[c] for c in range(NUM_CLASSES) if c != 4)
    assert np.array_equal(kept_x[kept_y == 4], x[np.flatnonzero(y == 4)[: after[4]]])  # the first ones, in order
    assert np.array_equal(kept_x[kept_y != 4], x[y != 4])
    balanced_x, balanced_y = demo_zoo.long_tail(x, y, ZooConfig(tail_class=None))
    assert balanced_x is x and balanced_y is y


def test_tail_model_keeps_the_deployed_snapshot_mask_and_differs_from_the_deployed_model(toy_zoo):
    zoo_dir, _ = toy_zoo
    tail, deployed, pre = (load_zoo_model(zoo_dir, name).state_dict() for name in ("wt80-tail", "wt80", "wt80-pre"))
    weights = [name for name in pre if name.endswith("weight") and pre[name].dim() > 1]
    assert weights
    for name in weights:  # fine-tuned under the snapshot's fixed mask: the same exact zeros
        assert torch.equal(tail[name] == 0, pre[name] == 0), name
    assert any(not torch.equal(tail[name], deployed[name]) for name in weights)  # other data, other weights


def test_no_tail_model_without_a_tail_class(tmp_path):
    manifest = read_manifest(ensure_zoo(tmp_path / "z", config=_tiny(tail_class=None)))
    assert manifest["tail"] is None
    assert not any(name.endswith("-tail") for name in manifest["models"])


def test_ratio_tag():
    assert demo_zoo.ratio_tag(0.9) == "wt90"
    assert demo_zoo.ratio_tag(0.95) == "wt95"
    assert demo_zoo.ratio_tag(0.975) == "wt97.5"


# --------------------------------------------------------------------------- settings

def test_demo_settings_cross_references(toy_zoo, tmp_path):
    zoo_dir, _ = toy_zoo
    s = demo_settings(zoo_dir, cache_dir=tmp_path / "c", report_dir=tmp_path / "r")
    assert s.is_demo and s.source == "<built-in demo>"
    assert s.run.batch_size == 500 and s.run.cache_dir == tmp_path / "c" and s.run.report_dir == tmp_path / "r"
    assert s.datasets["demo"].split == "test" and s.datasets["demo-ood"].split == "ood"
    assert all(d.kind == "demo" for d in s.datasets.values())
    for name, m in s.models.items():
        assert m.name == name
        if m.members:
            assert all(member in s.models and not s.models[member].members for member in m.members)
        else:
            assert m.factory == "prunecheck.demo.net:DemoNet" and m.format == "state_dict"
            assert m.weights is not None and m.weights.is_file()
    assert len(s.models["ensemble"].members) == 3 and len(s.models["ensemble-pruned"].members) == 3
    for pair in s.pairs:
        refs = [pair.parent, pair.pruned, pair.reference, pair.pre_finetune, *pair.schedule]
        assert all(r in s.models for r in refs if r is not None)
        assert pair.dataset in s.datasets and (pair.ood_dataset is None or pair.ood_dataset in s.datasets)
    by_name = {p.name: p for p in s.pairs}
    assert by_name["wt80"].pre_finetune == "wt80-pre" and by_name["wt80"].schedule == ("wt50-pre", "wt80-pre")
    assert by_name["wt50"].schedule == ("wt50-pre",)
    # the deployed pair's calibration is gated with MC dropout only (see demo_settings)
    assert by_name["wt80"].methods == ("mc_dropout",) and by_name["wt80"].reference == "reference"
    assert by_name["wt50"].methods == ("msp", "mc_dropout")
    assert by_name["ensemble"].methods == ("msp", "ensemble")
    # the per-class example: only the accuracy suite checks it, against the same parent and reference
    tail = by_name["wt80-tail"]
    assert (tail.parent, tail.pruned, tail.reference) == ("parent", "wt80-tail", "reference")
    assert tail.suites == ("test_accuracy_margin.py",) and tail.schedule == () and tail.pre_finetune is None
    assert [p.name for p in s.pairs] == ["wt50", "wt80", "ensemble", "wt80-tail"]
    (family,) = s.families
    assert family.deployed == "wt80" and [m.model for m in family.members] == ["wt50", "wt80"]
    assert all(m.model in s.models for m in family.members) and family.parent in s.models
    assert [m.ratio for m in family.members] == [0.5, 0.8]

    # SPEC defaults except the keys the demo sets for clear verdicts (see _demo_gates)
    defaults = default_gate_options()
    changed = {(suite, key) for suite, values in s.gates.items() for key, value in values.items()
               if defaults[suite][key] != value}
    assert changed == {
        ("accuracy_margin", "max_drop"), ("uncertainty", "max_ece_increase"), ("corruptions", "corruptions"),
        ("corruptions", "max_excess_error_diff"), ("functional", "eps"),
        ("functional", "min_agreement"), ("functional", "min_reference_margin"), ("instability", "max_instability"),
        ("uncertainty", "blur_radii"), ("uncertainty", "mc_passes"), ("functional", "repetitions"),
    }
    # severity 3 (the SPEC default, as seed 002) with the cifar profile picked for 32x32 images
    assert s.gates["corruptions"].severities == (DEMO_SEVERITY,) == (3,) and s.gates["corruptions"].max_drop == 0.005
    # expect_fail comes from the one declaration of the demo's known failures
    from prunecheck.demo.expectations import expect_fail_of

    assert all(p.expect_fail == expect_fail_of(p.name) for p in s.pairs)
    assert by_name["wt80"].schedule_finetuned == ("wt50", "wt80")
    with pytest.raises(dataclasses.FrozenInstanceError):  # options are frozen: no run can edit them
        s.gates["accuracy_margin"].max_drop = 1.0


def test_demo_settings_models_load_and_predict(toy_zoo, tmp_path):
    zoo_dir, _ = toy_zoo
    s = demo_settings(zoo_dir, cache_dir=tmp_path, report_dir=tmp_path)
    spec = s.models["wt80"]
    net = DemoNet(**spec.kwargs)
    net.load_state_dict(torch.load(spec.weights, weights_only=True))
    ds = load_demo_dataset(s.datasets["demo"])
    assert len(ds) == DEMO_TEST_SIZE  # the gates' test draw, larger than the zoo's own (see demo_settings)
    x = ds.images(np.arange(4)).float() / 255
    assert net.eval()(x).shape == (4, 10)


def test_demo_settings_without_zoo_says_what_to_do(tmp_path):
    with pytest.raises(PrunecheckError, match="ensure_zoo"):
        demo_settings(tmp_path / "missing", cache_dir=tmp_path, report_dir=tmp_path)


# --------------------------------------------------------------------------- the shipped zoo

def test_shipped_zoo_makes_the_demo_point(tmp_path):
    """The shipped zoo: the deployed model passes the nominal gate but not under noise (no training)."""
    from prunecheck.demo.shipped import install_shipped_zoo

    zoo_dir = install_shipped_zoo(tmp_path / "zoo")
    manifest = read_manifest(zoo_dir)
    acc = {k: v["accuracy"] for k, v in manifest["models"].items()}
    assert 0.85 <= acc["parent"] <= 0.97
    assert acc[manifest["deployed"]] >= acc["parent"] - 0.005  # the default nominal gate passes
    assert acc[manifest["deployed"] + "-pre"] < acc["parent"] - 0.05  # pruning hurt before fine-tuning
    x, y = generate_demo_images("test", 2000, seed=0)
    gen = torch.Generator().manual_seed(0)
    noisy = (torch.from_numpy(x).float() / 255 + 0.06 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    noisy = (noisy * 255).round() / 255
    mean = torch.tensor(demo_dataset.DEMO_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(demo_dataset.DEMO_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        noisy_acc = {
            name: (load_zoo_model(zoo_dir, name)((noisy - mean) / std).argmax(1) == torch.from_numpy(y))
            .double().mean().item()
            for name in ("parent", manifest["deployed"])
        }
    assert noisy_acc["parent"] - noisy_acc[manifest["deployed"]] > 0.02  # lost in pruning
