"""``prunecheck init``: a starting project for a CIFAR-10-style setup.

Writes a commented ``prunecheck.toml`` and copies the gate suites into
``suites/``. The suites ship inside the package as ``prunecheck.suites_template``
(a package, so every install has them, editable or not); its files are symlinks to
the repository's top-level ``suites/`` (one source; a wheel stores their content). Existing files are never
overwritten unless ``force`` is set.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from prunecheck.core.errors import PrunecheckError

TEMPLATE_PACKAGE = "prunecheck.suites_template"

CONFIG_TEMPLATE = '''\
# prunecheck configuration: which pruned models to gate, on which data, how strictly.
# Full reference: docs/configuration.md. Relative paths are relative to this file.
#
# Lines marked  # <-- REPLACE  are placeholders for your project (data folder, model
# factory, checkpoints): nothing there exists yet. `prunecheck validate --deep` lists
# every one still missing, all at once; then run the gates with `pytest suites/`.

[run]
device = "auto"            # "auto" (CUDA if available), "cpu", "cuda" or "cuda:N"
batch_size = 256
cache_dir = ".prunecheck-cache"   # predictions and generated corruptions, reused across runs
report_dir = "reports"     # prunecheck.json / .md / .html and plots/ are written here
seed = 0                   # same seed, same numbers (noise, MC dropout, bootstrap)
# limit = 1000             # evaluate only the first N images of every dataset (quick runs)

# -- data --------------------------------------------------------------------------------
[datasets.cifar10]
kind = "cifar10"
root = "data"              # <-- REPLACE: the folder holding cifar-10-batches-py/
split = "test"
# mean/std default to the usual CIFAR-10 statistics; use the ones your models were trained with:
# mean = [0.4914, 0.4822, 0.4465]
# std = [0.2470, 0.2435, 0.2616]
# corruptions_root = "data/CIFAR-10-C"   # released CIFAR-10-C files; without it corruptions are generated
# corruption_profile = "auto"   # generated corruptions: "cifar" (CIFAR-10-C constants), "imagenet", "auto" (by size)

# Optional out-of-distribution data for the OOD overconfidence gates, e.g. SVHN as an image folder:
# [datasets.ood]
# kind = "imagefolder"
# root = "data/svhn"

# -- models ------------------------------------------------------------------------------
# factory = "module:callable" builds the architecture (importable from this folder); the
# state dict in `weights` is loaded into it with torch.load(weights_only=True).
[models.parent]
factory = "models:resnet20"          # <-- REPLACE: your architecture, e.g. a models.py next to this file
kwargs = { num_classes = 10 }        # <-- REPLACE: the factory's keyword arguments
weights = "checkpoints/parent.pt"    # <-- REPLACE: the unpruned model's state dict

[models.wt80]                        # 80% of the weights pruned, then fine-tuned
factory = "models:resnet20"          # <-- REPLACE
kwargs = { num_classes = 10 }
weights = "checkpoints/wt80.pt"      # <-- REPLACE: a pruned, fine-tuned state dict

[models.wt90]
factory = "models:resnet20"          # <-- REPLACE
kwargs = { num_classes = 10 }
weights = "checkpoints/wt90.pt"      # <-- REPLACE

# A separately trained unpruned model: the baseline for functional similarity.
# [models.reference]
# factory = "models:resnet20"
# kwargs = { num_classes = 10 }
# weights = "checkpoints/reference.pt"

# -- what to gate ------------------------------------------------------------------------
[[pairs]]
name = "wt80"
parent = "parent"
pruned = "wt80"
dataset = "cifar10"
methods = ["msp"]            # add "mc_dropout" for models with dropout layers
# reference = "reference"    # enables the "closer than a reference" similarity gate
# ood_dataset = "ood"        # enables the OOD entropy gate
# pre_finetune = "wt80-pre"  # the pruned model before fine-tuning (pruning instability)
# suites = ["test_accuracy_margin.py"]  # check this pair with these suite files only (default: all)

# A family of pruned versions of one parent: prune potential and excess error per corruption.
[[families]]
name = "wt"
parent = "parent"
dataset = "cifar10"
members = [{ model = "wt80", ratio = 0.8 }, { model = "wt90", ratio = 0.9 }]
deployed = "wt80"            # the member you intend to ship

# Known failures you accept for now: listed gates of this pair report as XFAIL, not FAIL.
# expect_fail = ["uncertainty"]   (inside a [[pairs]] or [[families]] block)

# -- thresholds (defaults shown; every key is optional) -----------------------------------
# mode: "point" compares the estimate; "confident" needs the whole 95% bootstrap interval
# within the threshold; "lenient" fails only if the whole interval is outside it.
[gates.accuracy_margin]
max_drop = 0.005             # accuracy(parent) - accuracy(pruned), a fraction (0.005 = 0.5 pp)
mode = "point"

[gates.uncertainty]
max_ause_increase = 0.01
max_ece_increase = 0.02
max_nll_increase = 0.1

[gates.corruptions]
corruptions = ["benchmark"]  # the 15 benchmark corruptions; or names, "extra", "all"
severities = [3]
max_drop = 0.005
delta = 0.005                # prune potential tolerance
policy = "mean"              # deployed ratio <= mean (or "min") prune potential over corruptions

[gates.functional]
eps = [0.0, 0.1, 0.2, 0.3]   # uniform input noise, normalised space
min_agreement = 0.9

[gates.instability]
max_instability = 0.5
'''


def suite_templates() -> dict[str, str]:
    """The shipped suite files, ``{file name: source}``."""
    root = resources.files(TEMPLATE_PACKAGE)
    return {
        item.name: item.read_text(encoding="utf-8")
        for item in sorted(root.iterdir(), key=lambda p: p.name)
        if item.name.startswith("test_") and item.name.endswith(".py")
    }


def scaffold(directory: Path, *, force: bool = False) -> list[Path]:
    """Write ``prunecheck.toml`` and ``suites/test_*.py`` into ``directory``.

    Args:
        directory: Project folder; created if missing.
        force: Overwrite files that already exist.

    Returns:
        The files written.

    Raises:
        PrunecheckError: When a file exists and ``force`` is not set (nothing is
            written then), or the directory cannot be written.
    """
    directory = Path(directory)
    files = {directory / "prunecheck.toml": CONFIG_TEMPLATE}
    files.update({directory / "suites" / name: text for name, text in suite_templates().items()})
    existing = [path for path in files if path.exists()]
    if existing and not force:
        shown = ", ".join(str(path) for path in existing)
        raise PrunecheckError(f"not overwriting existing files: {shown} (use --force to replace them)")
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PrunecheckError(f"cannot write the project into {directory}: {exc}") from None
    return list(files)
