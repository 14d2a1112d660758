"""The demo's small CNN: Conv-BN-ReLU blocks, pooling, dropout, one linear head."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DemoNet(nn.Module):
    """A small CNN for 32x32 RGB images (factory ``"prunecheck.demo.net:DemoNet"``).

    Layout: conv(w) @32 -> pool -> conv(2w) @16 -> pool -> conv(4w), conv(4w) @8
    -> pool -> conv(4w) @4 -> global average pool -> Dropout(p) -> Linear(4w, classes).
    Every conv is followed by BatchNorm2d and ReLU. The dropout before the
    classifier is what MC dropout switches on at evaluation time.

    Args:
        num_classes: output logits.
        width: channels of the first conv; later stages use 2x and 4x.
        dropout: probability of the dropout before the classifier.

    Shapes:
        input float [B, 3, 32, 32] (normalised), output logits [B, num_classes].
    """

    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.2):
        super().__init__()
        if num_classes < 1 or width < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                "DemoNet: expected num_classes >= 1, width >= 1 and 0 <= dropout < 1, "
                f"found num_classes={num_classes}, width={width}, dropout={dropout}"
            )
        w = width
        self.features = nn.Sequential(
            *_block(3, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w), *_block(4 * w, 4 * w), nn.MaxPool2d(2),
            *_block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))
