"""The demo zoo shipped with the package: compact storage, freshness (fingerprint) and unpacking."""

from __future__ import annotations

import json

pytest_plugins = ["pytester"]
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from prunecheck.core.errors import PrunecheckError
from prunecheck.data import demo as demo_dataset
from prunecheck.data.demo import generate_demo_images
from prunecheck.demo import compact, shipped
from prunecheck.demo.net import DemoNet
from prunecheck.demo.shipped import SHIPPED_DIR, WEIGHTS, install_shipped_zoo, shipped_manifest, stale_reasons
from prunecheck.demo.zoo import ZooConfig, to_input

MAX_SHIPPED_BYTES = 3 * 1024 * 1024  # the budget for the wheel's growth


# --------------------------------------------------------------------------- compact storage

def _pruned_state(seed: int = 0, zeros: float = 0.9) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    conv = torch.randn(8, 4, 3, 3, generator=gen)
    conv[torch.rand(conv.shape, generator=gen) < zeros] = 0.0
    return {
        "features.0.weight": conv,
        "features.1.running_var": torch.rand(8, generator=gen) + 0.5,
        "features.1.num_batches_tracked": torch.tensor(1234),
        "classifier.weight": torch.randn(10, 8, generator=gen),
    }


def test_round_trip_is_half_precision_rounding_and_keeps_zeros(tmp_path):
    state = _pruned_state()
    compact.write_archive(tmp_path / "w.npz", {"m": state})
    back = compact.read_archive(tmp_path / "w.npz")["m"]
    assert set(back) == set(state)
    for key, value in state.items():
        if value.is_floating_point():
            # Reference: numpy's own float16 cast, independent of the packing code.
            expected = torch.from_numpy(value.numpy().astype(np.float16).astype(np.float32))
            assert back[key].dtype == torch.float32
            assert torch.equal(back[key], expected), key
        else:
            assert torch.equal(back[key], value)
    assert torch.equal(back["features.0.weight"] == 0, state["features.0.weight"] == 0)


def test_pruned_tensors_are_stored_sparsely(tmp_path):
    sparse, dense = _pruned_state(zeros=0.95), _pruned_state(zeros=0.0)
    entries_sparse = compact.pack_state("m", sparse)
    entries_dense = compact.pack_state("m", dense)
    assert "m/features.0.weight#mask" in entries_sparse and "m/features.0.weight" not in entries_sparse
    assert "m/features.0.weight" in entries_dense
    n_nonzero = int((sparse["features.0.weight"] != 0).sum())
    assert entries_sparse["m/features.0.weight#values"].shape == (n_nonzero,)


def test_archive_loads_without_pickle(tmp_path):
    compact.write_archive(tmp_path / "w.npz", {"m": _pruned_state()})
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)


@pytest.mark.parametrize("bad", [{"w#x": torch.zeros(2)}, {"w": torch.tensor([1e6])}, {"w": torch.tensor([np.nan])}])
def test_unstorable_states_are_rejected(bad, tmp_path):
    with pytest.raises(PrunecheckError, match="compact zoo"):
        compact.write_archive(tmp_path / "w.npz", {"m": bad})


def test_unreadable_archive_says_which_file(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"not a zip")
    with pytest.raises(PrunecheckError, match="w.npz"):
        compact.read_archive(tmp_path / "w.npz")


# --------------------------------------------------------------------------- the shipped files

def test_shipped_zoo_is_present_and_small():
    manifest = shipped_manifest()
    size = (SHIPPED_DIR / WEIGHTS).stat().st_size + (SHIPPED_DIR / "manifest.json").stat().st_size
    assert size <= MAX_SHIPPED_BYTES, f"shipped demo zoo is {size / 2**20:.2f} MiB, budget 3 MiB"
    assert zipfile.is_zipfile(SHIPPED_DIR / WEIGHTS)
    assert {"parent", "reference", manifest["deployed"], manifest["family"][0]["model"]} <= set(manifest["models"])


def test_shipped_zoo_matches_the_training_config_and_generator():
    """Fails when ZooConfig, ZOO_VERSION or the dataset generator changed without `prunecheck demo build`."""
    reasons = stale_reasons(shipped_manifest())
    assert not reasons, "the shipped demo zoo is stale: " + "; ".join(reasons) + " -> run `prunecheck demo build`"


def test_a_changed_training_config_is_detected():
    manifest = shipped_manifest()
    changed = replace(ZooConfig(), epochs=ZooConfig().epochs + 1)
    assert any("fingerprint" in r for r in stale_reasons(manifest, changed))
    # threads only changes speed, not the weights: not part of the fingerprint
    assert stale_reasons(manifest, replace(ZooConfig(), threads=2)) == []


def test_a_changed_generator_is_detected(monkeypatch):
    manifest = shipped_manifest()
    monkeypatch.setattr("prunecheck.demo.zoo.GENERATOR_VERSION", "test-next")
    assert any("fingerprint" in r for r in stale_reasons(manifest))
    monkeypatch.undo()

    real = demo_dataset.generate_demo_images

    def brighter(split, n, seed=0):  # same version string, other pixels: caught by the data probe
        images, labels = real(split, n, seed)
        return np.minimum(images.astype(np.int32) + 3, 255).astype(np.uint8), labels

    monkeypatch.setattr(shipped, "generate_demo_images", brighter)
    assert any("pixels" in r for r in stale_reasons(manifest))


def test_install_unpacks_models_that_reproduce_the_manifest_accuracies(tmp_path):
    manifest = shipped_manifest()
    zoo = install_shipped_zoo(tmp_path / "demo-zoo")
    installed = json.loads((zoo / "manifest.json").read_text())
    assert installed["weights_sha256"] == manifest["weights_sha256"]
    x_u8, y = generate_demo_images("test", manifest["dataset"]["test_size"], manifest["dataset"]["seed"])
    x = to_input(x_u8)
    for name in ("parent", manifest["deployed"]):
        net = DemoNet(**manifest["architecture"]["kwargs"])
        net.load_state_dict(torch.load(zoo / installed["models"][name]["file"], weights_only=True))
        with torch.no_grad():
            acc = float((net.eval()(x).argmax(1) == torch.from_numpy(y)).double().mean())
        # Another platform's kernels may flip a borderline image or two, not more.
        assert abs(acc - manifest["models"][name]["accuracy"]) <= 2 / len(y), name


def test_install_is_reused_and_repaired(tmp_path):
    zoo = install_shipped_zoo(tmp_path / "demo-zoo")
    stamp = (zoo / "manifest.json").stat().st_mtime_ns
    assert install_shipped_zoo(tmp_path / "demo-zoo") == zoo
    assert (zoo / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    next(zoo.glob("*.pt")).unlink()
    install_shipped_zoo(tmp_path / "demo-zoo")
    assert all((zoo / f"{name}.pt").is_file() for name in shipped_manifest()["models"])


def test_install_rejects_an_archive_that_does_not_match_its_manifest(tmp_path):
    fake = tmp_path / "shipped"
    fake.mkdir()
    (fake / "manifest.json").write_text((SHIPPED_DIR / "manifest.json").read_text())
    compact.write_archive(fake / WEIGHTS, {"parent": _pruned_state()})
    with pytest.raises(PrunecheckError, match="sha256"):
        install_shipped_zoo(tmp_path / "zoo", shipped_dir=fake)


def test_missing_shipped_zoo_says_how_to_rebuild(tmp_path):
    with pytest.raises(PrunecheckError, match="prunecheck demo build"):
        install_shipped_zoo(tmp_path / "zoo", shipped_dir=tmp_path / "nothing")


def test_ship_built_zoo_writes_what_install_reads(tmp_path):
    """The build path end to end on a tiny recipe (trains for about a second)."""
    tiny = ZooConfig(train_size=30, test_size=10, width=2, epochs=1, batch_size=30, ratios=(0.5,),
                     moderate_ratio=0.5, deployed_ratio=0.5, member_ratios=None, member_seeds=(1,),
                     finetune_epochs=0, final_finetune_epochs=1, member_finetune_epochs=0,
                     member_final_finetune_epochs=0)
    lines: list[str] = []
    manifest = shipped.build_shipped_zoo(tmp_path / "out", tiny, lines.append)
    assert manifest["config_fingerprint"] == tiny.fingerprint()
    assert stale_reasons(manifest, tiny) == []
    assert any("training parent" in line for line in lines) and any("wrote" in line for line in lines)
    zoo = install_shipped_zoo(tmp_path / "zoo", shipped_dir=tmp_path / "out")
    assert {p.stem for p in zoo.glob("*.pt")} == set(manifest["models"])
    assert not list((tmp_path / "out").glob(".demo-build-*"))  # the temporary build folder is gone


# --------------------------------------------------------------------------- declared verdicts

EXPECTATIONS_CONFTEST = '''
import pytest
from prunecheck.demo.expectations import DemoExpectations, KnownFailure

KNOWN = {
    "test_known_failure_fails": KnownFailure("wt95", "corruptions", "loses its margin under fog"),
    "test_known_failure_passes": KnownFailure("wt95", "corruptions", "loses its margin under snow"),
}

def pytest_configure(config):
    config.pluginmanager.register(DemoExpectations(known=KNOWN, fixture="probe"), DemoExpectations.NAME)

@pytest.fixture
def probe():
    return None
'''

EXPECTATIONS_TESTS = '''
import pytest

def test_known_failure_fails(probe):
    pytest.fail("prunecheck gate failed:\\n[wt95/fog-1] accuracy drop 0.0400 > max_drop 0.005", pytrace=False)

def test_known_failure_passes(probe):
    pass

def test_expected_pass_fails(probe):
    pytest.fail("prunecheck gate failed:\\n[wt50] accuracy drop 0.0100 > max_drop 0.005", pytrace=False)

def test_expected_pass_xfails_through_expect_fail(probe):
    pytest.xfail("known failure (expect_fail): [wt50] ECE increase 0.03 > 0.02")

def test_expected_pass_passes(probe):
    pass
'''


def test_demo_outcomes_are_checked_against_the_declaration_in_both_directions(pytester):
    pytester.makeconftest(EXPECTATIONS_CONFTEST)
    pytester.makepyfile(test_demo_like=EXPECTATIONS_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, xfailed=1, failed=3)
    out = result.stdout.str()
    assert "test_known_failure_passes was declared a known failure of gate 'corruptions'" in out
    assert "test_expected_pass_fails is expected to pass, but it failed" in out
    assert "test_expected_pass_xfails_through_expect_fail is expected to pass, but it xfailed" in out
    assert "known failure (loses its margin under fog): [wt95/fog-1] accuracy drop 0.0400 > max_drop 0.005" in out
