"""core.io: atomic_file and atomic_path replace the target whole or leave it untouched; derived_seed, file_sha256."""

import pytest

from prunecheck.core.io import atomic_file, write_text


def test_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        write_text(tmp_path / "report.md", "x")
        (tmp_path / "plain.md").write_text("x")  # the reference: what open() creates
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "report.md").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode) == 0o666 & ~umask


def test_atomic_path_takes_a_numpy_memmap_and_replaces_the_target_whole(tmp_path):
    import numpy as np

    from prunecheck.core.io import atomic_path

    target = tmp_path / "view.npy"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(2, 3))
        out[:] = [[1, 2, 3], [4, 5, 6]]
        out.flush()
        del out
        assert target.read_bytes() == b"old"  # nothing replaced before the block ends
    assert np.load(target).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert [p.name for p in tmp_path.iterdir()] == ["view.npy"]


def test_atomic_path_error_removes_the_temporary_file_and_keeps_the_old_one(tmp_path):
    from prunecheck.core.io import atomic_path

    target = tmp_path / "view.npy"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["view.npy"]


def test_derived_seed_is_60_bits_of_the_cache_key():
    import hashlib

    from prunecheck.core.io import derived_seed

    digest = hashlib.sha256(b"'noise'\0" + b"0\0" + b"3\0").hexdigest()  # repr of each part, NUL-separated
    assert derived_seed("noise", 0, 3) == int(digest[:15], 16)
    assert derived_seed("noise", 0, 3) != derived_seed("noise", 0, 4)


def test_file_sha256_reads_in_blocks_and_matches_hashlib(tmp_path):
    import hashlib

    from prunecheck.core.io import file_sha256

    data = bytes(range(256)) * (1 << 15)  # 8 MiB: two full blocks of 4 MiB
    (tmp_path / "f").write_bytes(data + b"tail")
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data + b"tail").hexdigest()


def test_built_directory_replaces_the_folder_only_when_the_build_completes(tmp_path):
    from prunecheck.core.io import built_directory

    target = tmp_path / "zoo"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with built_directory(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("build failed")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]  # untouched
    with built_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()  # not visible before the swap
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo"]  # no temporary or stale folder left
