"""The demo zoo shipped inside the package: built once, evaluated everywhere.

CPU training depends on the platform's kernels, so a zoo trained on first use
is a different zoo on every machine. The demo therefore ships its trained
weights (``prunecheck/demo/data/weights.npz``, half precision, pruned tensors
sparse; see :mod:`prunecheck.demo.compact`) with a ``manifest.json``:

- ``config_fingerprint``: :meth:`ZooConfig.fingerprint` of the recipe it was
  built with (training config, zoo version, dataset generator version and
  parameters);
- ``data_probe``: labels and per-image mean pixel values of the first test
  images, so a changed generator is caught even without a version bump;
- per model: role, prune ratio, sparsity and test accuracy measured on the
  shipped (half-precision) weights;
- ``weights_sha256``: the archive's hash.

``pytest suites/`` only unpacks the archive into ``<cache_dir>/demo-zoo``
(:func:`install_shipped_zoo`, a fraction of a second). ``prunecheck demo build``
retrains and rewrites both files (:func:`build_shipped_zoo`);
:func:`stale_reasons` says why a shipped zoo no longer matches the code.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from prunecheck.core.io import built_directory, file_lock, file_sha256, write_text
from prunecheck.data.demo import generate_demo_images
from prunecheck.demo import compact
from prunecheck.demo.net import DemoNet
from prunecheck.demo.zoo import (
    MANIFEST,
    Progress,
    ZooConfig,
    accuracy_on,
    build_zoo,
    read_manifest,
    to_input,
)
from prunecheck.core.errors import PrunecheckError

if TYPE_CHECKING:
    from prunecheck.config.settings import Settings

#: Where the shipped zoo lives inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "data"
WEIGHTS = "weights.npz"
#: Test images whose labels and mean pixel values are recorded in the manifest.
PROBE_IMAGES = 32
#: Allowed difference of a probe image's mean pixel value (grey levels, 0-255): a
#: few pixels one grey level off (a platform's last-ulp rounding) move it by ~0.001;
#: any change of the generator by far more.
PROBE_TOLERANCE = 0.05


def data_probe(cfg: ZooConfig) -> dict[str, list]:
    """Labels and per-image mean pixel values (0-255) of the first test images of ``cfg``."""
    images, labels = generate_demo_images("test", PROBE_IMAGES, cfg.data_seed)
    means = images.reshape(PROBE_IMAGES, -1).astype(np.float64).mean(axis=1)
    return {"labels": [int(v) for v in labels], "mean_pixel": [round(float(v), 4) for v in means]}


def stale_reasons(manifest: dict[str, Any] | None, cfg: ZooConfig | None = None) -> list[str]:
    """Why ``manifest`` does not describe a zoo of the current code; empty when it does.

    Checks the config fingerprint (recipe, zoo version, generator version and
    parameters) and the data probe (the generator still draws the same images).
    """
    cfg = cfg or ZooConfig()
    if manifest is None:
        return ["no readable manifest"]
    reasons = []
    if manifest.get("config_fingerprint") != cfg.fingerprint():
        reasons.append(
            f"config fingerprint {manifest.get('config_fingerprint')!r} != current {cfg.fingerprint()!r} "
            "(the training recipe, ZOO_VERSION or the dataset generator's version/parameters changed)"
        )
    probe, now = manifest.get("data_probe") or {}, data_probe(cfg)
    if probe.get("labels") != now["labels"]:
        reasons.append("the dataset generator draws other labels than the shipped zoo was trained on")
    elif len(probe.get("mean_pixel", [])) != len(now["mean_pixel"]) or any(
        abs(a - b) > PROBE_TOLERANCE for a, b in zip(probe["mean_pixel"], now["mean_pixel"])
    ):
        reasons.append("the dataset generator draws other pixels than the shipped zoo was trained on")
    return reasons


def shipped_manifest(shipped_dir: Path = SHIPPED_DIR) -> dict[str, Any]:
    """The shipped manifest; a missing or unreadable one is an error that says how to rebuild."""
    manifest = read_manifest(shipped_dir)
    if manifest is None or not (Path(shipped_dir) / WEIGHTS).is_file():
        raise PrunecheckError(
            f"demo zoo: expected {Path(shipped_dir) / MANIFEST} and {WEIGHTS} (shipped with the package), "
            "found none; rebuild them with `prunecheck demo build`"
        )
    return manifest


# --------------------------------------------------------------------------- install

def _installed_ok(zoo_dir: Path, manifest: dict[str, Any]) -> bool:
    installed = read_manifest(zoo_dir)
    if not installed or installed.get("weights_sha256") != manifest["weights_sha256"]:
        return False
    return all((zoo_dir / info["file"]).is_file() for info in installed["models"].values())


def install_shipped_zoo(zoo_dir: Path, progress: Progress = lambda s: None, *,
                        shipped_dir: Path = SHIPPED_DIR) -> Path:
    """Unpack the shipped zoo into ``zoo_dir`` as float32 state dicts (``<name>.pt``) plus manifest.

    Reuses ``zoo_dir`` when it already holds this archive's models. Safe under
    pytest-xdist: one process unpacks (into a temporary sibling renamed into
    place) while the others wait on ``<zoo_dir>.lock``.

    Raises:
        PrunecheckError: no shipped zoo, or its archive does not match its manifest.
    """
    manifest = shipped_manifest(shipped_dir)
    zoo_dir = Path(zoo_dir)
    if _installed_ok(zoo_dir, manifest):
        return zoo_dir
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(zoo_dir.with_name(zoo_dir.name + ".lock")):
        if _installed_ok(zoo_dir, manifest):
            return zoo_dir
        archive = Path(shipped_dir) / WEIGHTS
        if file_sha256(archive) != manifest["weights_sha256"]:
            raise PrunecheckError(
                f"demo zoo: {archive}: expected sha256 {manifest['weights_sha256']} (manifest), found another; "
                "rebuild with `prunecheck demo build`"
            )
        progress(f"demo zoo: unpacking the shipped zoo ({len(manifest['models'])} models) into {zoo_dir}")
        states = compact.read_archive(archive)
        with built_directory(zoo_dir, "install") as tmp:
            installed = json.loads(json.dumps(manifest))
            for name, info in installed["models"].items():
                info["file"] = f"{name}.pt"
                torch.save(states[name], tmp / info["file"])
            write_text(tmp / MANIFEST, json.dumps(installed, indent=2, sort_keys=True))
    return zoo_dir


# --------------------------------------------------------------------------- build

def build_shipped_zoo(out_dir: Path = SHIPPED_DIR, cfg: ZooConfig | None = None,
                      progress: Progress = lambda s: None) -> dict[str, Any]:
    """Train the zoo of ``cfg`` and write ``weights.npz`` + ``manifest.json`` into ``out_dir``.

    Accuracies in the manifest are measured on the half-precision weights as
    stored. The previous files are replaced only once the new ones are complete.

    Returns:
        The manifest as written.
    """
    cfg = cfg or ZooConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo-build-", dir=out_dir) as tmp:
        build_zoo(Path(tmp), cfg, progress)
        return ship_built_zoo(Path(tmp), out_dir, cfg, progress)


def ship_built_zoo(built_dir: Path, out_dir: Path, cfg: ZooConfig,
                   progress: Progress = lambda s: None) -> dict[str, Any]:
    """Pack a zoo trained by :func:`prunecheck.demo.zoo.build_zoo` with ``cfg`` into ``out_dir``.

    Returns:
        The manifest as written.
    """
    built = read_manifest(built_dir)
    if built is None or built.get("config") != json.loads(json.dumps(asdict(cfg))):
        raise PrunecheckError(f"demo zoo: expected a zoo built with {cfg} in {built_dir}, found another")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    states = {name: torch.load(Path(built_dir) / info["file"], weights_only=True)
              for name, info in built["models"].items()}
    archive = out_dir / (WEIGHTS + ".new")
    compact.write_archive(archive, states)
    stored = compact.read_archive(archive)
    progress(f"demo zoo: measuring {len(stored)} models on the stored half-precision weights")
    x_u8, y = generate_demo_images("test", cfg.test_size, cfg.data_seed)
    x, y_t = to_input(x_u8), torch.from_numpy(y)
    manifest = {k: v for k, v in built.items() if k != "models"}
    manifest["config_fingerprint"] = cfg.fingerprint()
    manifest["models"] = {}
    for name, info in built["models"].items():
        net = DemoNet(**built["architecture"]["kwargs"])
        net.load_state_dict(stored[name])
        entry = {k: v for k, v in info.items() if k not in ("file", "sha256")}
        entry["accuracy"] = round(accuracy_on(net, x, y_t), 6)
        manifest["models"][name] = entry
    manifest["data_probe"] = data_probe(cfg)
    manifest["storage"] = {"file": WEIGHTS, "dtype": "float16", "sparse_min_zeros": compact.SPARSE_MIN_ZEROS}
    manifest["weights_sha256"] = file_sha256(archive)
    os.replace(archive, out_dir / WEIGHTS)
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    size_kb = (out_dir / WEIGHTS).stat().st_size / 1024
    progress(f"demo zoo: wrote {out_dir / WEIGHTS} ({size_kb:.0f} KiB) and {out_dir / MANIFEST}")
    return manifest


__all__ = [
    "SHIPPED_DIR", "WEIGHTS", "build_shipped_zoo", "ship_built_zoo", "data_probe", "install_shipped_zoo", "shipped_manifest",
    "stale_reasons",
]


def installed_demo_settings(cache_dir: Path, report_dir: Path, progress: Callable[[str], None]) -> "Settings":
    """The built-in demo's settings over the shipped zoo, unpacked once into ``<cache_dir>/demo-zoo``:
    what ``pytest suites/`` and the ``prunecheck`` command run when no config file is found."""
    from prunecheck.demo.settings import demo_settings

    zoo = install_shipped_zoo(Path(cache_dir) / "demo-zoo", progress)
    return demo_settings(zoo, cache_dir=Path(cache_dir), report_dir=Path(report_dir))
