"""Single multi-head self-attention layer: the NAC paper's "multi-head attention" baseline.

Reference: Vaswani et al. 2017 (multi-head attention); in the NAC authors' scripts the baseline is
Keras ``MultiHeadAttention(num_heads, key_dim)(x, x)`` applied directly to the stem features, with
no residual, no normalisation and no time input (their E-MNIST script: 8 heads, key_dim 32).

Computed: ``z = W_in x (+ TE)``; per head ``softmax(q k^T / sqrt(d_h)) v`` with q, k, v linear maps
of z; heads concatenated and projected to ``d_model`` (Keras' output projection); optionally
``z + MHA(z)`` (``residual``). ``head_dim`` is Keras' ``key_dim`` (default ``d_model // num_heads``).
Padded keys get weight 0; ``causal`` hides future keys. Output at each sample's last valid step.
Differences from the authors' use: their model flattened the whole (L, d) output into the next
dense layer (fixed length); the harness' contract takes the last valid step instead.

Time: by default none, as in the paper (``uses_time=False``). ``time_encoding=True`` adds the
continuous-time encoding of ``s = cumsum(t)`` to ``z``; ``position_encoding=True`` (used only
without time encoding) adds the encoding of the step index instead.
"""

from __future__ import annotations

import torch

from baselines._attention import InputEmbedding, MultiHeadSelfAttention, prepare_input
from nac.contract import SequenceModel, last_valid_step


class MultiHeadAttentionBaseline(SequenceModel):
    """One multi-head self-attention layer over the projected input; see the module docstring."""

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        head_dim: int | None = None,
        residual: bool = False,
        dropout: float = 0.0,
        causal: bool = False,
        time_encoding: bool = False,
        position_encoding: bool = False,
        max_period: float = 10_000.0,
        return_sequences: bool = False,
        return_attention: bool = False,
    ):
        super().__init__()
        self.input_dim, self.output_dim = int(input_dim), int(d_model)
        self.residual, self.causal = bool(residual), bool(causal)
        self.return_sequences, self.return_attention = bool(return_sequences), bool(return_attention)
        self.embedding = InputEmbedding(input_dim, d_model, time_encoding, position_encoding, max_period)
        self.attention = MultiHeadSelfAttention(d_model, num_heads, head_dim=head_dim, dropout=dropout)

    @property
    def uses_time(self) -> bool:
        return self.embedding.time_encoding

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        mask, allowed = prepare_input(x, mask, self.input_dim, self.causal)
        z = self.embedding(x, t, mask)
        out, weights = self.attention(z, allowed)
        if self.residual:
            out = z + out
        if not self.return_sequences:
            out = last_valid_step(out, mask)
        return (out, weights) if self.return_attention else out

    def extra_repr(self) -> str:
        return f"residual={self.residual}, causal={self.causal}, uses_time={self.uses_time}"
