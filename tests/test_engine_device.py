"""Engine speed paths: channels-last, autocast precision, prefetching, per-key locks, worker devices."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prunecheck.data.base import TensorDataset
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictor import PredictionEngine, key_lock
from prunecheck.nn.models import model_from_module
from prunecheck.plugin import worker_device
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "suites" / "test_accuracy_margin.py"


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def toy_data(n=40):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return TensorDataset("toy", images, torch.arange(n) % 5, 5, (0.5,) * 3, (0.25,) * 3)


def toy_model(name="m"):
    torch.manual_seed(0)
    return model_from_module(name, ConvNet())


def plain_loop(model, data):
    """Independent reference: the whole dataset in one float32 forward pass."""
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    with torch.no_grad():
        x = (data.images(np.arange(len(data))).float() / 255 - mean) / std
        return torch.softmax(model.module.eval()(x), dim=1)


def engine(path, **kw):
    return PredictionEngine(ArrayCache(path), device="cpu", batch_size=kw.pop("batch_size", 16), **kw)


@pytest.mark.parametrize(
    "options", [{}, {"channels_last": True}, {"prefetch": False}, {"prefetch": True, "batch_size": 7}]
)
def test_speed_options_keep_the_fp32_numbers(tmp_path, options):
    model, data = toy_model(), toy_data()
    probs = engine(tmp_path, **options).predict(model, data).probs
    torch.testing.assert_close(probs, plain_loop(model, data), atol=1e-5, rtol=1e-4)
    assert next(model.module.parameters()).is_contiguous()  # memory format restored


def test_fp32_keys_are_unchanged_and_reduced_precision_has_its_own(tmp_path):
    model, data = toy_model(), toy_data()
    default = engine(tmp_path)
    explicit = engine(tmp_path, precision="fp32")
    bf16 = engine(tmp_path, precision="bf16")
    key = default._key(model, data, 0)
    assert explicit._key(model, data, 0) == key
    assert bf16._key(model, data, 0) != key
    fp32_probs = default.predict(model, data).probs
    bf16_probs = bf16.predict(model, data).probs
    assert bf16.forward_passes > 0  # not served from the fp32 entry
    assert not torch.equal(bf16_probs, fp32_probs)
    assert (bf16_probs - fp32_probs).abs().max() < 0.05  # bf16 keeps ~3 significant digits
    with pytest.raises(ValueError, match="precision: expected one of fp32, bf16, fp16"):
        engine(tmp_path, precision="int8")


def test_a_key_locked_by_another_process_is_waited_for_and_read(tmp_path):
    model, data = toy_model(), toy_data()
    producer = engine(tmp_path / "a")
    expected = producer.predict(model, data)
    waiter = engine(tmp_path)
    key = waiter._key(model, data, 0)
    result = {}
    with key_lock(waiter.cache, key):  # "another worker" is computing this entry
        thread = threading.Thread(target=lambda: result.update(p=waiter.predict(model, data)))
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waiting, not computing
        assert waiter.forward_passes == 0
        ArrayCache(tmp_path).put(key, {"log_probs": expected.log_probs.numpy()})
    thread.join(timeout=10)
    assert waiter.forward_passes == 0 and waiter.computed == []
    assert torch.equal(result["p"].probs, expected.probs)


def test_a_lock_released_without_an_entry_is_computed_by_the_waiter(tmp_path):
    model, data = toy_model(), toy_data()
    waiter = engine(tmp_path)
    key = waiter._key(model, data, 0)
    result = {}
    with key_lock(waiter.cache, key):  # the other worker crashes: no entry
        thread = threading.Thread(target=lambda: result.update(p=waiter.predict(model, data)))
        thread.start()
        time.sleep(0.2)
    thread.join(timeout=10)
    assert waiter.computed == [key] and waiter.forward_passes == 3  # ceil(40 / 16)
    torch.testing.assert_close(result["p"].probs, plain_loop(model, data), atol=1e-5, rtol=1e-4)


def test_free_keys_are_computed_while_a_locked_one_waits(tmp_path):
    a, b, data = toy_model("a"), model_from_module("b", nn.Sequential(nn.Flatten(), nn.Linear(192, 5))), toy_data()
    eng = engine(tmp_path)
    key_a = eng._key(a, data, 0)
    with key_lock(eng.cache, key_a):
        thread = threading.Thread(target=lambda: eng.predict_many([a, b], data))
        thread.start()
        deadline = time.time() + 10
        while not eng.computed and time.time() < deadline:
            time.sleep(0.05)
        assert eng.computed == [eng._key(b, data, 0)]  # b done, a still waiting
    thread.join(timeout=10)
    assert eng.computed[-1] == key_a


def test_worker_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert worker_device("auto", "gw0") == "cuda:0"
    assert worker_device("cuda", "gw3") == "cuda:1"
    assert worker_device("cpu", "gw3") == "cpu"
    assert worker_device("cuda:1", "gw0") == "cuda:1"
    assert worker_device("auto", "") == "auto"  # not under xdist
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert worker_device("auto", "gw1") == "auto"  # CPU stays CPU


def _accuracy_project(pytester, precision: str) -> Path:
    weights = red_channel_weights()
    pruned = {k: v.clone() for k, v in weights.items()}
    pruned["fc.weight"][-1] *= 0.5  # the last class loses to its neighbour: accuracy 0.9
    config = (
        model_table("parent", "parent.pt") + "\n" + model_table("pruned", "pruned.pt")
        + textwrap.dedent("""
            [[pairs]]
            name = "colour-pair"
            parent = "parent"
            pruned = "pruned"
            dataset = "colours"
        """)
    )
    root = write_planted_project(
        pytester.path, config=config, datasets={"colours": class_colour_images(200)},
        checkpoints={"parent": weights, "pruned": pruned}, suites=(SUITE,),
    )
    toml = root / "prunecheck.toml"
    toml.write_text(toml.read_text().replace("[run]\n", f'[run]\nprecision = "{precision}"\n', 1))
    return root


def test_accuracy_gate_in_fp32_and_bf16(pytester):
    """What bf16 changes on a planted project: the probabilities, not the gate verdict."""
    gates = {}
    for precision in ("fp32", "bf16"):
        root = _accuracy_project(pytester, precision)
        result = pytester.runpytest("suites", "-p", "no:cacheprovider")
        # efficiency facts and PIEs pass; the margin and the per-class gate (20 images per class) fail
        result.assert_outcomes(passed=2, failed=2)
        report = json.loads((root / "reports" / "prunecheck.json").read_text())
        (gates[precision],) = [g for g in report["gates"] if g["name"] == "accuracy_margin"]
    fp32, bf16 = gates["fp32"], gates["bf16"]
    assert fp32["passed"] is False and bf16["passed"] is False
    assert fp32["value"] == pytest.approx(bf16["value"], abs=1e-9)  # same argmax on every image
    assert fp32["parent"] == pytest.approx(bf16["parent"]) and fp32["pruned"] == pytest.approx(bf16["pruned"])
