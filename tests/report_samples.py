"""Report documents of any size, in the shapes the suites record, for layout tests.

``sample_report(n)`` is a run over ``n`` pairs (ResNet-like model names, 15
corruptions, MSP + MC dropout, a reference, a 4-step schedule) and one family; one
pair in three fails a gate, so failing and passing sections both appear.
"""

from __future__ import annotations

import random

from prunecheck.report.format import gate_order
from prunecheck.report.record import SCHEMA, SCHEMA_VERSION, summarise

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")


def _gate(name, subject, metric, value, threshold, view="nominal", direction="max", parent=None, pruned=None):
    passed = value <= threshold if direction == "max" else value >= threshold
    margin = threshold - value if direction == "max" else value - threshold
    sign = "<=" if direction == "max" else ">="
    return {"name": name, "metric": metric, "value": value, "threshold": threshold, "threshold_name": "max_drop",
            "direction": direction, "passed": passed, "mode": "point", "ci": None, "parent": parent,
            "pruned": pruned, "subject": subject, "view": view, "reason": "", "details": {}, "margin": margin,
            "message": f"{metric} {value:.4f} {'' if passed else 'not '}{sign} {threshold:g}",
            "nodeid": f"suites/test_{name}.py::test_{name}[{subject}-{view}]",
            "status": "PASS" if passed else "FAIL"}


def _stats(rng, ece):
    edges = [k / 15 for k in range(16)]
    counts = [0] * 8 + [rng.randint(5, 40) for _ in range(7)]
    acc = [None] * 8 + [min(1.0, e + rng.uniform(-0.1, 0.05)) for e in edges[8:15]]
    conf = [None] * 8 + [e + 1 / 30 for e in edges[8:15]]
    fractions = [k / 50 for k in range(50)]
    pred = [max(0.0, 0.08 * (1 - f) ** 2 + rng.uniform(0, 0.004)) for f in fractions]
    oracle = [max(0.0, 0.08 - f) for f in fractions]
    return {"accuracy": 0.92, "ause": 0.02, "ece": ece, "nll": 0.3, "brier": 0.1, "members": 1,
            "sparsification": {"fractions": fractions, "pred_errors": pred, "oracle_errors": oracle},
            "reliability": {"edges": edges, "counts": counts, "accuracy": acc, "confidence": conf}}


def sample_report(n_pairs: int, *, seed: int = 0) -> dict:
    rng = random.Random(seed)
    gates, data = [], []
    for k in range(n_pairs):
        pair = f"resnet18-gm{50 + 4 * k}"
        bad = k % 3 == 1
        drop = 0.012 if bad else 0.002
        gates.append(_gate("accuracy_margin", pair, "accuracy drop", drop, 0.005, parent=0.93, pruned=0.93 - drop))
        for method in ("msp", "mc_dropout"):
            for metric, value, limit in (("AUSE increase", 0.004, 0.01), ("ECE increase", 0.03 if bad else 0.01, 0.02),
                                         ("NLL increase", 0.02, 0.1)):
                gates.append(_gate("uncertainty", pair, f"{metric} [{method}]", value, limit))
            data.append({"section": "uncertainty", "subject": pair, "nodeid": "n", "payload": {
                "kind": "drift", "method": method, "uncertainty": "msp", "parent_name": "resnet18-parent",
                "pruned_name": f"{pair}-finetuned", "dataset": "cifar10", "n": 10000,
                "parent": _stats(rng, 0.02), "pruned": _stats(rng, 0.05 if bad else 0.03)}})
        for c in CORRUPTIONS:
            value = rng.uniform(0.0, 0.02) if bad else rng.uniform(0.0, 0.004)
            gates.append(_gate("corruptions", pair, f"{c}-3: accuracy drop", value, 0.005, view=f"{c}-3"))
        for eps, agree in ((0.0, 0.97), (0.1, 0.95), (0.2, 0.9 if not bad else 0.85), (0.3, 0.88)):
            point = {"model": f"{pair}-finetuned", "agreement": [agree], "distance": [1 - agree],
                     "mean_agreement": agree, "mean_distance": 1 - agree, "std_agreement": 0.01,
                     "std_distance": 0.01}
            ref = {**point, "model": "resnet18-reference", "mean_agreement": agree - 0.01}
            data.append({"section": "functional", "subject": pair, "nodeid": "n", "payload": {
                "kind": "noise", "eps": eps, "repetitions": 3, "images": 1000, "parent": "resnet18-parent",
                "pruned": point, "reference": ref, "min_agreement": 0.8}})
        gates.append(_gate("functional", pair, "agreement with parent (eps 0.2)", 0.9, 0.8, direction="min"))
        steps = [{"index": i + 1, "total": 4, "before": "resnet18-parent", "after": f"{pair}-step{i + 1}-pre",
                  "kind": "schedule", "acc_before_source": "parent", "acc_before": 0.93,
                  "acc_after": 0.93 * (1 - v), "instability": v}
                 for i, v in enumerate((0.05, 0.1, 0.2, 0.6 if bad else 0.3))]
        data.append({"section": "instability", "subject": pair, "nodeid": "n", "payload": {
            "parent": "resnet18-parent", "pruned": pair, "mask_mode": "unstructured", "source": "schedule",
            "max_instability": 0.5, "steps": steps}})
        for step in steps:
            gates.append(_gate("instability", pair, f"instability step {step['index']}", step["instability"], 0.5))
    views = ["nominal", *(f"{c}-3" for c in CORRUPTIONS)]
    ratios = [0.5, 0.7, 0.8, 0.9]
    parent_acc = [0.93 - 0.01 * i for i in range(len(views))]
    data.append({"section": "prune_potential", "subject": "resnet18-gm", "nodeid": "n", "payload": {
        "parent": "resnet18-parent", "members": [f"gm{int(r * 100)}" for r in ratios], "ratios": ratios,
        "views": views, "parent_accuracy": parent_acc,
        "accuracy": [[a + 0.002 - 0.01 * i * (j % 3) for i, _ in enumerate(ratios)] for j, a in enumerate(parent_acc)],
        "delta": 0.005, "delta_band": [a - 0.005 for a in parent_acc],
        "potentials": {v: (0.9 if j % 3 == 0 else 0.5) for j, v in enumerate(views)}, "summary": {},
        "policy": "mean", "policy_potential": 0.63, "excess_error": {}, "deployed": "gm80", "deployed_ratio": 0.8}})
    gates.append(_gate("corruptions", "resnet18-gm", "deployed ratio vs prune potential (mean)", 0.8, 0.63))
    tests = sorted({g["nodeid"] for g in gates})
    test_list = [{"nodeid": t, "outcome": "passed", "message": ""} for t in tests]
    for gate in gates:
        if gate["status"] == "FAIL":
            for test in test_list:
                if test["nodeid"] == gate["nodeid"]:
                    test["outcome"], test["message"] = "failed", gate["message"]
    gates.sort(key=gate_order)
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "prunecheck_version": "0", "created": "2026-01-01",
            "config": "prunecheck.toml", "demo": False,
            "session": {"exitstatus": 1, "interrupted": False, "reason": "", "deselected": 0, "selection": "",
                        "restricted_pairs": {}},
            "summary": summarise(gates, test_list), "gates": gates, "data": data, "tests": test_list}
