"""The demo model zoo: trained on first use, cached on disk, reused afterwards.

Contents (names are the manifest's model names; files are ``<name>.pt`` state dicts):

- ``parent``: DemoNet trained from seed ``parent_seed``.
- ``reference``: the same recipe from another seed (functional-similarity baseline).
- ``member1`` .. ``memberK``: more independently trained models; ``parent`` plus
  these form the unpruned ensemble.
- ``wt<P>`` and ``wt<P>-pre`` for every cumulative ratio P% of ``ratios``: the
  parent pruned *iteratively* with :func:`prunecheck.pruning.iterative_prune`
  (seed 002, Alg. 1): at each step global unstructured weight-magnitude pruning
  (``global_magnitude``, WT) of every prunable layer
  (:func:`prunecheck.nn.layers.prunable_layers`) to the cumulative ratio, then
  fine-tuning with the zero mask held fixed. ``-pre`` is the snapshot right
  after pruning, before fine-tuning.
- ``member<i>-wt<D>``: every other ensemble member pruned by the same driver
  up to the deployed ratio D and fine-tuned (the pruned ensemble).

- ``wt<D>-tail`` (when ``tail_class`` is set): the deployed ratio's pre-fine-tune
  snapshot ``wt<D>-pre`` fine-tuned again with the same recipe and seed as ``wt<D>``,
  on a long-tailed split: ``tail_class`` keeps only ``tail_fraction`` of its training
  images. A team fine-tuning a pruned model on its own, unevenly collected data gets
  this model: its average accuracy holds, the rare class does not (Hooker et al. 2019).

A ``manifest.json`` records the zoo version, the build config, every file with
its sha256, ratio and measured test accuracy, and the build time. The zoo is
built in a temporary folder next to ``zoo_dir`` and renamed into place, under
an exclusive ``fcntl.flock`` on ``<zoo_dir>.lock`` so that parallel pytest-xdist
workers build it once. It is rebuilt when ``ZOO_VERSION`` or the config
changes, or a file no longer matches its recorded hash.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunecheck.core.io import built_directory, file_lock, file_sha256, write_text
from prunecheck.data.demo import (
    DEMO_CLASSES, DEMO_MEAN, DEMO_STD, GENERATOR_VERSION, IMAGE_SIZE, generate_demo_images,
)
from prunecheck.core.errors import PrunecheckError
from prunecheck.demo.net import DemoNet
from prunecheck.nn.layers import prunable_layers
from prunecheck.pruning.iterative import PruneStep, iterative_prune
from prunecheck.pruning.masks import keep_mask

#: Bump whenever the zoo recipe changes the weights it produces.
ZOO_VERSION = "2"
MANIFEST = "manifest.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ZooConfig:
    """How the zoo is built; part of the zoo's identity (a change rebuilds it).

    The defaults are the demo; tests pass tiny values to build a toy zoo fast.
    """

    train_size: int = 6000
    test_size: int = 2000  # test images used to record nominal accuracies
    data_seed: int = 0
    # The long-tailed fine-tune of wt<deployed>-tail: the class kept rare (None: no such
    # model) and the fraction of its training images kept. Measured against the parent on
    # the demo's 4000 test images (trial fine-tunes of the shipped half-precision snapshot,
    # other shuffling seeds): 5 % cost the cross class (4) 0.50 and the average 0.043, over
    # the demo's accuracy budget; 10-15 % cost the class 0.175-0.26 and the average
    # 0.010-0.019. The shipped 12 % model: class 0.2175, average 0.0135. A rare class in
    # every model's training instead (10 %, 30 %) left the parent itself at 0.16 on it, or
    # the pruned models no worse on it than the parent.
    tail_class: int | None = 4
    tail_fraction: float = 0.12
    width: int = 16
    dropout: float = 0.2
    epochs: int = 8
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    parent_seed: int = 0
    reference_seed: int = 100
    member_seeds: tuple[int, ...] = (1, 2)
    ratios: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.925, 0.95)
    moderate_ratio: float = 0.8  # the pruned model that should pass comfortably
    deployed_ratio: float = 0.95  # the demo's point; also the pruned ensemble's ratio
    finetune_epochs: int = 3  # per pruning step of the parent ...
    final_finetune_epochs: int = 8  # ... and after its last step
    finetune_lr: float = 0.01
    # The other ensemble members take a shorter schedule (None: every ratio up
    # to deployed_ratio); it must end at deployed_ratio.
    member_ratios: tuple[float, ...] | None = (0.7, 0.9, 0.95)
    member_finetune_epochs: int = 1
    member_final_finetune_epochs: int = 3
    # Intra-op threads while building. One, on purpose: on a shared 2-core CPU,
    # two OpenMP threads per process spin at barriers while peers hold the
    # cores and training becomes ~20x slower; one thread degrades gracefully.
    # Not part of the zoo's identity (see fingerprint).
    threads: int = 1

    def validate(self) -> None:
        """Raise ``PrunecheckError`` naming the first inconsistent field."""
        problems = []
        if not self.ratios or any(not 0.0 < r < 1.0 for r in self.ratios):
            problems.append(f"ratios must be non-empty and in (0, 1), found {self.ratios}")
        elif list(self.ratios) != sorted(set(self.ratios)):
            problems.append(f"ratios must be strictly increasing, found {self.ratios}")
        for key in ("moderate_ratio", "deployed_ratio"):
            if getattr(self, key) not in self.ratios:
                problems.append(f"{key} must be one of ratios {self.ratios}, found {getattr(self, key)}")
        if self.tail_class is not None and self.tail_class not in range(len(DEMO_CLASSES)):
            problems.append(f"tail_class must be None or a class id 0..{len(DEMO_CLASSES) - 1}, found {self.tail_class}")
        if not 0.0 < self.tail_fraction <= 1.0:
            problems.append(f"tail_fraction must be in (0, 1], found {self.tail_fraction}")
        for key in ("train_size", "test_size", "epochs", "batch_size", "width", "threads"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1, found {getattr(self, key)}")
        if self.member_ratios is not None and (
            not set(self.member_ratios) <= set(self.ratios)
            or list(self.member_ratios) != sorted(set(self.member_ratios))
            or self.member_ratios[-1] != self.deployed_ratio
        ):
            problems.append(
                f"member_ratios must be increasing ratios from {self.ratios} ending at deployed_ratio "
                f"{self.deployed_ratio}, found {self.member_ratios}"
            )
        for key in ("finetune_epochs", "final_finetune_epochs", "member_finetune_epochs",
                    "member_final_finetune_epochs"):
            if getattr(self, key) < 0:
                problems.append(f"{key} must be >= 0, found {getattr(self, key)}")
        seeds = (self.parent_seed, self.reference_seed, *self.member_seeds)
        if len(set(seeds)) != len(seeds):
            problems.append(f"parent, reference and member seeds must differ, found {seeds}")
        if problems:
            raise PrunecheckError("demo zoo config: " + "; ".join(problems))

    def fingerprint(self) -> str:
        """Hash of everything that decides the zoo's weights: this recipe (threads
        excluded), ``ZOO_VERSION``, and the dataset generator's version and parameters."""
        recipe = {k: v for k, v in asdict(self).items() if k != "threads"}
        generator = {"version": GENERATOR_VERSION, "classes": DEMO_CLASSES, "image_size": IMAGE_SIZE,
                     "mean": DEMO_MEAN, "std": DEMO_STD}
        text = json.dumps({"zoo": ZOO_VERSION, "data": generator, **recipe}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def ratio_tag(ratio: float) -> str:
    """``0.9 -> "wt90"``; ``0.95 -> "wt95"``; ``0.975 -> "wt97.5"``."""
    pct = round(ratio * 100, 6)
    return f"wt{int(pct)}" if float(pct).is_integer() else f"wt{pct:g}"


# --------------------------------------------------------------------------- training

def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> normalised float32, as the engine does."""
    x = torch.from_numpy(images).float().div_(255.0)
    mean = torch.tensor(DEMO_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DEMO_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def long_tail(images: np.ndarray, labels: np.ndarray, cfg: ZooConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training split with only the first ``tail_fraction`` of ``tail_class``'s images kept.

    Returns the images and labels unchanged when ``cfg.tail_class`` is None.
    """
    if cfg.tail_class is None:
        return images, labels
    rare = np.flatnonzero(labels == cfg.tail_class)
    dropped = rare[int(round(cfg.tail_fraction * rare.size)):]
    keep = np.ones(labels.shape[0], dtype=bool)
    keep[dropped] = False
    return images[keep], labels[keep]


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros over the weights of every prunable layer (``prunecheck.nn.layers``)."""
    weights = [m.weight.detach() for m in prunable_layers(model).values()]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total


def _train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
    cfg: ZooConfig, seed: int, report: Callable[[int], None],
) -> None:
    """SGD + momentum with a cosine schedule; random flips as augmentation.

    Run inside :func:`prunecheck.pruning.keep_mask` (as the prune-retrain driver
    does), pruned weights stay exactly zero.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout; the caller forks the global RNG
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    model.train()
    for epoch in range(epochs):
        report(epoch)
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xb = x[idx]
            flip = torch.rand(idx.shape[0], generator=gen) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


@torch.no_grad()
def accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        correct += int((model(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum())
    return correct / max(1, x.shape[0])


def _prune_schedule(
    model: nn.Module, ratios: tuple[float, ...], x: torch.Tensor, y: torch.Tensor, *,
    cfg: ZooConfig, seed: int, label: str, progress: Progress, epochs: int, final_epochs: int,
) -> list[PruneStep]:
    """Prune ``model`` iteratively to each cumulative ratio with the library's driver.

    ``global_magnitude`` (WT) at every step; already-pruned weights are exact
    zeros, so each step extends the previous mask. Every step fine-tunes
    ``epochs`` epochs under the step's fixed mask, the last one ``final_epochs``.
    """
    steps = iter(enumerate(ratios, start=1))

    def finetune(net: nn.Module, _mask: dict[str, torch.Tensor]) -> nn.Module:
        step, ratio = next(steps)
        n_epochs = final_epochs if step == len(ratios) else epochs
        where = f"demo zoo: pruned {label} to {ratio * 100:g}% ({step}/{len(ratios)})"
        progress(where)
        _train(
            net, x, y, epochs=n_epochs, lr=cfg.finetune_lr, cfg=cfg, seed=seed * 1000 + step,
            report=lambda e: progress(f"{where}, fine-tune epoch {e + 1}/{n_epochs}"),
        )
        return net

    return iterative_prune(model, "global_magnitude", ratios, finetune)


# --------------------------------------------------------------------------- building

def build_zoo(out_dir: Path, cfg: ZooConfig, progress: Progress = lambda s: None) -> dict[str, Any]:
    """Train every zoo model into ``out_dir`` (which must exist) and write the manifest.

    Not atomic and not locked: use :func:`ensure_zoo`. Runs under a forked
    global RNG and ``cfg.threads`` intra-op threads, restored afterwards.

    Returns:
        The manifest as written.
    """
    cfg.validate()
    started = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            manifest = _build(out_dir, cfg, progress)
    finally:
        torch.set_num_threads(threads_before)
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    _write_json(out_dir / MANIFEST, manifest)
    return manifest


def _build(out_dir: Path, cfg: ZooConfig, progress: Progress) -> dict[str, Any]:
    xtr_u8, ytr = generate_demo_images("train", cfg.train_size, cfg.data_seed)
    progress(f"demo zoo: generated data ({len(ytr)} train; {cfg.test_size} test images)")
    xte_u8, yte = generate_demo_images("test", cfg.test_size, cfg.data_seed)
    xtr, ytr_t = to_input(xtr_u8), torch.from_numpy(ytr)
    xte, yte_t = to_input(xte_u8), torch.from_numpy(yte)
    models: dict[str, dict[str, Any]] = {}

    def save(name: str, state: dict[str, torch.Tensor], **info: Any) -> None:
        path = out_dir / f"{name}.pt"
        torch.save(state, path)
        net = DemoNet(width=cfg.width, dropout=cfg.dropout)
        net.load_state_dict(state)
        models[name] = {
            "file": path.name, "sha256": file_sha256(path),
            "accuracy": round(accuracy_on(net, xte, yte_t), 6),
            "sparsity": round(weight_sparsity(net), 6), **info,
        }

    seeds = [("parent", cfg.parent_seed), ("reference", cfg.reference_seed)]
    seeds += [(f"member{i}", s) for i, s in enumerate(cfg.member_seeds, start=1)]
    nets: dict[str, nn.Module] = {}
    for k, (name, seed) in enumerate(seeds, start=1):
        torch.manual_seed(seed)
        net = DemoNet(width=cfg.width, dropout=cfg.dropout)
        _train(
            net, xtr, ytr_t, epochs=cfg.epochs, lr=cfg.lr, cfg=cfg, seed=seed,
            report=lambda e, name=name, k=k: progress(
                f"demo zoo: training {name} ({k}/{len(seeds)}) epoch {e + 1}/{cfg.epochs}"
            ),
        )
        nets[name] = net
        role = {"parent": "parent", "reference": "reference"}.get(name, "member")
        save(name, net.state_dict(), role=role, seed=seed, ratio=0.0)

    family: list[dict[str, Any]] = []
    steps = _prune_schedule(
        nets["parent"], cfg.ratios, xtr, ytr_t, cfg=cfg, seed=cfg.parent_seed, label="parent", progress=progress,
        epochs=cfg.finetune_epochs, final_epochs=cfg.final_finetune_epochs,
    )
    for step in steps:
        tag = ratio_tag(step.ratio)
        save(f"{tag}-pre", step.pre_finetune.state_dict(), role="pre_finetune", ratio=step.ratio, source="parent")
        save(tag, step.finetuned.state_dict(), role="pruned", ratio=step.ratio, source="parent",
             pre_finetune=f"{tag}-pre")
        family.append({"model": tag, "pre_finetune": f"{tag}-pre", "ratio": step.ratio})

    deployed_steps = cfg.member_ratios or tuple(r for r in cfg.ratios if r <= cfg.deployed_ratio)
    pruned_members = []
    for name, seed in seeds[2:]:
        last = _prune_schedule(
            nets[name], deployed_steps, xtr, ytr_t, cfg=cfg, seed=seed, label=name, progress=progress,
            epochs=cfg.member_finetune_epochs, final_epochs=cfg.member_final_finetune_epochs,
        )[-1]
        member = f"{name}-{ratio_tag(last.ratio)}"
        save(member, last.finetuned.state_dict(), role="pruned_member", ratio=last.ratio, source=name)
        pruned_members.append(member)

    tail = None
    if cfg.tail_class is not None:
        deployed = next(step for step in steps if step.ratio == cfg.deployed_ratio)
        net, tail = _tail_model(deployed, xtr_u8, ytr, cfg, progress)
        save(tail["model"], net.state_dict(), role="tail", ratio=deployed.ratio, source="parent",
             pre_finetune=f"{ratio_tag(deployed.ratio)}-pre")

    return {
        "zoo_version": ZOO_VERSION,
        "config_fingerprint": cfg.fingerprint(),
        "config": asdict(cfg),
        "dataset": {"generator_version": GENERATOR_VERSION, "seed": cfg.data_seed,
                    "train_size": cfg.train_size, "test_size": cfg.test_size},
        "tail": tail,
        "architecture": {"factory": "prunecheck.demo.net:DemoNet",
                         "kwargs": {"num_classes": 10, "width": cfg.width, "dropout": cfg.dropout}},
        "models": models,
        "family": family,
        "ratios": list(cfg.ratios),
        "moderate": ratio_tag(cfg.moderate_ratio),
        "deployed": ratio_tag(cfg.deployed_ratio),
        "ensemble": ["parent"] + [name for name, _ in seeds[2:]],
        "ensemble_pruned": [ratio_tag(cfg.deployed_ratio)] + pruned_members,
    }


def _tail_model(
    deployed: PruneStep, xtr_u8: np.ndarray, ytr: np.ndarray, cfg: ZooConfig, progress: Progress,
) -> tuple[nn.Module, dict[str, Any]]:
    """``wt<D>-tail``: the deployed step's pre-fine-tune snapshot fine-tuned like the deployed
    model (same epochs, learning rate and seed, same fixed mask), on the long-tailed split.

    Returns:
        The model and its manifest entry ``tail``.
    """
    x_u8, y = long_tail(xtr_u8, ytr, cfg)
    name = f"{ratio_tag(deployed.ratio)}-tail"
    net = copy.deepcopy(deployed.pre_finetune)
    rare = int((y == cfg.tail_class).sum())
    where = (f"demo zoo: {name}, fine-tuned with class {cfg.tail_class} ({DEMO_CLASSES[cfg.tail_class]}) "
             f"rare ({rare} of {int((ytr == cfg.tail_class).sum())} images)")
    progress(where)
    step = cfg.ratios.index(deployed.ratio) + 1  # as _prune_schedule numbers and seeds the steps
    epochs = cfg.final_finetune_epochs if step == len(cfg.ratios) else cfg.finetune_epochs
    with keep_mask(net, deployed.mask):
        _train(
            net, to_input(x_u8), torch.from_numpy(y), epochs=epochs, lr=cfg.finetune_lr, cfg=cfg,
            seed=cfg.parent_seed * 1000 + step,
            report=lambda e: progress(f"{where}, fine-tune epoch {e + 1}/{epochs}"),
        )
    return net, {"model": name, "class": cfg.tail_class, "class_name": DEMO_CLASSES[cfg.tail_class],
                 "fraction": cfg.tail_fraction, "class_train_images": rare, "train_images": int(len(y))}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True))


def read_manifest(zoo_dir: Path) -> dict[str, Any] | None:
    """The zoo's manifest, or None when missing or unreadable."""
    try:
        return json.loads((Path(zoo_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def zoo_is_valid(zoo_dir: Path, cfg: ZooConfig) -> bool:
    """True when ``zoo_dir`` holds a complete zoo of this version and config, hashes intact."""
    manifest = read_manifest(zoo_dir)
    if not manifest or manifest.get("zoo_version") != ZOO_VERSION:
        return False
    if manifest.get("config_fingerprint") != cfg.fingerprint():
        return False
    try:
        return all(
            file_sha256(Path(zoo_dir) / info["file"]) == info["sha256"]
            for info in manifest["models"].values()
        )
    except (OSError, KeyError, TypeError):
        return False


def ensure_zoo(zoo_dir: Path, progress: Progress = lambda s: None, config: ZooConfig | None = None) -> Path:
    """Return ``zoo_dir`` holding a valid demo zoo, building it first if needed.

    Safe when several processes call it at once: one builds (in a temporary
    sibling folder, renamed into place when complete), the others wait on the
    lock file ``<zoo_dir>.lock`` and then reuse the result.

    Args:
        zoo_dir: where the zoo lives (created with its parents).
        progress: called with one line of text per training epoch / step.
        config: build recipe; ``None`` is the demo's :class:`ZooConfig`.

    Returns:
        ``zoo_dir``.
    """
    cfg = config or ZooConfig()
    cfg.validate()
    zoo_dir = Path(zoo_dir)
    if zoo_is_valid(zoo_dir, cfg):
        progress(f"demo zoo: reusing {zoo_dir}")
        return zoo_dir
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(zoo_dir.with_name(zoo_dir.name + ".lock")):
        if zoo_is_valid(zoo_dir, cfg):  # another process built it while we waited
            progress(f"demo zoo: reusing {zoo_dir}")
            return zoo_dir
        progress(f"demo zoo: building in {zoo_dir} (first use; 1-3 minutes on a 2-core CPU)")
        with built_directory(zoo_dir) as tmp:
            manifest = build_zoo(tmp, cfg, progress)
    progress(f"demo zoo: ready in {zoo_dir} (built in {manifest['build_seconds']:.1f} s)")
    return zoo_dir


def load_zoo_model(zoo_dir: Path, name: str) -> nn.Module:
    """Load one zoo model by manifest name (eval mode), for scripts and tests."""
    manifest = read_manifest(zoo_dir)
    if manifest is None or name not in manifest.get("models", {}):
        known = sorted((manifest or {}).get("models", {}))
        raise PrunecheckError(f"demo zoo {zoo_dir}: expected a model named one of {known}, found {name!r}")
    kwargs = manifest["architecture"]["kwargs"]
    net = DemoNet(**kwargs)
    state = torch.load(Path(zoo_dir) / manifest["models"][name]["file"], weights_only=True)
    net.load_state_dict(state)
    return net.eval()


__all__ = [
    "ZOO_VERSION", "ZooConfig", "accuracy_on", "build_zoo", "ensure_zoo", "load_zoo_model", "long_tail",
    "ratio_tag", "read_manifest", "to_input", "weight_sparsity", "zoo_is_valid",
]
