"""ODEFormer-style encoder baseline: each observation embedded together with its timestamp.

Reference: d'Ascoli, Becker, Mathis, Schwaller, Kilbertus 2023, "ODEFormer: symbolic regression of
dynamical systems with transformers" (arXiv 2310.05573). ODEFormer reads a trajectory as a set of
tokens ``(t_i, x_i)`` with a transformer encoder and decodes a symbolic ODE with a transformer
decoder. The NAC paper uses "ODEFormer" as a sequence-encoder baseline; this file implements **the
encoder architecture only** (no symbolic decoder, no pre-training, no beam search).

Computed: token ``e_i = W [s_i / time_scale, x_i] + b`` (one linear embedding of the timestamp and the
observation together), then ``num_layers`` transformer encoder blocks (softmax multi-head
self-attention + feed-forward, residuals, LayerNorm; padded keys weight 0, optional ``causal``).
No positional encoding is added: order and spacing enter only through ``s``. Output at each
sample's last valid step (or every step).

Time: ``s = cumsum(t)``, the absolute timestamps (``s = 1..L`` when t is None), divided by the
constant ``time_scale``. ``uses_time`` is always True.

Simplifications with respect to ODEFormer: real numbers are embedded linearly, not tokenised
into sign/mantissa/exponent tokens; no per-trajectory rescaling of time or values (``time_scale``
is a fixed constant, so outputs at a step never depend on later steps); small default sizes.
Note that the NAC authors' own Keras ``ODEformer`` layer differs from both: it iterates one shared
attention block as ``y <- y + h * Block(y)`` and passes no time.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from baselines._attention import AttentionEncoder, MultiHeadSelfAttention, absolute_times


class TimeValueEmbedding(nn.Module):
    """``Linear([s / time_scale, x])``: an observation and its absolute timestamp as one token."""

    time_encoding = True  # the embedding always uses t

    def __init__(self, input_dim: int, d_model: int, time_scale: float = 1.0):
        super().__init__()
        if not time_scale > 0:
            raise ValueError(f"time_scale={time_scale} must be positive")
        self.time_scale = float(time_scale)
        self.proj = nn.Linear(input_dim + 1, d_model)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        s = absolute_times(t, mask, x.shape[0], x.shape[1], x) / self.time_scale
        return self.proj(torch.cat([s[..., None], x], dim=-1))


class ODEFormerEncoder(AttentionEncoder):
    """Transformer encoder over tokens ``Linear([s_i, x_i])``; see the module docstring."""

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        causal: bool = False,
        time_scale: float = 1.0,
        return_sequences: bool = False,
        return_attention: bool = False,
    ):
        super().__init__(
            input_dim,
            partial(MultiHeadSelfAttention, d_model, num_heads, dropout=dropout),
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation=activation,
            norm_first=norm_first,
            causal=causal,
            return_sequences=return_sequences,
            return_attention=return_attention,
            embedding=TimeValueEmbedding(input_dim, d_model, time_scale),
        )
