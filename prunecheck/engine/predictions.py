"""Predictions of one model on one view: full rows where a gate needs them, else per-sample summaries.

A full entry holds float32 log-probabilities [M, N, C] (M members or MC passes),
from which everything else is derived. A compact entry holds, per sample, only
what the accuracy-type and calibration gates read (:class:`PredictionSummary`):
the predicted class, max probability, the label's probability, entropy and
Σp² — 28 bytes instead of 4·C. Which one is stored is decided by what the view
is used for (see :mod:`prunecheck.session.workspace`): corruption views feed accuracy
gates only, so they are compact; MC passes, ensemble members, noise views
(functional similarity) and nominal data keep their rows.

Every summary is computed from the same float32 probabilities ``exp(log_probs)``
that :attr:`Predictions.probs` returns, with the same per-sample kernels as
:mod:`prunecheck.metrics`, so a gate reads the same numbers from either kind
(:mod:`prunecheck.engine.compact` lists the tolerance of each metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from prunecheck.core.errors import RowsNotStoredError
from prunecheck.metrics._validation import MetricInputError
from prunecheck.core.views import View

#: Arrays of a compact entry: name -> dtype. float32 fields are exact copies of
#: float32 probabilities; entropy and Σp² are float64 sums over the row.
SUMMARY_FIELDS: dict[str, np.dtype] = {
    "predicted": np.dtype(np.int32),
    "confidence": np.dtype(np.float32),
    "label_prob": np.dtype(np.float32),
    "entropy": np.dtype(np.float64),
    "sum_sq": np.dtype(np.float64),
}
SUMMARY_BYTES_PER_SAMPLE = sum(dtype.itemsize for dtype in SUMMARY_FIELDS.values())


@dataclass(frozen=True)
class PredictionSummary:
    """Per-sample summaries of class probabilities p [N, C] (numpy arrays, length N).

    Attributes:
        predicted: int32, argmax p (first maximal class on ties, as ``torch.argmax``).
        confidence: float32, max p.
        label_prob: float32, p[label].
        entropy: float64, -Σ p log p (nats).
        sum_sq: float64, Σ p²; Brier = Σp² - 2 p[label] + 1.
    """

    predicted: np.ndarray
    confidence: np.ndarray
    label_prob: np.ndarray
    entropy: np.ndarray
    sum_sq: np.ndarray

    @classmethod
    def from_probs(cls, probs: torch.Tensor, labels: torch.Tensor) -> "PredictionSummary":
        """Summaries of float32 probabilities [N, C] with int64 labels [N] (all < C).

        Rows are summarised in blocks, so the float64 temporaries stay small at N x C = 2e8.
        """
        p_all, y_all = probs.float(), labels.to(probs.device).view(-1, 1).long()
        block = max(1, (1 << 22) // max(1, p_all.shape[1]))
        parts = []
        for start in range(0, p_all.shape[0], block):
            p, y = p_all[start : start + block], y_all[start : start + block]
            q = p.double()
            parts.append(cls(
                predicted=p.argmax(dim=1).to(torch.int32).cpu().numpy(),
                confidence=p.amax(dim=1).cpu().numpy(),
                label_prob=p.gather(1, y)[:, 0].cpu().numpy(),
                entropy=(-torch.special.xlogy(q, q).sum(dim=1)).cpu().numpy(),
                sum_sq=(q * q).sum(dim=1).cpu().numpy(),
            ))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.from_arrays({name: np.empty(0, dtype) for name, dtype in SUMMARY_FIELDS.items()})
        return cls.concatenate(parts)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "PredictionSummary":
        return cls(**{name: np.asarray(arrays[name], dtype=dtype) for name, dtype in SUMMARY_FIELDS.items()})

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, name), dtype=dtype) for name, dtype in SUMMARY_FIELDS.items()}

    def __len__(self) -> int:
        return int(self.predicted.shape[0])

    @staticmethod
    def concatenate(parts: list["PredictionSummary"]) -> "PredictionSummary":
        return PredictionSummary(
            **{name: np.concatenate([getattr(part, name) for part in parts]) for name in SUMMARY_FIELDS}
        )


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predictions of one model (single, ensemble, or MC dropout) on one view.

    Exactly one of ``log_probs`` and ``compact`` is set.

    Attributes:
        log_probs: float32 [M, N, C]; M = members x MC passes (1 for a plain model).
        compact: per-sample summaries, when the view was stored without rows.
        labels: int64 [N].
        average: how members combine: "probs" (mean of probabilities) or "logits".
        classes: class names indexed by label, when the dataset has them.
    """

    model: str
    dataset: str
    view: View
    log_probs: torch.Tensor | None
    labels: torch.Tensor
    average: str = "probs"
    mc_passes: int = 0
    compact: PredictionSummary | None = None
    classes: tuple[str, ...] | None = None

    @property
    def has_rows(self) -> bool:
        """True when class probabilities are stored, False for a summaries-only entry."""
        return self.log_probs is not None

    def _rows(self) -> torch.Tensor:
        if self.log_probs is None:
            raise RowsNotStoredError(
                f"class probabilities of '{self.model}' on {self.dataset} [{self.view.id}] were stored as "
                "per-sample summaries (predicted class, max p, p[label], entropy, sum p^2), not rows; "
                "use prunecheck.engine.compact.score(predictions, metric) or request the view with rows=True"
            )
        return self.log_probs

    @cached_property
    def member_probs(self) -> torch.Tensor:
        """float32 [M, N, C] probabilities of each member / pass."""
        return self._rows().exp()

    @cached_property
    def probs(self) -> torch.Tensor:
        """float32 [N, C] combined class probabilities."""
        log_probs = self._rows()
        if log_probs.shape[0] == 1:
            return self.member_probs[0]
        if self.average == "logits":
            return torch.softmax(log_probs.mean(dim=0), dim=-1)
        return self.member_probs.mean(dim=0)

    def correct(self) -> np.ndarray:
        """bool [N]: argmax == label per image (from the summaries: rows are not needed)."""
        return self.summary.predicted == self.labels.cpu().numpy()

    @cached_property
    def summary(self) -> PredictionSummary:
        """Per-sample summaries of :attr:`probs` (stored, or computed from the rows)."""
        if self.compact is not None:
            return self.compact
        from prunecheck.metrics import validate_probs

        probs, labels = validate_probs(self.probs, self.labels)  # NaN, row sums, label range: once
        return PredictionSummary.from_probs(probs, labels)

    @cached_property
    def per_sample(self) -> dict[str, torch.Tensor]:
        """Validated per-sample tensors of :attr:`summary` that the gate metrics reduce (cached)."""
        return per_sample(self.summary, self.labels)

    @property
    def num_members(self) -> int:
        return int(self.log_probs.shape[0]) if self.log_probs is not None else 1

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def per_sample(summary: PredictionSummary, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """float64 / bool per-sample tensors of one summary, validated."""
    for name in ("confidence", "label_prob", "entropy", "sum_sq"):
        values = getattr(summary, name)
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise MetricInputError(f"predictions: expected finite probabilities, found {name} {values[bad]!r} at row {bad}")
    if len(summary) != labels.shape[0]:
        raise MetricInputError(f"predictions: expected {labels.shape[0]} summaries (one per label), found {len(summary)}")
    confidence = torch.from_numpy(summary.confidence).double()
    label_prob = torch.from_numpy(summary.label_prob).double()
    return {
        "correct": torch.from_numpy(summary.predicted).long() == labels.cpu().long(),
        "confidence": confidence,
        "label_prob": label_prob,
        "entropy": torch.from_numpy(summary.entropy),
        "brier": torch.from_numpy(summary.sum_sq) - 2.0 * label_prob + 1.0,
    }
