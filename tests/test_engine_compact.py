"""Engine: compact (summaries) entries, entries of earlier layouts, and row shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunecheck.core.views import NOMINAL, noise
from prunecheck.data.views import apply_view
from prunecheck.engine.cache import ArrayCache
from prunecheck.engine.predictions import SUMMARY_FIELDS
from prunecheck.engine.predictor import PredictionEngine, part_key
from prunecheck.nn.models import ensemble_from_members
from tests.test_engine import make_dataset, make_model


def engine_at(path, **kw):
    return PredictionEngine(ArrayCache(path), device="cpu", batch_size=kw.pop("batch_size", 16), **kw)


def test_compact_entry_holds_the_summaries_of_the_rows(tmp_path):
    model, data = make_model(), make_dataset(n=70)
    full = engine_at(tmp_path / "rows").predict(model, data)
    small = engine_at(tmp_path / "small").predict(model, data, rows=False)
    assert full.has_rows and not small.has_rows
    for name in SUMMARY_FIELDS:  # per batch in the engine, whole matrix here: bitwise equal
        np.testing.assert_array_equal(getattr(small.summary, name), getattr(full.summary, name), err_msg=name)
    key = next(iter((tmp_path / "small").rglob("*.npz")))
    assert key.stat().st_size < 70 * 30 + 2000  # 28 bytes per sample plus the zip directory


def test_rows_request_recomputes_a_summaries_entry_and_rows_serve_summaries(tmp_path):
    model, data = make_model(), make_dataset()
    engine_at(tmp_path).predict(model, data, rows=False)
    again = engine_at(tmp_path)
    assert again.predict(model, data).has_rows and again.forward_passes == 4
    third = engine_at(tmp_path)
    assert third.predict(model, data, rows=False).has_rows and third.forward_passes == 0


def test_ensembles_and_mc_passes_keep_rows(tmp_path):
    data = make_dataset()
    members = [make_model(f"m{i}", seed=i) for i in range(2)]
    ensemble = ensemble_from_members("ens", members)
    engine = engine_at(tmp_path)
    assert engine.predict(ensemble, data, rows=False).member_probs.shape == (2, 50, 4)
    assert engine.predict(members[0], data, mc_passes=3, rows=False).member_probs.shape == (3, 50, 4)


def test_entry_of_the_earlier_layout_is_read_and_a_malformed_one_recomputed(tmp_path):
    model, data = make_model(), make_dataset()
    engine = engine_at(tmp_path)
    key = engine._key(model, data, 0)
    # Layout before summaries existed: log_probs only, same key (same engine version).
    old = torch.log_softmax(torch.randn(1, 50, 4), dim=-1).numpy()
    engine.cache.put(key, {"log_probs": old})
    got = engine.predict(model, data, rows=False)
    assert engine.forward_passes == 0 and torch.equal(got.log_probs, torch.from_numpy(old))
    # Summaries of the wrong length or dtype are never read as this entry.
    engine.cache.put(key, {name: np.zeros(49, dtype) for name, dtype in SUMMARY_FIELDS.items()})
    again = engine_at(tmp_path)
    assert len(again.predict(model, data, rows=False).summary) == 50 and again.forward_passes == 4


@pytest.mark.parametrize("view,mc_passes,rows", [(NOMINAL, 0, True), (NOMINAL, 0, False), (noise(0.2, 0), 0, True),
                                                  (NOMINAL, 3, True)])
def test_two_shards_assemble_the_unsharded_entry(tmp_path, view, mc_passes, rows):
    model, data = make_model(), apply_view(make_dataset(n=70), view)  # 5 batches of 16: shards of 2 and 3 batches
    whole = engine_at(tmp_path / "whole").predict(model, data, mc_passes=mc_passes, rows=rows)
    first = engine_at(tmp_path / "shared", shard=(0, 2))
    placeholder = first.predict(model, data, mc_passes=mc_passes, rows=rows)
    assert first.forward_passes == 2 * max(1, mc_passes)
    assert placeholder.summary.confidence[0] == pytest.approx(0.25)  # uniform until shard 1 is done
    second = engine_at(tmp_path / "shared", shard=(1, 2))
    second.predict(model, data, mc_passes=mc_passes, rows=rows)
    assert second.forward_passes == 3 * max(1, mc_passes)
    reader = engine_at(tmp_path / "shared")
    got = reader.predict(model, data, mc_passes=mc_passes, rows=rows)
    assert reader.forward_passes == 0
    if rows:
        assert torch.equal(got.log_probs, whole.log_probs)
    for name in SUMMARY_FIELDS:
        np.testing.assert_array_equal(getattr(got.summary, name), getattr(whole.summary, name))
    key = reader._key(model, data, mc_passes)
    assert all(reader.cache.get(part_key(key, i, 2)) is None for i in range(2))  # parts removed


def test_shard_rows_are_disjoint_whole_batches_covering_the_data():
    engine = PredictionEngine(ArrayCache("unused"), batch_size=16)
    for count in (1, 2, 3, 7):
        ranges = []
        for index in range(count):
            engine.shard = (index, count)
            ranges.append(engine.shard_rows(70))
        assert ranges[0][0] == 0 and ranges[-1][1] == 70
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(start % 16 == 0 for start, _ in ranges)


def test_more_shards_than_batches_still_assemble(tmp_path):
    model, data = make_model(), make_dataset(n=20)  # 2 batches of 16, 3 shards: one shard is empty
    whole = engine_at(tmp_path / "whole").predict(model, data, rows=False)
    for index in range(3):
        engine_at(tmp_path / "shared", shard=(index, 3)).predict(model, data, rows=False)
    reader = engine_at(tmp_path / "shared")
    got = reader.predict(model, data, rows=False)
    assert reader.forward_passes == 0
    np.testing.assert_array_equal(got.summary.confidence, whole.summary.confidence)
