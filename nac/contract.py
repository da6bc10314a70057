"""The calling convention every sequence model in the harness follows.

It sits below both the layers (nac/layers) and the models (nac/models, baselines), so either can
import it without a cycle; ``nac.models.contract`` re-exports it.

``forward(x, t=None, mask=None)``

* ``x``: (B, L, C) float, batch first;
* ``t``: (B, L) float, **elapsed time since the previous observation** (the ``ncps``
  convention; the first step's value is the time since the sequence start), or None for
  uniformly sampled data. Absolute timestamps are ``t.cumsum(1)``. Models that do not use
  time accept the argument and ignore it;
* ``mask``: (B, L) bool, True for valid steps, or None when every step is valid. Sequences
  are right-padded.

Returns (B, H) (the state at each sequence's last valid step) or, with
``return_sequences=True``, (B, L, H). Every model takes ``input_dim`` as its first
constructor argument and exposes ``input_dim`` and ``output_dim`` (= H).
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceModel(nn.Module):
    """Base class documenting the contract; subclasses set ``input_dim`` and ``output_dim``."""

    input_dim: int
    output_dim: int
    #: True when the model's output depends on the time input ``t``
    uses_time: bool = True
    #: True when padding (mask False) never changes the outputs at valid steps; a model that
    #: reproduces another code's masking quirk declares False (and a test checks the claim)
    padding_invariant: bool = True

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def last_valid_step(seq: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) -> (B, H): the output at each sample's last valid step (the last step if no mask)."""
    if mask is None:
        return seq[:, -1]
    positions = torch.arange(seq.shape[1], device=seq.device).expand_as(mask)
    last = torch.where(mask, positions, -1).max(dim=1).values.clamp(min=0)
    return seq[torch.arange(seq.shape[0], device=seq.device), last]
