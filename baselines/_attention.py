"""Shared pieces of the attention baselines (transformer, fna, mha, dot_attention, odeformer, cta).

* :func:`absolute_times` turns the contract's elapsed times ``t`` (B, L) into absolute timestamps
  ``s = cumsum(t)`` (``s = 1..L`` when ``t`` is None);
* :class:`SinusoidalTimeEncoding`: the fixed continuous-time encoding of a timestamp, sines and
  cosines of ``s`` at geometric frequencies ``w_k = max_period^(-k / (D/2))`` (the Transformer's
  positional encoding evaluated at real times instead of integer positions, as in the
  continuous positional encodings of mTAN/time2vec, here without learned frequencies);
* :class:`InputEmbedding`: linear projection of the input to ``d_model`` plus, optionally, the
  time encoding of ``s`` (or of the step index);
* :func:`allowed_keys` / :func:`masked_softmax`: key-padding and causal masks; a masked key gets
  weight exactly 0 (logit -inf), so padded steps never change the outputs at valid steps;
* :class:`MultiHeadSelfAttention`: softmax(QK^T / sqrt(d_h)) V over heads, with a
  :meth:`~MultiHeadSelfAttention.log_kernel` hook that FNA overrides;
* :class:`EncoderBlock` (attention + feed-forward, residuals, LayerNorm, post- or pre-norm) and
  :class:`AttentionEncoder`, the contract-following encoder the Transformer, FNA and ODEFormer
  baselines share.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nac.contract import SequenceModel, last_valid_step

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU}


def check_input(x: torch.Tensor, input_dim: int) -> None:
    """Raise a clear error unless x is (B, L, input_dim)."""
    if x.dim() != 3 or x.shape[-1] != input_dim:
        raise ValueError(f"expected x of shape (B, L, {input_dim}), got {tuple(x.shape)}")


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name`` (relu, gelu, tanh, elu)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not valid; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def absolute_times(
    t: torch.Tensor | None, mask: torch.Tensor | None, batch: int, length: int, like: torch.Tensor
) -> torch.Tensor:
    """Absolute timestamps (B, L): ``cumsum(t)`` with padded steps contributing 0; ``1..L`` if t is None."""
    if t is None:
        return torch.arange(1, length + 1, dtype=like.dtype, device=like.device).expand(batch, length)
    t = t.to(dtype=like.dtype, device=like.device)
    if t.shape != (batch, length):
        raise ValueError(f"t must be (B, L) = {(batch, length)}, got {tuple(t.shape)}")
    if mask is not None:
        t = t * mask
    return t.cumsum(dim=1)


def step_index(batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """Step positions 1..L as a (B, L) tensor in the dtype/device of ``like``."""
    return absolute_times(None, None, batch, length, like)


class SinusoidalTimeEncoding(nn.Module):
    """Fixed features of a real timestamp: ``[sin(s w_k), cos(s w_k)]``, ``w_k = max_period^(-k/half)``.

    ``k = 0..half-1`` with ``half = dim // 2``, so the periods run geometrically from 2 pi to about
    2 pi * max_period (Vaswani et al.'s positional encoding, evaluated at continuous times). An odd
    ``dim`` gets a trailing zero feature. No parameters.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if dim < 1 or max_period <= 0:
            raise ValueError(f"need dim >= 1 and max_period > 0, got dim={dim}, max_period={max_period}")
        self.dim, self.max_period = int(dim), float(max_period)
        half = self.dim // 2
        exponents = torch.arange(half, dtype=torch.float64) / max(half, 1)
        self.register_buffer("freqs", self.max_period**-exponents, persistent=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """s (B, L) -> (B, L, dim)."""
        angles = s[..., None] * self.freqs.to(dtype=s.dtype)
        features = [torch.sin(angles), torch.cos(angles)]
        if self.dim % 2:
            features.append(torch.zeros_like(s)[..., None])
        return torch.cat(features, dim=-1)


class InputEmbedding(nn.Module):
    """``Linear(x) + TE(s)``: the input projected to ``d_model`` plus an optional time encoding.

    ``time_encoding=True`` encodes the absolute timestamps ``s = cumsum(t)`` (1..L when t is None);
    otherwise ``position_encoding=True`` encodes the step index 1..L (an ordinary positional
    encoding that ignores t); with both False the embedding is the projection alone.
    """

    def __init__(
        self,
        input_dim: int,
        d_model: int,
        time_encoding: bool = True,
        position_encoding: bool = True,
        max_period: float = 10_000.0,
    ):
        super().__init__()
        self.proj = nn.Linear(input_dim, d_model)
        self.time_encoding, self.position_encoding = bool(time_encoding), bool(position_encoding)
        self.encoding = SinusoidalTimeEncoding(d_model, max_period) if (time_encoding or position_encoding) else None

    def forward(self, x: torch.Tensor, t: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        z = self.proj(x)
        if self.encoding is None:
            return z
        b, length, _ = x.shape
        s = absolute_times(t, mask, b, length, z) if self.time_encoding else step_index(b, length, z)
        return z + self.encoding(s)


def allowed_keys(mask: torch.Tensor | None, length: int, causal: bool, device: torch.device) -> torch.Tensor | None:
    """Which keys each query may attend to, (B or 1, 1, L, L) bool, or None when all may.

    ``mask`` (B, L) True for valid steps excludes padded keys; ``causal`` excludes keys after the query.
    """
    allowed = None
    if mask is not None:
        allowed = mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    if causal:
        tri = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]
        allowed = tri if allowed is None else allowed & tri
    return allowed


def prepare_input(
    x: torch.Tensor, mask: torch.Tensor | None, input_dim: int, causal: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check x is (B, L, input_dim); return the mask as bool on x's device and the allowed keys."""
    check_input(x, input_dim)
    if mask is not None:
        mask = mask.to(device=x.device, dtype=torch.bool)
    return mask, allowed_keys(mask, x.shape[1], causal, x.device)


def masked_softmax(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis with disallowed keys at weight exactly 0.

    A row with no allowed key (a sequence with no valid step) gets all-zero weights, not NaN.
    """
    if allowed is None:
        return torch.softmax(logits, dim=-1)
    any_allowed = allowed.any(dim=-1, keepdim=True)
    logits = torch.where(allowed, logits, float("-inf"))
    logits = torch.where(any_allowed, logits, 0.0)
    return torch.softmax(logits, dim=-1) * allowed


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: per head ``A = softmax(log_kernel(q, k))``, output ``concat_h(A V) W_o``.

    The default log-kernel is the scaled dot product ``q k^T / sqrt(d_h)``. ``head_dim`` defaults to
    ``d_model // num_heads`` (Keras' ``key_dim`` lets it differ). ``qk_bias`` controls the bias of
    the query/key projections, ``bias`` that of the value and output projections.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        qk_bias: bool = True,
    ):
        super().__init__()
        if head_dim is None:
            if d_model % num_heads:
                raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
            head_dim = d_model // num_heads
        self.d_model, self.num_heads, self.head_dim = int(d_model), int(num_heads), int(head_dim)
        inner = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, inner, bias=qk_bias)
        self.k_proj = nn.Linear(d_model, inner, bias=qk_bias)
        self.v_proj = nn.Linear(d_model, inner, bias=bias)
        self.out_proj = nn.Linear(inner, d_model, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)

    def _split(self, z: torch.Tensor) -> torch.Tensor:
        b, length, _ = z.shape
        return z.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

    def log_kernel(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Unnormalised log attention weights (B, H, L, L) from q, k (B, H, L, d_h)."""
        return q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)

    def weights(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """Attention weights (B, H, L, L), rows summing to 1 over allowed keys (no dropout)."""
        return masked_softmax(self.log_kernel(self._split(self.q_proj(x)), self._split(self.k_proj(x))), allowed)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, d_model) -> (output (B, L, d_model), weights (B, H, L, L))."""
        b, length, _ = x.shape
        weights = self.weights(x, allowed)
        heads = self.attn_dropout(weights) @ self._split(self.v_proj(x))
        return self.out_proj(heads.transpose(1, 2).reshape(b, length, -1)), weights


class EncoderBlock(nn.Module):
    """Attention + position-wise feed-forward, each with dropout, a residual and a LayerNorm.

    Post-norm (``norm_first=False``, the original Transformer): ``x = LN(x + Attn(x))``,
    ``x = LN(x + FF(x))``; pre-norm: ``x = x + Attn(LN(x))``, ``x = x + FF(LN(x))``.
    """

    def __init__(
        self,
        d_model: int,
        attention: nn.Module,
        dim_feedforward: int,
        dropout: float = 0.0,
        activation_name: str = "relu",
        norm_first: bool = False,
    ):
        super().__init__()
        self.attention, self.norm_first = attention, bool(norm_first)
        self.feedforward = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            make_activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model),
        )
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.norm_first:
            a, weights = self.attention(self.norm1(x), allowed)
            x = x + self.dropout1(a)
            return x + self.dropout2(self.feedforward(self.norm2(x))), weights
        a, weights = self.attention(x, allowed)
        x = self.norm1(x + self.dropout1(a))
        return self.norm2(x + self.dropout2(self.feedforward(x))), weights


class AttentionEncoder(SequenceModel):
    """A stack of :class:`EncoderBlock` over an embedding of the input, following the contract.

    ``attention`` builds the attention module of one block (called once per layer; the module maps
    ``(x, allowed)`` to ``(output, weights)``); ``embedding`` maps ``(x, t, mask)`` to (B, L, d_model)
    tokens (default :class:`InputEmbedding`). Output (B, d_model) at each sample's last valid step,
    or (B, L, d_model) with ``return_sequences``; with ``return_attention`` a tuple
    ``(output, [weights (B, H, L, L) per layer])``.
    """

    def __init__(
        self,
        input_dim: int,
        attention: Callable[[], nn.Module],
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        causal: bool = False,
        time_encoding: bool = True,
        position_encoding: bool = True,
        max_period: float = 10_000.0,
        return_sequences: bool = False,
        return_attention: bool = False,
        embedding: nn.Module | None = None,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers={num_layers} must be >= 1")
        self.input_dim, self.output_dim = int(input_dim), int(d_model)
        self.d_model, self.num_heads, self.num_layers = int(d_model), int(num_heads), int(num_layers)
        self.causal, self.norm_first = bool(causal), bool(norm_first)
        self.return_sequences, self.return_attention = bool(return_sequences), bool(return_attention)
        self.embedding = (
            embedding
            if embedding is not None
            else InputEmbedding(input_dim, d_model, time_encoding, position_encoding, max_period)
        )
        self.embed_dropout = nn.Dropout(dropout)
        ff = int(dim_feedforward) if dim_feedforward else 4 * self.d_model
        self.layers = nn.ModuleList(
            EncoderBlock(d_model, attention(), ff, dropout, activation, norm_first) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    @property
    def uses_time(self) -> bool:
        return self.embedding.time_encoding

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        mask, allowed = prepare_input(x, mask, self.input_dim, self.causal)
        h = self.embed_dropout(self.embedding(x, t, mask))
        attention = []
        for layer in self.layers:
            h, weights = layer(h, allowed)
            attention.append(weights)
        out = self.final_norm(h)
        if not self.return_sequences:
            out = last_valid_step(out, mask)
        return (out, attention) if self.return_attention else out

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, heads={self.num_heads}, layers={self.num_layers}, causal={self.causal}, "
            f"norm_first={self.norm_first}, uses_time={self.uses_time}"
        )


__all__ = [
    "AttentionEncoder",
    "EncoderBlock",
    "InputEmbedding",
    "MultiHeadSelfAttention",
    "SinusoidalTimeEncoding",
    "absolute_times",
    "allowed_keys",
    "check_input",
    "make_activation",
    "masked_softmax",
    "prepare_input",
    "step_index",
]
