"""Key selection for NAC: exact top-K in query chunks, and the all-pairs selection of NAC-PW.

Both return ``(indices, valid)`` of shape (B, H, T, K): the selected key positions per query and
whether each selected key is a real candidate (not padding, not in the future under ``causal``).
No (B, H, T, T) tensor is ever held by :func:`chunked_topk`: scores are computed for
``chunk`` queries at a time, so memory is O(B * H * chunk * T).
"""

from __future__ import annotations

import torch

#: default number of score elements held at once (B * H * chunk * T), 16 M floats = 64 MiB
DEFAULT_SCORE_BUDGET = 1 << 24


def _allowed_keys(
    key_mask: torch.Tensor | None, causal: bool, q_start: int, q_stop: int, t_keys: int, device
) -> torch.Tensor | None:
    """Boolean (B or 1, 1, chunk or 1, T) tensor of keys a query may select, or None (all)."""
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :]
    if causal:
        q_pos = torch.arange(q_start, q_stop, device=device)[:, None]
        k_pos = torch.arange(t_keys, device=device)[None, :]
        c = (k_pos <= q_pos)[None, None]
        allowed = c if allowed is None else allowed & c
    return allowed


@torch.no_grad()
def chunked_topk(
    q: torch.Tensor,
    k: torch.Tensor,
    topk: int,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-K keys by dot product q.k, computed in query chunks.

    q, k: (B, H, T, D); key_mask: (B, T) bool, True for valid keys. Returns int64 indices and
    a bool validity tensor, both (B, H, T, K) with K = min(topk, T). Selection is not
    differentiable (gradients flow through the gathered keys, not the choice).
    """
    b, h, t_q, _ = q.shape
    t_k = k.shape[2]
    k_eff = min(topk, t_k)
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_SCORE_BUDGET // max(1, b * h * t_k))
    idx_chunks, valid_chunks = [], []
    k_t = k.transpose(-1, -2)
    for start in range(0, t_q, chunk_size):
        stop = min(start + chunk_size, t_q)
        scores = torch.matmul(q[:, :, start:stop], k_t)  # (B, H, c, T)
        allowed = _allowed_keys(key_mask, causal, start, stop, t_k, q.device)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        vals, idx = torch.topk(scores, k_eff, dim=-1)
        idx_chunks.append(idx)
        valid_chunks.append(torch.isfinite(vals))
        del scores
    return torch.cat(idx_chunks, dim=2), torch.cat(valid_chunks, dim=2)


def all_pairs(
    b: int, h: int, t: int, key_mask: torch.Tensor | None, causal: bool, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every key for every query (NAC-PW): indices (1, 1, T, T) and validity (B or 1, 1, T, T)."""
    idx = torch.arange(t, device=device).expand(t, t)[None, None]
    valid = _allowed_keys(key_mask, causal, 0, t, t, device)
    if valid is None:
        valid = torch.ones(1, 1, t, t, dtype=torch.bool, device=device)
    else:
        valid = valid.expand(-1, -1, t, t)
    return idx, valid
