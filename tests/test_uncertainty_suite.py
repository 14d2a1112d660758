"""The uncertainty suite end to end (pytester) on planted RedChannelNet models.

The data are constant-colour images whose red level names the class, with 30% of
the labels replaced by another class, so the planted parent (accuracy 0.7) is
roughly calibrated rather than saturated: multiplying its logits by 3 keeps every
prediction but pushes the confidence towards 1, which the ECE gate must see.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  torch.manual_seed (MC dropout) imports it; a re-import inside pytester aborts

from prunecheck.testing import (
    RED_STEP,
    class_colour_images,
    dropout_red_channel_weights,
    red_channel_weights,
    write_cifar10,
)

pytest_plugins = ["pytester"]

SUITES = Path(__file__).resolve().parents[1] / "suites"
SHARPNESS = 30.0  # neighbour margin sharpness * (25/255) / 2 ~ 1.5 logits: confidence ~0.7 ~ accuracy
N = 200
NOISY = 60


def noisy_labels(labels: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    idx = rng.choice(len(labels), size=NOISY, replace=False)
    noisy[idx] = (labels[idx] + rng.integers(1, 10, size=NOISY)) % 10
    return noisy


def ood_images(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Red levels half-way between two classes: a calibrated model is unsure on them."""
    images, labels = class_colour_images(n)
    images[..., 0] = np.minimum(images[..., 0].astype(int) + RED_STEP // 2, 255).astype(np.uint8)
    return images, labels


MODELS = {
    # name: (factory, kwargs, weights)
    "parent": ("RedChannelNet", "", "parent.pt"),
    "same": ("RedChannelNet", "", "parent_copy.pt"),
    "x3": ("RedChannelNet", "kwargs = { scale = 3.0 }", "parent.pt"),
    "do-parent": ("DropoutRedChannelNet", "", "do_parent.pt"),
    "do-same": ("DropoutRedChannelNet", "", "do_copy.pt"),
    "member-a": ("RedChannelNet", "", "parent.pt"),
    "member-b": ("RedChannelNet", "", "member_b.pt"),
    "member-a2": ("RedChannelNet", "", "parent_copy.pt"),
    "member-b2": ("RedChannelNet", "", "member_b_copy.pt"),
}


def write_project(pytester: pytest.Pytester, pairs: str, gates: str = "") -> Path:
    """Data (nominal + OOD), planted checkpoints, a config with ``pairs`` and both suites."""
    root = pytester.path
    images, labels = class_colour_images(N)
    write_cifar10(root / "data", images, noisy_labels(labels))
    write_cifar10(root / "ood", *ood_images())
    weights = red_channel_weights(sharpness=SHARPNESS)
    for name in ("parent.pt", "parent_copy.pt"):
        torch.save(weights, root / name)
    member_b = red_channel_weights(sharpness=SHARPNESS * 0.7)
    for name in ("member_b.pt", "member_b_copy.pt"):
        torch.save(member_b, root / name)
    do_weights = dropout_red_channel_weights(sharpness=SHARPNESS, running_mean=0.25, running_var=2.0)
    for name in ("do_parent.pt", "do_copy.pt"):
        torch.save(do_weights, root / name)
    models = "\n".join(
        f'[models.{name}]\nfactory = "prunecheck.testing:{factory}"\n{kwargs}\nweights = "{path}"\n'
        for name, (factory, kwargs, path) in MODELS.items()
    )
    (root / "prunecheck.toml").write_text(textwrap.dedent("""
        [run]
        device = "cpu"
        batch_size = 64
        bootstrap_resamples = 200

        [datasets.colours]
        kind = "cifar10"
        root = "data"
        mean = [0.0, 0.0, 0.0]
        std = [1.0, 1.0, 1.0]

        [datasets.between]
        kind = "cifar10"
        root = "ood"
        mean = [0.0, 0.0, 0.0]
        std = [1.0, 1.0, 1.0]

        [models.ens-parent]
        members = ["member-a", "member-b"]
        ensemble_average = "logits"

        [models.ens-same]
        members = ["member-a2", "member-b2"]
        ensemble_average = "logits"
    """) + models + textwrap.dedent(pairs) + textwrap.dedent(gates))
    (root / "suites").mkdir()
    for suite in ("test_uncertainty.py", "test_accuracy_margin.py"):
        (root / "suites" / suite).write_text((SUITES / suite).read_text())
    return root


def pair(name: str, parent: str, pruned: str, *, methods: str = '["msp"]', ood: bool = False) -> str:
    return (f'\n[[pairs]]\nname = "{name}"\nparent = "{parent}"\npruned = "{pruned}"\ndataset = "colours"\n'
            f"methods = {methods}\n" + ('ood_dataset = "between"\n' if ood else ""))


def run(pytester: pytest.Pytester, *args: str, path: str = "suites"):
    # importlib mode: suites/test_uncertainty.py shares its basename with tests/test_uncertainty.py,
    # which the outer session may already have imported as module 'test_uncertainty'.
    return pytester.runpytest(path, "-p", "no:cacheprovider", "--import-mode=importlib", *args)


def test_overconfident_pruned_model_passes_accuracy_but_fails_ece(pytester):
    root = write_project(pytester, pair("colour-x3", "parent", "x3"))
    result = run(pytester, "-k", "drift or test_accuracy_margin and not class_accuracy and not exemplars")
    result.assert_outcomes(passed=2, failed=1)  # accuracy margin + efficiency facts pass
    result.stdout.fnmatch_lines([
        "*test_uncertainty_drift?colour-x3-msp?*",
        "*[[]colour-x3[]] ECE increase [[]msp[]] 0.* > max_ece_increase 0.02 (parent 0.*, pruned 0.*)*",
    ])
    assert "test_accuracy_margin[colour-x3] PASSED" in result.stdout.str() or "FAILED suites/test_accuracy_margin" not in result.stdout.str()
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    gates = {g["metric"]: g for g in report["gates"]}
    assert gates["accuracy drop"]["passed"] and gates["accuracy drop"]["value"] == pytest.approx(0.0)
    assert gates["accuracy drop"]["parent"] == pytest.approx(1 - NOISY / N)  # 0.7: not saturated
    ece = gates["ECE increase [msp]"]
    assert not ece["passed"] and ece["value"] > 0.1 and ece["pruned"] > ece["parent"]


def test_identical_logits_pass_every_uncertainty_gate(pytester):
    pairs = (pair("colour-same", "parent", "same", ood=True)
             + pair("colour-do", "do-parent", "do-same", methods='["mc_dropout"]', ood=True)
             + pair("colour-ens", "ens-parent", "ens-same", methods='["ensemble"]', ood=True))
    root = write_project(pytester, pairs)
    result = run(pytester, "-v", path="suites/test_uncertainty.py")
    # (msp) + (msp, mc_dropout) + (msp, ensemble) = 5 cases x drift, OOD and blur
    result.assert_outcomes(passed=15)
    for node in ("test_uncertainty_drift[colour-do-mc_dropout]", "test_uncertainty_ood[colour-ens-ensemble]",
                 "test_uncertainty_blur[colour-same-msp]"):
        assert f"{node} PASSED" in result.stdout.str()
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert report["summary"]["gates_failed"] == 0
    for g in report["gates"]:
        if "Spearman" not in g["metric"]:
            assert g["value"] == pytest.approx(0.0, abs=1e-9), g["metric"]
    metrics = {g["metric"] for g in report["gates"]}
    assert {"AUSE increase [mc_dropout]", "OOD disagreement drop [mc_dropout]",
            "OOD disagreement drop [ensemble]"} <= metrics
    # Report: the drift table and the curves behind it.
    markdown = (root / "reports" / "prunecheck.md").read_text()
    assert "## Uncertainty drift" in markdown
    assert re.search(r"\| colour-do +\| mc_dropout +\| msp +\| parent: do-parent \(M=5\)", markdown)
    drift = [d for d in report["data"] if d["section"] == "uncertainty" and d["payload"]["kind"] == "drift"]
    assert len(drift) == 5
    mc = next(d["payload"] for d in drift if d["payload"]["method"] == "mc_dropout")
    assert mc["parent"]["members"] == 5  # default mc_passes
    assert len(mc["parent"]["sparsification"]["pred_errors"]) == 50
    assert sum(mc["parent"]["reliability"]["counts"]) == N


def test_overconfident_model_is_caught_on_ood_data(pytester):
    write_project(pytester, pair("colour-x3", "parent", "x3", ood=True))
    result = run(pytester, "-k", "ood")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]colour-x3/ood:between[]] OOD entropy drop [[]msp[]] * > ood_max_entropy_drop 0.05*"])


def test_mc_dropout_on_a_model_without_dropout_fails_closed(pytester):
    root = write_project(pytester, pair("colour-same", "parent", "same", methods='["mc_dropout"]'))
    result = run(pytester, "-k", "drift", path="suites/test_uncertainty.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AUSE increase [[]mc_dropout[]]: pair 'colour-same': method 'mc_dropout' is configured, but model "
        "'parent' and 'same' contains no dropout module*the gate fails closed*",
    ])
    report = json.loads((root / "reports" / "prunecheck.json").read_text())
    assert report["summary"]["gates_failed"] == 3  # AUSE, ECE and NLL all fail closed


def test_nodes_per_pair_and_method_and_no_ood_node_without_ood_data(pytester):
    write_project(pytester, pair("p1", "parent", "same", ood=True)
                  + pair("p2", "do-parent", "do-same", methods='["mc_dropout"]'))
    result = run(pytester, "--collect-only", "-q", path="suites/test_uncertainty.py")
    ids = {line.split("::")[1] for line in result.stdout.lines if "::" in line}
    assert ids == {
        "test_uncertainty_drift[p1-msp]", "test_uncertainty_drift[p2-msp]", "test_uncertainty_drift[p2-mc_dropout]",
        "test_uncertainty_blur[p1-msp]", "test_uncertainty_blur[p2-msp]", "test_uncertainty_blur[p2-mc_dropout]",
        "test_uncertainty_ood[p1-msp]",
    }
