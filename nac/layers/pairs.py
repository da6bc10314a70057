"""Per-pair quantities of NAC without materialising the pairs (docs/NAC.md 5).

The plain computation (``NeuronalAttentionCircuit.forward_reference``) gathers the K selected keys
and values of every query, builds the pair u_ij = [q_i; k_j] (B, H, T, K, 2D) with ``torch.cat``
and feeds it to the gate networks. :class:`Selection` computes the same numbers with less work:

* a linear map of the pair, ``[q_i; k_j] @ W + b = (q_i @ W_q + b) + k_j @ W_k``, is computed for the
  query part once per query and for the key part once per key (or per selected key), then added
  (:meth:`Selection.pair_linear`): no pair tensor, no ``cat``, half the per-pair matrix product;
* when every key is selected (K >= T, NAC-PW) nothing is gathered: key rows are broadcast and the
  weighted sum of values is one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def gather_keys(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) gathered at key indices idx (B|1, H|1, Tq, K) -> (B, H, Tq, K, D)."""
    b, h, _, d = x.shape
    tq, k = idx.shape[2:]
    flat = idx.expand(b, h, tq, k).reshape(b, h, tq * k, 1).expand(-1, -1, -1, d)
    return torch.gather(x, 2, flat).reshape(b, h, tq, k, d)


@dataclass
class Selection:
    """The keys each query attends to, and per-pair values computed from them.

    ``idx`` (B|1, H|1, Tq, K) key positions and ``valid`` whether each is a real candidate, as
    ``chunked_topk`` returns them; ``every=True`` says that ``idx`` is ``arange(T)`` for every query
    (all keys selected, in order), so key rows can be broadcast instead of gathered.
    ``keys`` (B, H, T, D) are the keys the pairs are built from. ``subset=True`` (with ``every``):
    a top-K selection written as a mask over every key, ``valid`` False at the keys not selected.
    """

    idx: torch.Tensor
    valid: torch.Tensor
    every: bool
    keys: torch.Tensor
    subset: bool = False
    _key_rows: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_queries(self) -> int:
        return self.idx.shape[2]

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, T, U) at the selected keys: (B, H, Tq, K, U) (a broadcast view when ``every``)."""
        if self.every:
            return x[:, :, None].expand(-1, -1, self.n_queries, -1, -1)
        return gather_keys(x, self.idx)

    def key_rows(self) -> torch.Tensor:
        """The selected keys (B, H, Tq, K, D), gathered once per forward pass and shared."""
        if self._key_rows is None:
            self._key_rows = self.rows(self.keys)
        return self._key_rows

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """Per-key scalars x (B, T) at the selected keys: (B, H|1, Tq, K), or (B, 1, 1, T) when ``every``."""
        if self.every:
            return x[:, None, None, :]
        b = x.shape[0]
        _, h, tq, k = self.idx.shape
        return torch.gather(x[:, None, None, :].expand(b, h, tq, -1), -1, self.idx.expand(b, h, tq, k))

    def pair_linear(self, q: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``[q_i; k_j] @ weight + bias`` for every query i and selected key j: (B, H, Tq, K, U).

        q (B, H, Tq, D); weight (2D, U), (in, out). The map is linear, so the query half
        ``q_i @ W_q + b`` is computed once per query and the key half ``k_j @ W_k`` once per key
        (``every``) or per selected key, instead of one (2D -> U) product per pair on a
        concatenated pair. For a narrow map (U <= D, e.g. the time interpolation's two outputs)
        ``k @ W_k`` is computed per key and gathered; for a wide one (the backbone's inter layer,
        U = 20 at D = 4) the D-wide keys are gathered and multiplied, which measured faster than
        gathering U-wide rows (forward and scatter-add backward).
        """
        d = q.shape[-1]
        w_q, w_k = weight[:d], weight[d:]
        query_part = F.linear(q, w_q.t(), bias)[:, :, :, None]  # (B, H, Tq, 1, U)
        if self.every:
            return query_part + (self.keys @ w_k)[:, :, None]  # broadcast over (Tq, T)
        if w_k.shape[1] <= d:
            key_part = self.rows(self.keys @ w_k)
        else:
            key_part = self.key_rows() @ w_k
        return key_part.add_(query_part)  # in place: a fresh gather / product output

    def weighted_sum(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``sum_j w_ij v_j`` over the selected keys: weights (B, H, Tq, K), values (B, H, T, D)
        -> (B, H, Tq, D); one (Tq, T) @ (T, D) product when every key is selected."""
        if self.every:
            return torch.matmul(weights, values)
        return torch.einsum("bhqk,bhqkd->bhqd", weights, self.rows(values))
