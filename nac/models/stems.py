"""Stems: per-domain feature extractors applied before the sequence model.

A stem follows ``forward(x, t, mask) -> (x, t, mask)`` (it may change the length, e.g. a strided
convolution, and then also resamples ``t`` and ``mask``) and exposes ``output_dim``.
"""

from __future__ import annotations

import torch
from torch import nn


class IdentityStem(nn.Module):
    """Pass the input through unchanged."""

    def __init__(self, in_features: int):
        super().__init__()
        self.output_dim = int(in_features)

    def forward(self, x, t=None, mask=None):
        return x, t, mask


class LinearStem(nn.Module):
    """A per-step linear map (optionally followed by an activation); keeps the time grid."""

    def __init__(self, in_features: int, out_features: int, activation: str | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = {None: nn.Identity(), "relu": nn.ReLU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}[activation]
        self.output_dim = int(out_features)

    def forward(self, x: torch.Tensor, t=None, mask=None):
        return self.act(self.linear(x)), t, mask
