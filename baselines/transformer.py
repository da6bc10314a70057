"""Transformer encoder baseline with a continuous-time encoding of the timestamps.

Reference: Vaswani et al. 2017, "Attention is all you need" (encoder only); the time encoding
follows the continuous positional encodings of irregular-time-series models (time2vec, mTAN):
the sinusoidal positional encoding evaluated at real timestamps.

Computed: ``h_0 = W x_i + TE(s_i)`` with ``s = cumsum(t)`` the absolute timestamps (``s = 1..L``
when ``t`` is None) and ``TE`` fixed sines/cosines at geometric frequencies
(:class:`baselines._attention.SinusoidalTimeEncoding`); then ``num_layers`` encoder blocks
(multi-head softmax self-attention and a feed-forward layer, residuals, LayerNorm, post-norm by
default). Padded keys get weight exactly 0, so padding never changes valid outputs; ``causal``
also hides future keys. Output at each sample's last valid step (or every step).

Time: only through ``TE(s)``. With ``time_encoding=False`` the encoder sees the step index 1..L
instead (``position_encoding=True``) or no order information at all, and ignores ``t``.
"""

from __future__ import annotations

from functools import partial

from baselines._attention import AttentionEncoder, MultiHeadSelfAttention


class Transformer(AttentionEncoder):
    """Transformer encoder over ``Linear(x) + TE(cumsum(t))``; see the module docstring."""

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
        time_encoding: bool = True,
        position_encoding: bool = True,
        max_period: float = 10_000.0,
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
            time_encoding=time_encoding,
            position_encoding=position_encoding,
            max_period=max_period,
            return_sequences=return_sequences,
            return_attention=return_attention,
        )
