"""Building blocks for testing gates: planted models and small datasets in real formats.

Used by prunecheck's own tests and useful for users who want to show that a gate
fires. ``RedChannelNet`` classifies an image by the mean of its first channel,
so its weights decide exactly which classes it gets right: zeroing a class row is
a "pruned" model with a known accuracy drop.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Red value step between classes in :func:`class_colour_images`.
RED_STEP = 25


class RedChannelNet(nn.Module):
    """logits = fc(mean of channel 0); with :func:`red_channel_weights` it is exact.

    Args:
        num_classes: output width.
        scale: multiplies the logits (1 = the planted parent; 3 = same argmax,
            overconfident).
        noise_gain: adds ``noise_gain * spatial std of channel 0`` to the last class
            logit: invisible on clean constant-colour images, harmful under input noise.
    """

    def __init__(self, num_classes: int = 10, scale: float = 1.0, noise_gain: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(1, num_classes)
        self.scale = float(scale)
        self.noise_gain = float(noise_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1]
        logits = self.fc(red.mean(dim=(2, 3))) * self.scale
        if self.noise_gain:
            spread = red.flatten(1).std(dim=1, keepdim=True)
            logits = logits + torch.nn.functional.pad(spread * self.noise_gain, (logits.shape[1] - 1, 0))
        return logits


def red_channel_weights(num_classes: int = 10, sharpness: float = 200.0) -> dict[str, torch.Tensor]:
    """State dict making RedChannelNet pick the class whose red level is nearest.

    With feature f = red/255 and class levels s*c (s = RED_STEP/255), the logit
    k*(c*f - s*c^2/2) is maximal at the nearest level (a quadratic in c).
    """
    s = RED_STEP / 255.0
    c = torch.arange(num_classes, dtype=torch.float32)
    return {
        "fc.weight": (sharpness * c).view(num_classes, 1),
        "fc.bias": -sharpness * s * c**2 / 2,
    }


def class_colour_images(n: int, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 32, 32, 3] constant-colour images (red = RED_STEP * label) and int labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = (labels * RED_STEP)[:, None, None]
    images[..., 1:] = rng.integers(0, 256, size=(n, 1, 1, 2), dtype=np.uint8)
    return images, labels


def write_cifar10(root: Path, images: np.ndarray, labels: np.ndarray, *, train: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write ``images`` (uint8 [N, 32, 32, 3]) as CIFAR-10's python ``test_batch``.

    Same layout as the released archive: ``<root>/cifar-10-batches-py/`` with
    ``test_batch`` ({b"data": uint8 [N, 3072] channel-major rows, b"labels": list})
    and ``batches.meta``. Returns the batches folder.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, imgs: np.ndarray, labs: np.ndarray) -> None:
        data = np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)).reshape(len(imgs), 3072)
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labs], b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(len(imgs))]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)

    dump("test_batch", images, labels)
    if train is not None:
        for i in range(1, 6):
            dump(f"data_batch_{i}", *train)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": len(images),
                     b"num_vis": 3072}, handle, protocol=2)
    return folder


class DropoutRedChannelNet(nn.Module):
    """RedChannelNet with a BatchNorm on its feature and dropout on its logits (MC dropout tests).

    ``logits = dropout(fc(bn(mean of channel 0))) * scale``. In eval mode the
    BatchNorm uses its running statistics, so with :func:`dropout_red_channel_weights`
    it predicts like RedChannelNet; MC dropout makes the passes differ.

    Args:
        num_classes: output width.
        scale: multiplies the logits.
        p: dropout probability.
    """

    def __init__(self, num_classes: int = 10, scale: float = 1.0, p: float = 0.3):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.fc = nn.Linear(1, num_classes)
        self.dropout = nn.Dropout(p)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.bn(x[:, :1].mean(dim=(2, 3)))
        return self.dropout(self.fc(feature)) * self.scale


def dropout_red_channel_weights(
    num_classes: int = 10, sharpness: float = 200.0, *, running_mean: float = 0.0, running_var: float = 1.0
) -> dict[str, torch.Tensor]:
    """State dict of :class:`DropoutRedChannelNet`: :func:`red_channel_weights` plus BatchNorm.

    The BatchNorm's affine part undoes its running statistics
    (``weight = sqrt(running_var + eps)``, ``bias = running_mean``), so the
    feature reaches ``fc`` unchanged in eval mode whatever statistics are chosen;
    a BatchNorm wrongly switched to train mode changes them (and the outputs).
    """
    eps = 1e-5
    weights = red_channel_weights(num_classes, sharpness)
    weights.update({
        "bn.weight": torch.tensor([float(np.sqrt(running_var + eps))]),
        "bn.bias": torch.tensor([float(running_mean)]),
        "bn.running_mean": torch.tensor([float(running_mean)]),
        "bn.running_var": torch.tensor([float(running_var)]),
        "bn.num_batches_tracked": torch.tensor(0),
    })
    return weights


def minimal_config(kind: str = "cifar10", root: str = "c10", dataset_extra: str = "") -> str:
    """The smallest valid ``prunecheck.toml`` text: dataset ``c``, models ``p`` and ``q``, one pair.

    Nothing it names has to exist: it is for tests of parsing and validation.
    ``dataset_extra`` lines go into the ``[datasets.c]`` table.
    """
    extra = f"\n{dataset_extra}" if dataset_extra else ""
    return (
        f'[datasets.c]\nkind = "{kind}"\nroot = "{root}"{extra}\n\n'
        '[models.p]\nfactory = "m:f"\nweights = "p.pt"\n\n'
        '[models.q]\nfactory = "m:f"\nweights = "q.pt"\n\n'
        '[[pairs]]\nparent = "p"\npruned = "q"\ndataset = "c"\n'
    )


def model_table(name: str, weights: str, factory: str = "RedChannelNet", **kwargs: object) -> str:
    """TOML for a ``[models.<name>]`` entry of a planted model from this module."""
    lines = [f'[models."{name}"]', f'factory = "prunecheck.testing:{factory}"', f'weights = "{weights}"']
    if kwargs:
        lines.append("kwargs = { " + ", ".join(f"{k} = {v!r}" for k, v in kwargs.items()) + " }")
    return "\n".join(lines) + "\n"


def write_planted_project(
    root: Path,
    *,
    config: str,
    datasets: dict[str, tuple[np.ndarray, np.ndarray]],
    checkpoints: dict[str, dict[str, torch.Tensor]],
    suites: tuple[Path, ...] = (),
    batch_size: int = 64,
) -> Path:
    """Write a small gate project the way a user lays one out, for pytester runs.

    Each dataset is written in CIFAR-10's real format under ``<root>/<name>`` and
    declared as ``[datasets.<name>]`` (normalisation mean 0, std 1, so pixel values
    reach the planted models unchanged); each checkpoint is saved as
    ``<root>/<name>.pt``; ``config`` (models, pairs, gates) is appended to a CPU
    ``[run]`` table in ``prunecheck.toml``; the suite files are copied to ``suites/``.
    """
    root = Path(root)
    tables = [f'[run]\ndevice = "cpu"\nbatch_size = {batch_size}\n']
    for name, (images, labels) in datasets.items():
        write_cifar10(root / name, images, labels)
        tables.append(
            f'[datasets."{name}"]\nkind = "cifar10"\nroot = "{name}"\nmean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\n'
        )
    for name, state in checkpoints.items():
        torch.save(state, root / f"{name}.pt")
    (root / "prunecheck.toml").write_text("\n".join(tables) + "\n" + config)
    if suites:
        (root / "suites").mkdir(exist_ok=True)
        for suite in suites:
            (root / "suites" / Path(suite).name).write_text(Path(suite).read_text())
    return root
