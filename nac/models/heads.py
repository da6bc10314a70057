"""Heads: map the sequence model's output (B, H) or (B, L, H) to predictions."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class MLPHead(nn.Sequential):
    """Dense layers with ReLU between them, then a linear output layer."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] | int = ()):
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
