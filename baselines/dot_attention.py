"""Plain single-head dot-product self-attention: the NAC paper's "attention" baseline.

Reference: Luong et al. 2015 (dot-product attention); in the NAC authors' scripts the baseline is
Keras ``Attention()([x, x])``: query = key = value = the stem features, no learned projections of
its own, weights ``softmax(q k^T)`` (Keras' default is unscaled, ``use_scale=False``).

Computed: ``z = W_in x (+ TE)`` (a linear projection to ``d_model``, needed so the output has the
contract's width), then ``softmax(scale * z z^T) z`` with ``q = k = v = z``. ``scale``:
``"sqrt"`` (default) ``1/sqrt(d_model)``; ``"none"`` 1 (Keras' default); ``"learned"`` a learned
scalar initialised at 1 (Keras' ``use_scale=True``). Padded keys get weight 0; ``causal`` hides
future keys (Keras' ``use_causal_mask``). Output at each sample's last valid step (the authors
flattened the whole sequence instead).

Time: by default none, as in the paper (``uses_time=False``); ``time_encoding=True`` adds the
continuous-time encoding of ``s = cumsum(t)`` to ``z`` (``position_encoding``: of the step index).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from baselines._attention import InputEmbedding, masked_softmax, prepare_input
from nac.contract import SequenceModel, last_valid_step

Scale = Literal["sqrt", "none", "learned"]


class DotProductAttention(SequenceModel):
    """Single-head ``softmax(scale * z z^T) z`` over the projected input; see the module docstring."""

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        scale: Scale = "sqrt",
        dropout: float = 0.0,
        causal: bool = False,
        time_encoding: bool = False,
        position_encoding: bool = False,
        max_period: float = 10_000.0,
        return_sequences: bool = False,
        return_attention: bool = False,
    ):
        super().__init__()
        if scale not in ("sqrt", "none", "learned"):
            raise ValueError(f"scale={scale!r} is not valid; choose one of ['learned', 'none', 'sqrt']")
        self.input_dim, self.output_dim = int(input_dim), int(d_model)
        self.scale_mode, self.causal = scale, bool(causal)
        self.return_sequences, self.return_attention = bool(return_sequences), bool(return_attention)
        self.embedding = InputEmbedding(input_dim, d_model, time_encoding, position_encoding, max_period)
        self.scale = nn.Parameter(torch.ones(())) if scale == "learned" else None
        self.attn_dropout = nn.Dropout(dropout)

    @property
    def uses_time(self) -> bool:
        return self.embedding.time_encoding

    def _factor(self, d: int):
        if self.scale is not None:
            return self.scale
        return 1.0 / math.sqrt(d) if self.scale_mode == "sqrt" else 1.0

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        mask, allowed = prepare_input(x, mask, self.input_dim, self.causal)
        z = self.embedding(x, t, mask)
        logits = (z @ z.transpose(-1, -2)) * self._factor(z.shape[-1])
        weights = masked_softmax(logits, None if allowed is None else allowed[:, 0])
        out = self.attn_dropout(weights) @ z
        if not self.return_sequences:
            out = last_valid_step(out, mask)
        return (out, weights) if self.return_attention else out

    def extra_repr(self) -> str:
        return f"d_model={self.output_dim}, scale={self.scale_mode}, causal={self.causal}, uses_time={self.uses_time}"
