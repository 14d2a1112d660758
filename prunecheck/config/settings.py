"""The validated configuration: plain frozen dataclasses, no parsing here.

``prunecheck.config.loader`` turns a TOML file (``prunecheck.toml`` or
``[tool.prunecheck]`` in ``pyproject.toml``) into a :class:`Settings`; with no
file, ``prunecheck.demo`` provides the embedded demo settings. Everything
downstream (engine, fixtures, suites) reads only these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prunecheck.config.options import GATE_MODES, GateMode, SuiteOptions, default_gate_options

__all__ = ["GATE_MODES", "GateMode", "CORRUPTION_BACKENDS"]  # and the dataclasses below

ModelFormat = Literal["state_dict", "torchscript", "pickle", "safetensors", "torch_pruning", "exported", "onnx"]
DatasetKind = Literal["cifar10", "cifar100", "imagefolder", "imagenet-val", "demo"]
CorruptionBackend = Literal["imagecorruptions", "torch"]
CORRUPTION_BACKENDS: tuple[str, ...] = ("imagecorruptions", "torch")


@dataclass(frozen=True)
class RunSettings:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    batch_size: int = 256
    cache_dir: Path = Path(".prunecheck-cache")
    report_dir: Path = Path("reports")
    seed: int = 0
    limit: int | None = None  # evaluate only the first N samples of every dataset
    num_workers: int = 0
    bootstrap_resamples: int = 1000
    channels_last: bool = False  # models and batches in channels-last memory format
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype of forward passes
    # generated corruptions: "imagecorruptions" (reference) or "torch" (batched, CPU/GPU, for
    # the corruptions it covers; the others still use the reference; docs/performance.md)
    corruption_backend: CorruptionBackend = "imagecorruptions"
    # Prediction cache: a folder or an fsspec URL (s3://bucket/prefix); None = <cache_dir>/predictions.
    prediction_cache: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: DatasetKind
    root: Path | None = None
    split: str = "test"  # cifar: train | test; imagefolder: subfolder or "" for root itself
    download: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: int | None = None  # imagefolder: shorter side resized to this, then ...
    crop: int | None = None  # ... centre-cropped to crop x crop
    corruptions_root: Path | None = None  # released CIFAR-10-C / ImageNet-C files, if any
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific extras
    # constants of generated corruptions: "auto" (cifar up to 64 x 64, else imagenet) | "cifar" | "imagenet"
    corruption_profile: str = "auto"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: str | None = None  # "package.module:callable"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    format: ModelFormat = "state_dict"
    trust: bool = False  # required for format = "pickle"
    members: tuple[str, ...] = ()  # ensemble: names of other model entries
    ensemble_average: Literal["probs", "logits"] = "probs"
    input_shape: tuple[int, int, int] | None = None  # (3, H, W) for FLOPs; default from dataset
    state_dict_key: str | None = None  # where the state dict sits in a checkpoint dict ("state_dict", "ema.model")
    strip_prefix: str | None = None  # keep only keys with this prefix, removed ("model." for Lightning)


@dataclass(frozen=True)
class PairSpec:
    name: str
    parent: str
    pruned: str
    dataset: str
    reference: str | None = None
    ood_dataset: str | None = None
    methods: tuple[str, ...] = ("msp",)  # msp | mc_dropout | ensemble
    pre_finetune: str | None = None  # model entry: pruned model before fine-tuning
    schedule: tuple[str, ...] = ()  # model entries: pre-fine-tune checkpoint per pruning step
    # model entries: the fine-tuned model after each schedule step (same length as schedule);
    # step k's accuracy-before is schedule_finetuned[k-2] (seed 004: the network the step pruned)
    schedule_finetuned: tuple[str, ...] = ()
    mask_mode: Literal["unstructured", "channels"] = "unstructured"
    # Gates known to fail for this pair: reported as xfail with their full message, so a
    # known problem stays visible without failing CI (the demo uses it to show seed 002's point).
    expect_fail: tuple[str, ...] = ()
    # Suite files (e.g. "test_accuracy_margin.py") whose tests check this pair; empty: every
    # suite. A pair that needs only some checks then costs only their predictions.
    suites: tuple[str, ...] = ()


@dataclass(frozen=True)
class FamilyMember:
    model: str
    ratio: float | None = None  # None: measured from the model's zeros


@dataclass(frozen=True)
class FamilySpec:
    name: str
    parent: str
    dataset: str
    members: tuple[FamilyMember, ...]
    deployed: str | None = None  # the member whose ratio is gated against prune potential
    expect_fail: tuple[str, ...] = ()  # as PairSpec.expect_fail


@dataclass(frozen=True)
class Settings:
    source: str  # the config file path, or "<built-in demo>"
    run: RunSettings
    datasets: dict[str, DatasetSpec]
    models: dict[str, ModelSpec]
    pairs: tuple[PairSpec, ...]
    families: tuple[FamilySpec, ...] = ()
    # gates[suite] -> that suite's typed options (prunecheck.config.options), defaults filled in
    gates: dict[str, SuiteOptions] = field(default_factory=default_gate_options)
    is_demo: bool = False
