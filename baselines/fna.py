"""Fractional Neural Attention (FNA) encoder baseline.

Reference: Qu, Ly, Gong 2025, "Fractional neural attention for efficient multiscale sequence
processing", arXiv 2511.10208 (authors' code: GitHub CKQu1/fractional-attn, "rdfns" attention);
restated in docs/FNA.md, which this file implements.

Computed: the Transformer baseline's encoder (:mod:`baselines.transformer`: embedding, blocks with
residuals, LayerNorm and feed-forward) with softmax(QK^T/sqrt(d)) replaced, per head (head size
``d_h``, bias-free q/k projections), by the row-normalised heavy-tailed kernel of query-key
*distances*, the jump kernel of an alpha-stable Levy process:

* ``r_ij = ||q_i - k_j||_2 / s``;
* ``alpha < 2``:  ``K_ij = (1 + r_ij / eps^(1/alpha))^-(d_h + alpha)`` (power law);
* ``alpha >= 2``: ``K_ij = exp(-(r_ij / eps^(1/alpha))^(alpha / (alpha - 1)))`` (alpha = 2: Gaussian);
* masked keys (padding, future keys when causal) get ``K_ij = 0``; ``A_ij = K_ij / sum_j K_ij``;
* output ``A V``, heads concatenated and projected.

It is computed in the stable form ``softmax_j(log K_ij)`` with ``log K = -inf`` on masked keys,
which equals the masked row normalisation exactly. ``alpha``, ``eps`` and ``s`` are fixed
constants. Distance scale ``s`` (``distance_scale``): ``"auto"`` (default) is ``"text"`` for
alpha < 2 and ``"sqrt"`` for alpha >= 2; ``"text"`` = ``sqrt(d_h) / (2^(1/d_h) - 1)`` (the authors'
text models: the kernel is about 1/2 at the typical distance sqrt(d_h)); ``"dim"`` = ``d_h`` (their
image and translation models); ``"sqrt"`` = ``sqrt(d_h)``; or a positive number.

Time: FNA has no notion of time; as in the Transformer baseline, timestamps enter only through the
continuous-time encoding ``TE(cumsum(t))`` added to the projected input (``time_encoding``).
Cost: O(L^2) like ordinary attention.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from baselines._attention import AttentionEncoder, MultiHeadSelfAttention


def distance_scale(rule: str | float, alpha: float, head_dim: int) -> float:
    """The distance scale ``s`` for a rule (auto, text, dim, sqrt) or a positive number."""
    if isinstance(rule, str):
        if rule == "auto":
            rule = "text" if alpha < 2 else "sqrt"
        if rule == "text":
            return math.sqrt(head_dim) / (2.0 ** (1.0 / head_dim) - 1.0)
        if rule == "dim":
            return float(head_dim)
        if rule == "sqrt":
            return math.sqrt(head_dim)
        raise ValueError(f"distance_scale={rule!r} is not valid; choose auto, text, dim, sqrt or a number")
    if not rule > 0:
        raise ValueError(f"distance_scale={rule} must be positive")
    return float(rule)


def fractional_log_kernel(q: torch.Tensor, k: torch.Tensor, alpha: float, eps: float, scale: float) -> torch.Tensor:
    """``log K_ij`` of FNA for q (..., Lq, d_h), k (..., Lk, d_h) -> (..., Lq, Lk)."""
    u = torch.cdist(q, k) / (scale * eps ** (1.0 / alpha))
    if alpha < 2:
        return -(q.shape[-1] + alpha) * torch.log1p(u)
    return -u.pow(alpha / (alpha - 1.0))


class FractionalAttention(MultiHeadSelfAttention):
    """Multi-head attention with FNA's row-normalised distance kernel instead of softmax(QK^T/sqrt(d))."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        alpha: float = 1.2,
        eps: float = 1.0,
        scale: str | float = "auto",
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__(d_model, num_heads, dropout=dropout, bias=bias, qk_bias=False)
        if not alpha > 0 or not eps > 0:
            raise ValueError(f"need alpha > 0 and eps > 0, got alpha={alpha}, eps={eps}")
        self.alpha, self.eps = float(alpha), float(eps)
        self.scale = distance_scale(scale, self.alpha, self.head_dim)

    def log_kernel(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return fractional_log_kernel(q, k, self.alpha, self.eps, self.scale)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, eps={self.eps}, scale={self.scale:.4g}, head_dim={self.head_dim}"


class FNA(AttentionEncoder):
    """Encoder of FNA blocks over ``Linear(x) + TE(cumsum(t))``; see the module docstring."""

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        alpha: float = 1.2,
        eps: float = 1.0,
        distance_scale: str | float = "auto",
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
        attention = partial(
            FractionalAttention, d_model, num_heads, alpha=alpha, eps=eps, scale=distance_scale, dropout=dropout
        )
        super().__init__(
            input_dim,
            attention,
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
        self.alpha, self.eps = float(alpha), float(eps)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, eps={self.eps}, " + super().extra_repr()
