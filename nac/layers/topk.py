"""Key selection for NAC: exact top-K in query chunks, and the all-pairs selection of NAC-PW.

Both return ``(indices, valid)`` of shape (B, H, T, K): the selected key positions per query and
whether each selected key is a real candidate (not padding, not in the future under ``causal``).
No (B, H, T, T) tensor is ever held by :func:`chunked_topk`: scores are computed for
``chunk`` queries at a time, so memory is O(B * H * chunk * T).

Speed (docs/NAC.md 5): :func:`reference_topk` is the plain selection (one ``torch.topk`` per score
row). :func:`chunked_topk` returns the same keys, faster:

* on the CPU, chunks hold at most :data:`DEFAULT_SCORE_BUDGET` scores (8 MiB). Larger chunks were
  slower, not faster: glibc returns a freed buffer above 32 MiB to the OS, so a fresh 64 MiB score
  buffer is page-faulted in on every chunk (measured 3.7 ns per score against 0.44 ns for an
  8 MiB one, which the allocator reuses);
* long rows (T >= :data:`BLOCK_MIN_KEYS`) use :func:`block_topk`, an exact block-pruned top-K.

When every key is selected (T <= K) the layer skips the selection (:func:`every_key`).
"""

from __future__ import annotations

import math

import torch

#: default number of score elements held at once (B * H * chunk * T) on the CPU, 2 M floats = 8 MiB
DEFAULT_SCORE_BUDGET = 1 << 21
#: the same on other devices (CUDA): 16 M floats = 64 MiB, the budget before the CPU one was cut;
#: a caching allocator does not fault fresh pages in, and fewer chunks mean fewer kernel launches
DEVICE_SCORE_BUDGET = 1 << 24
#: rows of at least this many keys are selected by :func:`block_topk`: measured (1 thread, B = 1,
#: 16 heads, K = 8) 0.63 -> 0.45 s at T = 4,096 and 7.6 -> 4.5 s at T = 16,384, but slower than
#: ``torch.topk`` at T = 1,024 and 2,048 (its two extra top-K calls cost more than they save)
BLOCK_MIN_KEYS = 4096


def _allowed_keys(
    key_mask: torch.Tensor | None,
    causal: bool,
    q_start: int,
    q_stop: int,
    t_keys: int,
    device,
    q_pos: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Boolean (B or 1, 1, chunk or 1, T) tensor of keys a query may select, or None (all).

    Queries are positions ``q_start .. q_stop - 1``, or, when ``q_pos`` (B or 1, Tq) is given, the
    positions ``q_pos[:, q_start:q_stop]`` (only the causal rule needs them)."""
    allowed = None
    if key_mask is not None:
        allowed = key_mask[:, None, None, :]
    if causal:
        if q_pos is None:
            pos = torch.arange(q_start, q_stop, device=device)[None, :]
        else:
            pos = q_pos[:, q_start:q_stop]
        k_pos = torch.arange(t_keys, device=device)
        c = (k_pos <= pos[:, :, None])[:, None]  # (B or 1, 1, chunk, T)
        allowed = c if allowed is None else allowed & c
    return allowed


def block_topk(scores: torch.Tensor, k: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` along the last axis of ``scores`` (..., T), block-pruned: (values, indices).

    The row is cut into blocks of ``block`` keys (the last one padded with -inf). Let m be the
    k-th largest block maximum. Each of the k blocks with the largest maxima holds an element >= m,
    so the k-th largest element of the row is >= m, and a block whose maximum is below m holds no
    top-k element: the top-k of the row are the top-k of those k blocks. (With ties at m, any
    choice among the tied elements is a valid top-k, as for ``torch.topk``.) A block maximum is a
    cheap vectorised reduction, so this replaces one ``torch.topk`` over T keys by one over
    T / block maxima and one over k * block candidates. Results are sorted by decreasing value,
    as ``torch.topk`` sorts them (ties may come in another order).
    """
    t = scores.shape[-1]
    n_blocks = -(-t // block)
    if n_blocks <= k:  # every block would be kept: nothing to prune
        return torch.topk(scores, k, dim=-1)
    pad = n_blocks * block - t
    if pad:
        scores = torch.nn.functional.pad(scores, (0, pad), value=float("-inf"))
    blocks = scores.unflatten(-1, (n_blocks, block))  # (..., n_blocks, block)
    _, best = torch.topk(blocks.amax(dim=-1), k, dim=-1, sorted=False)  # (..., k) block numbers
    cand = torch.gather(blocks, -2, best[..., None].expand(*best.shape, block))  # (..., k, block)
    vals, pos = torch.topk(cand.flatten(-2), k, dim=-1)
    idx = torch.gather(best, -1, pos // block) * block + pos % block
    # a padding column (-inf) can only be chosen when fewer than k keys are finite: such a pick is
    # invalid anyway; point it at a real key so that gathers stay in range
    return vals, idx.clamp_(max=t - 1)


def _row_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """top-k of each score row: block-pruned for long rows (:data:`BLOCK_MIN_KEYS`), else torch.topk."""
    t = scores.shape[-1]
    if t >= BLOCK_MIN_KEYS:
        # blocks of about sqrt(T) keys, a multiple of 16 (vector width): 128 at T = 16,384
        block = max(16, 16 * round(math.sqrt(t) / 16))
        return block_topk(scores, k, block)
    # sorted (the default) keeps the order the layer had (attention dropout's mask lands on the same
    # keys), and measured no slower than sorted=False
    return torch.topk(scores, k, dim=-1)


def every_key(
    b: int,
    t_q: int,
    t_k: int,
    key_mask: torch.Tensor | None,
    causal: bool,
    device,
    q_pos: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every key for every query (T <= K, or NAC-PW): indices (1, 1, Tq, T), validity (B or 1, 1, Tq, T)."""
    idx = torch.arange(t_k, device=device).expand(t_q, t_k)[None, None]
    valid = _allowed_keys(key_mask, causal, 0, t_q, t_k, device, q_pos)
    if valid is None:
        valid = torch.ones(1, 1, t_q, t_k, dtype=torch.bool, device=device)
    else:
        valid = valid.expand(-1, -1, t_q, t_k)
    return idx, valid


@torch.no_grad()
def chunked_topk(
    q: torch.Tensor,
    k: torch.Tensor,
    topk: int,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    chunk_size: int | None = None,
    q_pos: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-K keys by dot product q.k, computed in query chunks.

    q: (B, H, Tq, D), k: (B, H, T, D); key_mask: (B, T) bool, True for valid keys; q_pos (B or 1,
    Tq): the position of each query (default 0 .. Tq - 1; only ``causal`` uses it). Returns int64
    indices and a bool validity tensor, both (B, H, Tq, K) with K = min(topk, T). Selection is not
    differentiable (gradients flow through the gathered keys, not the choice). Keys come by
    decreasing score, as from ``torch.topk``.
    """
    b, h, t_q, _ = q.shape
    t_k = k.shape[2]
    k_eff = min(topk, t_k)
    if chunk_size is None:
        budget = DEFAULT_SCORE_BUDGET if q.device.type == "cpu" else DEVICE_SCORE_BUDGET
        chunk_size = max(1, budget // max(1, b * h * t_k))
    # One score buffer for every chunk and the results written into preallocated outputs: a
    # fresh buffer per chunk (plus a transposed copy of the keys per product, and small results
    # kept between them) fragmented glibc's heap so that every chunk took new memory (T = 16,384:
    # +16 GB of RSS with 8 MiB chunks), and each fresh buffer is page-faulted in again.
    k_t = k.transpose(-1, -2).contiguous()
    buffer = torch.empty(b * h * min(chunk_size, t_q) * t_k, dtype=q.dtype, device=q.device)
    idx_out = torch.empty(b, h, t_q, k_eff, dtype=torch.long, device=q.device)
    valid_out = torch.empty(b, h, t_q, k_eff, dtype=torch.bool, device=q.device)
    for start in range(0, t_q, chunk_size):
        stop = min(start + chunk_size, t_q)
        scores = buffer[: b * h * (stop - start) * t_k].view(b, h, stop - start, t_k)
        torch.matmul(q[:, :, start:stop], k_t, out=scores)  # (B, H, c, T)
        allowed = _allowed_keys(key_mask, causal, start, stop, t_k, q.device, q_pos)
        if allowed is not None:
            scores.masked_fill_(~allowed, float("-inf"))  # in place: no second score buffer
        vals, idx = _row_topk(scores, k_eff)
        idx_out[:, :, start:stop] = idx
        valid_out[:, :, start:stop] = torch.isfinite(vals)
    return idx_out, valid_out


@torch.no_grad()
def reference_topk(
    q: torch.Tensor,
    k: torch.Tensor,
    topk: int,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    q_pos: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The readable selection that :func:`chunked_topk` speeds up: all scores at once, one
    ``torch.topk`` per row, (B, H, Tq, K) indices and validity. Holds (B, H, Tq, T) scores."""
    t_k = k.shape[2]
    scores = q @ k.transpose(-1, -2)
    allowed = _allowed_keys(key_mask, causal, 0, q.shape[2], t_k, q.device, q_pos)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    vals, idx = torch.topk(scores, min(topk, t_k), dim=-1)
    return idx, torch.isfinite(vals)


def all_pairs(
    b: int, h: int, t: int, key_mask: torch.Tensor | None, causal: bool, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every key for every query (NAC-PW): indices (1, 1, T, T) and validity (B or 1, 1, T, T)."""
    return every_key(b, t, t, key_mask, causal, device)
