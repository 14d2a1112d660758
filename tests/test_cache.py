"""ArrayCache: atomic, verified, no pickles."""

import numpy as np

from prunecheck.core.io import cache_key
from prunecheck.engine.cache import ArrayCache


def test_roundtrip_and_hit_counting(tmp_path):
    cache = ArrayCache(tmp_path)
    key = cache_key("a", 1)
    assert cache.get(key) is None
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(key, {"x": data})
    got = cache.get(key)
    np.testing.assert_array_equal(got["x"], data)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 1, 1)


def test_truncated_entry_is_a_miss_not_trusted(tmp_path):
    cache = ArrayCache(tmp_path)
    key = cache_key("b")
    cache.put(key, {"x": np.random.default_rng(0).random((200, 10)).astype(np.float32)})
    path = cache.path(key)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cache.get(key) is None
    assert cache.stats.repaired == 1 and str(path) in cache.stats.damaged[0]


def test_flipped_byte_fails_crc(tmp_path):
    cache = ArrayCache(tmp_path)
    key = cache_key("c")
    cache.put(key, {"x": np.zeros(1000, dtype=np.float32)})
    raw = bytearray(cache.path(key).read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the array payload
    cache.path(key).write_bytes(bytes(raw))
    assert cache.get(key) is None


def test_entry_under_another_name_is_rejected(tmp_path):
    cache = ArrayCache(tmp_path)
    k1, k2 = cache_key("one"), cache_key("two")
    cache.put(k1, {"x": np.ones(3)})
    cache.path(k2).parent.mkdir(parents=True, exist_ok=True)
    cache.path(k2).write_bytes(cache.path(k1).read_bytes())
    assert cache.get(k2) is None


def test_no_temporary_files_left(tmp_path):
    cache = ArrayCache(tmp_path)
    for i in range(3):
        cache.put(cache_key(i), {"x": np.full(5, i)})
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
