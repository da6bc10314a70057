"""Stem -> sequence model -> head, composed into one classifier or regressor."""

from __future__ import annotations

import torch
from torch import nn


class SequencePredictor(nn.Module):
    """Compose a stem, a sequence model (the model under test) and a head."""

    def __init__(self, stem: nn.Module, sequence_model: nn.Module, head: nn.Module):
        super().__init__()
        self.stem, self.sequence_model, self.head = stem, sequence_model, head

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        x, t, mask = self.stem(x, t, mask)
        return self.head(self.sequence_model(x, t, mask))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
