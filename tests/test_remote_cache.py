"""Remote prediction cache against a real S3 API: a moto server the tests start on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from prunecheck.core.io import cache_key
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.remote import FsspecArrayCache, open_cache

BUCKET = "prunecheck-test"

# Builds three seeded models and a dataset, predicts them into the cache at argv[1] with
# locks in argv[2] (distinct folders = two hosts that cannot see each other's locks).
WORKER = textwrap.dedent(
    """
    import json, sys, torch
    from torch import nn
    from prunecheck.data.base import TensorDataset
    from prunecheck.engine.predictor import PredictionEngine
    from prunecheck.nn.models import model_from_module
    from prunecheck.engine.remote import FsspecArrayCache

    def model(seed):
        torch.manual_seed(seed)
        return model_from_module(f"m{seed}", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)))

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 8, 8), dtype=torch.uint8, generator=g)
    data = TensorDataset("toy", images, torch.arange(300) % 5, 5, (0.5,) * 3, (0.25,) * 3)
    engine = PredictionEngine(FsspecArrayCache(sys.argv[1], lock_dir=sys.argv[2]), device="cpu", batch_size=50)
    for _ in range(3):  # every round re-reads and re-fills the same keys
        out = engine.predict_many([model(s) for s in range(3)], data)
        engine.cache.stats.hits = 0
    print(json.dumps({"sums": [float(p.log_probs.double().sum()) for p in out],
                      "damaged": engine.cache.stats.damaged}))
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    try:
        yield env
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_url(s3_endpoint, request):
    return f"s3://{BUCKET}/{request.node.name}"


def test_open_cache_picks_the_backend(tmp_path, s3_url):
    assert isinstance(open_cache(tmp_path), ArrayCache)
    assert open_cache(f"file://{tmp_path}").root == tmp_path
    remote = open_cache(s3_url)
    assert isinstance(remote, FsspecArrayCache) and remote.single_put


def test_roundtrip_on_s3(s3_url):
    cache = FsspecArrayCache(s3_url)
    key = cache_key("roundtrip")
    assert cache.get(key) is None and cache.signature(key) is None
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(key, {"x": data})
    np.testing.assert_array_equal(cache.get(key)["x"], data)
    assert cache.signature(key) is not None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 1, 1)


def test_truncated_and_foreign_objects_are_recomputed_not_trusted(s3_url, tmp_path):
    from prunecheck.engine.predictor import PredictionEngine
    from tests.test_engine import make_dataset, make_model

    model, data = make_model(), make_dataset()
    engine = PredictionEngine(FsspecArrayCache(s3_url), device="cpu", batch_size=16)
    expected = engine.predict(model, data).log_probs
    key = engine.computed[0]
    cache = engine.cache
    raw = cache.fs.cat_file(cache.path(key))
    cache.fs.pipe_file(cache.path(key), raw[: len(raw) // 2])  # an upload cut short
    again = PredictionEngine(FsspecArrayCache(s3_url), device="cpu", batch_size=16)
    assert torch.equal(again.predict(model, data).log_probs, expected)
    assert again.forward_passes == 4 and again.cache.stats.repaired == 1
    assert again.cache.stats.damaged[0].startswith(cache.path(key))
    other = cache_key("another entry")
    cache.put(other, {"log_probs": expected.numpy()})
    cache.fs.pipe_file(cache.path(key), cache.fs.cat_file(cache.path(other)))  # right bytes, wrong name
    assert FsspecArrayCache(s3_url).get(key) is None
    third = PredictionEngine(FsspecArrayCache(s3_url), device="cpu", batch_size=16)
    third.predict(model, data)
    assert third.forward_passes == 4 and FsspecArrayCache(s3_url).get(key) is not None


def test_two_processes_fill_the_same_keys_at_once(s3_endpoint, s3_url, tmp_path):
    env = {**os.environ, **s3_endpoint}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, s3_url, str(tmp_path / f"locks{i}")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    reader = FsspecArrayCache(s3_url)
    keys: set[str] = set()
    deadline = time.time() + 120
    while any(w.poll() is None for w in workers) and time.time() < deadline:
        keys.update(path.rsplit("/", 1)[-1][:-4] for path in reader.fs.find(reader.root) if path.endswith(".npz"))
        for key in keys:
            reader.get(key)  # complete or absent, never a part
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert outputs[0]["sums"] == outputs[1]["sums"]  # same numbers on both "hosts"
    assert outputs[0]["damaged"] == [] and outputs[1]["damaged"] == []
    assert reader.stats.repaired == 0, reader.stats.damaged
    final = FsspecArrayCache(s3_url)
    found = [path for path in final.fs.find(final.root) if path.endswith(".npz")]
    assert len(found) == 3 and all(final.get(p.rsplit("/", 1)[-1][:-4]) is not None for p in found)
    assert not [p for p in final.fs.find(final.root) if p.endswith(".tmp")]


def test_shared_folder_writes_then_renames(tmp_path):
    cache = FsspecArrayCache(f"memory://{tmp_path.name}/cache")  # memory: single put
    assert cache.single_put
    local = FsspecArrayCache(f"local://{tmp_path}/shared")  # a mounted share: temp name, then rename
    assert not local.single_put
    key = cache_key("shared")
    local.put(key, {"x": np.ones(3)})
    assert local.get(key)["x"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in (tmp_path / "shared").rglob("*")] == [key[:2], f"{key}.npz"]


def test_config_takes_a_url_cache_dir_or_prediction_cache(tmp_path):
    from prunecheck.config.loader import parse_settings
    from prunecheck.core.errors import ConfigError

    def run(table):
        data = {
            "run": table,
            "datasets": {"d": {"kind": "demo"}},
            "models": {"p": {"factory": "m:f", "weights": "p.pt"}, "q": {"factory": "m:f", "weights": "q.pt"}},
            "pairs": [{"parent": "p", "pruned": "q", "dataset": "d"}],
        }
        return parse_settings(data, source="prunecheck.toml", base_dir=tmp_path).run

    shared = run({"cache_dir": "s3://bucket/ci/"})
    assert shared.prediction_cache == "s3://bucket/ci/predictions"
    assert shared.cache_dir == tmp_path / ".prunecheck-cache"  # generated corruptions stay local
    assert run({"prediction_cache": "gs://b/p"}).prediction_cache == "gs://b/p"
    assert run({"prediction_cache": "shared/preds"}).prediction_cache == str(tmp_path / "shared" / "preds")
    assert run({}).prediction_cache is None
    with pytest.raises(ConfigError, match=r"prunecheck.toml.*run.prediction_cache.*s3://bucket/prefix"):
        run({"prediction_cache": "s3://"})


def test_a_url_cache_takes_its_locks_in_its_local_lock_folder_not_under_the_working_directory(tmp_path, monkeypatch):
    """The engine used to lock ``Path(cache.root) / "locks"``: for a URL cache a relative folder named after the bucket."""
    from prunecheck.engine.predictor import PredictionEngine
    from tests.test_engine import make_dataset, make_model

    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    cache = FsspecArrayCache("memory://prunecheck-locks-test/cache", lock_dir=tmp_path / "locks")
    engine = PredictionEngine(cache, device="cpu", batch_size=16)
    engine.predict(make_model(), make_dataset())
    assert [p.name for p in (tmp_path / "locks").iterdir()] == [f"{engine.computed[0]}.lock"]
    assert list(workdir.iterdir()) == []
