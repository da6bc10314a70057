"""The Neuronal Attention Circuit (NAC) layer, in two variants and with the paper's ablations.

See ``docs/NAC.md`` for the equations. In short, for query i and a
selected key j, the attention logit is the state at time t of ``da/dt = -w_tau(u) a + phi(u)``
with u = [q_i; k_j]; a softmax over the selected keys gives weights, and the head output is
``dt * sum_j w_ij v_j``.

``variant="paper"`` (default): phi and w_tau from a sparse NCP-wired backbone of the pair,
Q/K/V through NCP-masked linear maps, real time input, masked keys excluded.
``variant="official"``: what the authors' TensorFlow layer computes: phi and w_tau from one
learned scalar, dense per-step affine Q/K/V, time through a learned sigmoid interpolation,
padding mask multiplying the logits.

Ablations: ``dense=True`` is NAC-FC, ``pairwise=True`` is NAC-PW, both is NAC-PWFC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nac.contract import SequenceModel, last_valid_step
from nac.layers.pairs import Selection, gather_keys
from nac.layers.topk import all_pairs, chunked_topk, every_key, reference_topk
from nac.layers.wiring import MaskedLinear, NCPBackbone, check_sparsity, sensory_mask

Mode = Literal["exact", "euler", "steady"]
Variant = Literal["paper", "official"]
TimeInput = Literal["constant", "step", "pair"]

#: a top-K selection is applied as a mask over every key when T <= this ratio * K (:meth:`_select`)
DENSE_SELECTION_RATIO = 1.1

_ACTIVATIONS = {
    None: nn.Identity,
    "none": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {sorted(map(str, allowed))}")


def ode_logits(
    phi: torch.Tensor,
    w_tau: torch.Tensor,
    t: torch.Tensor | float,
    mode: Mode,
    euler_steps: int = 5,
    delta_t: float = 0.5,
) -> torch.Tensor:
    """Logit a(t) of ``da/dt = -w_tau a + phi, a(0) = 0`` in one of the three modes.

    ``euler`` uses the closed form of ``euler_steps`` explicit Euler steps of size ``delta_t``:
    ``(phi / w_tau) * (1 - (1 - delta_t * w_tau) ** N)`` (equal to the loop, gradients included).
    """
    steady = phi / w_tau
    if mode == "steady":
        return steady
    if mode == "exact":
        return steady * (1.0 - torch.exp(-w_tau * t))
    if mode == "euler":
        return steady * (1.0 - torch.pow(1.0 - delta_t * w_tau, int(euler_steps)))
    raise ValueError(f"mode={mode!r} is not valid; choose one of ['euler', 'exact', 'steady']")


def softmax_last(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, dim=-1)`` written as exp(a - max) / sum, the formula softmax uses.
    Over K = 10 keys ``torch.softmax`` runs a slow path on the CPU (23 ms forward for 1.3 M logits,
    against 10 ms forward and backward for this form). The max is a constant shift, detached (the
    softmax does not depend on it); a row of only -inf gives NaN, as torch.softmax does."""
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


class AffineProjection(nn.Module):
    """The official code's "sensory" projection (docs/NAC.md 2.4), as it actually computes:
    ``out_w * (W^T (in_w * x + in_b) + b) + out_b`` per time step, with a dense W."""

    def __init__(self, input_dim: int, d_model: int, fan_out_for_init: int):
        super().__init__()
        self.in_w = nn.Parameter(torch.ones(input_dim))
        self.in_b = nn.Parameter(torch.zeros(input_dim))
        self.weight = nn.Parameter(torch.empty(input_dim, d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))
        self.out_w = nn.Parameter(torch.ones(d_model))
        self.out_b = nn.Parameter(torch.zeros(d_model))
        # Keras GlorotUniform on the (input_dim, units) kernel the TF cell allocates
        bound = (6.0 / (input_dim + fan_out_for_init)) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_w * ((x * self.in_w + self.in_b) @ self.weight + self.bias) + self.out_b


def _dense(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """nn.Linear with Keras' default init (Glorot uniform kernel, zero bias)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


@dataclass
class Attention:
    """What ``return_attention=True`` returns besides the output."""

    weights: torch.Tensor  # (B, H, T, K) softmax weights over the selected keys
    indices: torch.Tensor  # (B or 1, H or 1, T, K) key position of each weight
    valid: torch.Tensor  # (B or 1, H or 1, T, K) whether the selected key was a real candidate


class NeuronalAttentionCircuit(SequenceModel):
    """Multi-head Neuronal Attention Circuit.

    Follows the harness' sequence-model contract: ``forward(x, t=None, mask=None)`` with x
    (B, T, C), t the elapsed time since the previous observation (B, T) (or a scalar / a (B,)
    tensor used as the ODE time directly), mask (B, T) bool with True for valid steps.
    Output (B, d_model), or (B, T, d_model) with ``return_sequences``; with
    ``return_attention`` a tuple ``(output, Attention)``.

    ``time_input`` says how a (B, T) time enters the logit ODE: ``constant`` ignores it and uses
    ``t_const`` (what every paper experiment did, t = 1), ``step`` uses the query's elapsed time,
    ``pair`` uses the elapsed time between the two observations, |s_i - s_j| with s the
    cumulative timestamps. Without a time input the layer uses ``t_const``.
    """

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        num_heads: int = 16,
        variant: Variant = "paper",
        topk: int = 8,
        mode: Mode = "exact",
        euler_steps: int = 5,
        delta_t: float = 0.5,
        sparsity: float = 0.5,
        dt: float = 1.0,
        tau_epsilon: float = 1e-6,
        dropout: float = 0.0,
        activation: str | None = None,
        use_bias: bool = True,
        dense: bool = False,
        pairwise: bool = False,
        causal: bool = False,
        time_input: TimeInput | None = None,
        time_interpolation: bool | None = None,
        t_const: float = 1.0,
        backbone_units: int | None = None,
        return_sequences: bool = False,
        return_attention: bool = False,
        chunk_size: int | None = None,
        wiring_seed: int = 22222,
    ):
        super().__init__()
        _choice("variant", variant, ("paper", "official"))
        _choice("mode", mode, ("exact", "euler", "steady"))
        _choice("activation", activation, _ACTIVATIONS.keys())
        if time_input is None:
            time_input = "pair" if variant == "paper" else "constant"
        _choice("time_input", time_input, ("constant", "step", "pair"))
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        check_sparsity(sparsity)  # also for `official`, as the authors' AutoNCP does
        if topk < 1:
            raise ValueError(f"topk={topk} must be >= 1")
        self.input_dim, self.output_dim = int(input_dim), int(d_model)
        self.d_model, self.num_heads, self.depth = int(d_model), int(num_heads), d_model // num_heads
        self.variant, self.mode, self.topk = variant, mode, int(topk)
        self.euler_steps, self.delta_t, self.dt = int(euler_steps), float(delta_t), float(dt)
        self.tau_epsilon, self.t_const = float(tau_epsilon), float(t_const)
        self.dense, self.pairwise, self.causal = bool(dense), bool(pairwise), bool(causal)
        self.time_input = time_input
        self.time_interpolation = (variant == "official") if time_interpolation is None else bool(time_interpolation)
        self.return_sequences, self.return_attention = bool(return_sequences), bool(return_attention)
        self.chunk_size = chunk_size
        pair_dim = 2 * self.depth

        # --- Q/K/V projections
        if dense:
            self.q_proj, self.k_proj, self.v_proj = (_dense(input_dim, d_model, use_bias) for _ in range(3))
        elif variant == "official":
            units = math.ceil((d_model - 0.5) / 0.6)  # the size of the authors' sensory cell
            self.q_proj, self.k_proj, self.v_proj = (AffineProjection(input_dim, d_model, units) for _ in range(3))
        else:
            self.q_proj, self.k_proj, self.v_proj = (
                MaskedLinear(sensory_mask(input_dim, d_model, sparsity, wiring_seed + i), bias=use_bias)
                for i in range(3)
            )

        # --- gates phi and w_tau
        if variant == "paper":
            if backbone_units is None:
                backbone_units = 4 * pair_dim + 2
            self.backbone = NCPBackbone(pair_dim, int(backbone_units), 2, sparsity, wiring_seed + 3, dense=dense)
        elif dense:  # official NAC-FC: two linear two-layer maps of the pair (no activation)
            self.phi_net = nn.Sequential(_dense(pair_dim, d_model, use_bias), _dense(d_model, 1))
            hidden = max(4, d_model // 2)
            self.tau_net = nn.Sequential(_dense(pair_dim, hidden, use_bias), _dense(hidden, 1, use_bias))
        else:  # official NAC: one motor neuron with no input -> raw = bias * out_w + out_b
            self.gate_bias = nn.Parameter(torch.zeros(()))
            self.gate_out_w = nn.Parameter(torch.ones(()))
            self.gate_out_b = nn.Parameter(torch.zeros(()))
        if self.time_interpolation:
            self.time_a = _dense(pair_dim, 1)
            self.time_b = _dense(pair_dim, 1)

        self.attn_dropout = nn.Dropout(dropout)
        self.out_proj = _dense(d_model, d_model, use_bias)
        self.activation = _ACTIVATIONS[activation]()

    # ------------------------------------------------------------------ pieces
    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.depth).transpose(1, 2)

    def gates(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """phi and w_tau for pairs u = [q; k] of shape (..., 2 * depth)."""
        if self.variant == "paper":
            raw = self.backbone(pair)
            phi, tau_raw = raw[..., 0], raw[..., 1]
        elif self.dense:
            phi, tau_raw = self.phi_net(pair)[..., 0], self.tau_net(pair)[..., 0]
        else:
            raw = self.gate_bias * self.gate_out_w + self.gate_out_b
            phi, tau_raw = raw, raw
        return torch.sigmoid(phi), F.softplus(tau_raw) + self.tau_epsilon

    def _ode_time(self, t, mask: torch.Tensor | None, idx: torch.Tensor, b: int, tq: int, like: torch.Tensor):
        """The ODE time broadcastable to (B, H, Tq, K), in the dtype and device of ``like``
        (:meth:`forward_reference`; :meth:`_pair_time` is the same for the fast path)."""
        t = self._masked_time(t, mask, b, tq, like)
        if t.dim() != 2:
            return t
        if self.time_input == "step":
            return t[:, None, :, None]
        stamps = torch.cumsum(t, dim=1)[:, None, :, None]  # (B, 1, T, 1)
        key_stamps = gather_keys(stamps.expand(-1, idx.shape[1], -1, -1), idx)[..., 0]
        return (stamps - key_stamps).abs()

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, t=None, mask: torch.Tensor | None = None):
        """The layer's output (see the class docstring). Computes what :meth:`forward_reference`
        computes, faster (docs/NAC.md 5): only the queries whose output is returned
        (:meth:`_query_positions`), pair maps split per token (:class:`Selection`), block-pruned
        top-K for long sequences and no selection at all when every key is used (:meth:`_select`).
        One difference: ``official`` with ``causal`` and a mask, where the reference gives NaN
        (see :meth:`_weights`)."""
        mask, q, k, v = self._project(x, mask)
        b, t_len, _ = x.shape
        q_pos = self._query_positions(mask, b, t_len, x.device)
        if q_pos is not None:
            q = q.gather(2, q_pos[:, None, :, None].expand(b, self.num_heads, -1, self.depth))

        sel = self._select(q, k, mask, q_pos)
        phi, w_tau = self._pair_gates(q, sel)
        t_ode = self._pair_time(t, mask, sel, q_pos, b, t_len, q)
        if self.time_interpolation:
            ab = sel.pair_linear(
                q,
                torch.cat([self.time_a.weight, self.time_b.weight]).t(),
                torch.cat([self.time_a.bias, self.time_b.bias]),
            )
            t_ode = torch.sigmoid(ab[..., 0] * t_ode + ab[..., 1])
        logits = ode_logits(phi, w_tau, t_ode, self.mode, self.euler_steps, self.delta_t)
        logits = logits.expand(b, self.num_heads, sel.n_queries, sel.idx.shape[-1])
        weights = self.attn_dropout(self._weights(logits, sel, mask))

        heads = self.dt * sel.weighted_sum(weights, v)
        out = self.activation(self.out_proj(heads.transpose(1, 2).reshape(b, sel.n_queries, self.d_model)))
        if q_pos is not None:
            out = out[:, 0]  # the one query computed: each sample's last valid step
        elif not self.return_sequences:
            out = last_valid_step(out, mask)
        if self.return_attention:
            return out, Attention(weights, sel.idx, sel.valid)
        return out

    def _query_positions(self, mask: torch.Tensor | None, b: int, t_len: int, device) -> torch.Tensor | None:
        """(B or 1, 1) position of the one query whose output is returned, or None for every query.

        Without ``return_sequences`` the layer returns each sample's last valid step, and a query's
        output depends on no other query: attending from that query alone gives the same output
        and the same gradients at 1/T of the cost. Every query is computed when all outputs are
        returned, when the attention record is asked for, and while attention dropout is active
        (its random mask covers every query, as in :meth:`forward_reference`)."""
        if self.return_sequences or self.return_attention or self._dropout_active():
            return None
        if mask is None:
            return torch.full((1, 1), t_len - 1, dtype=torch.long, device=device)
        positions = torch.arange(t_len, device=device).expand_as(mask)  # as last_valid_step
        return torch.where(mask, positions, -1).max(dim=1).values.clamp(min=0)[:, None]

    def _dropout_active(self) -> bool:
        return self.training and self.attn_dropout.p > 0

    def _select(
        self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, q_pos: torch.Tensor | None
    ) -> Selection:
        """The keys of each query: all of them (NAC-PW, or K >= T) or the exact top-K by q.k.

        With K >= T every key is selected whatever the scores, so no score is computed and keys
        are taken in position order. When K is close to T (T <= :data:`DENSE_SELECTION_RATIO` * K,
        e.g. T = 11, K = 10) the top-K is computed but applied as a mask over all T keys
        (:meth:`_dense_selection`): the gate networks see up to 10 % more pairs, but nothing is
        gathered or scattered. Measured (training step, batch 32, K = 10, every step returned,
        1 thread): T = 11, ``paper`` 29.6 -> 27.0 ms, ``official`` 10.1 -> 8.3 ms; at T = 13
        ``paper`` is slower (35.5 -> 37.9 ms) while ``official`` still gains. Neither shortcut is
        taken while attention dropout is active (its mask must fall on the same keys, in top-K
        order, as in :meth:`forward_reference`), and the mask form not when the attention record
        is returned (it has K weights per query)."""
        select_mask = mask if self.variant == "paper" else None  # official: padding is selectable
        b, t_keys = k.shape[0], k.shape[2]
        dropout = self._dropout_active()
        if self.pairwise or (self.topk >= t_keys and not dropout):
            idx, valid = every_key(b, q.shape[2], t_keys, select_mask, self.causal, q.device, q_pos)
            return Selection(idx, valid, every=True, keys=k)
        idx, valid = chunked_topk(q, k, self.topk, select_mask, self.causal, self.chunk_size, q_pos)
        if not dropout and not self.return_attention and t_keys <= DENSE_SELECTION_RATIO * self.topk:
            return self._dense_selection(idx, valid, t_keys, k)
        return Selection(idx, valid, every=False, keys=k)

    @staticmethod
    def _dense_selection(idx: torch.Tensor, valid: torch.Tensor, t_keys: int, k: torch.Tensor) -> Selection:
        """The top-K selection ``idx``/``valid`` (B, H, Tq, K) as a mask over every key: validity
        (B, H, Tq, T) is True exactly at the valid selected keys, so unselected keys get weight 0
        (indices are distinct: exact top-K of a row, never the block path at these lengths)."""
        b, h, t_q, _ = idx.shape
        every = torch.zeros(b, h, t_q, t_keys, dtype=torch.bool, device=idx.device).scatter_(-1, idx, valid)
        return Selection(
            torch.arange(t_keys, device=idx.device).expand(t_q, t_keys)[None, None],
            every,
            every=True,
            keys=k,
            subset=True,
        )

    def _pair_gates(self, q: torch.Tensor, sel: Selection) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`gates` of the pairs [q_i; k_j] of ``sel``, with each network's first (linear)
        layer split per token (:meth:`Selection.pair_linear`) so that no pair is built."""
        if self.variant == "paper":
            first = self.backbone.layers[0]
            raw = self.backbone.tail(self.backbone.act(sel.pair_linear(q, first.masked_weight(), first.bias)))
            # two contiguous tensors instead of two stride-2 views: softplus on a strided view takes
            # a slow elementwise path (measured 30 ms against 2 ms on 1.3 M pairs)
            phi, tau_raw = raw.movedim(-1, 0).contiguous()
        elif self.dense:
            phi_in, tau_in = self.phi_net[0], self.tau_net[0]
            phi = self.phi_net[1](sel.pair_linear(q, phi_in.weight.t(), phi_in.bias))[..., 0]
            tau_raw = self.tau_net[1](sel.pair_linear(q, tau_in.weight.t(), tau_in.bias))[..., 0]
        else:
            raw = self.gate_bias * self.gate_out_w + self.gate_out_b
            phi, tau_raw = raw, raw
        return torch.sigmoid(phi), F.softplus(tau_raw) + self.tau_epsilon

    def _time_tensor(self, t, b: int, t_len: int, like: torch.Tensor) -> torch.Tensor | None:
        """The time input as a tensor in ``like``'s dtype and device, shape-checked: a 0-d or (B,)
        time is returned broadcastable to (B, H, Tq, K); a (B, T) time as (B, T); None when the
        ODE time is ``t_const``."""
        if t is None or self.time_input == "constant":
            return None
        t = torch.as_tensor(t).to(dtype=like.dtype, device=like.device)
        if t.dim() == 0:
            return t
        if t.dim() == 1:
            if t.shape[0] != b:
                raise ValueError(f"a 1-D time input must have one value per sample ({b}), got {tuple(t.shape)}")
            return t.view(b, 1, 1, 1)
        if t.shape != (b, t_len):
            raise ValueError(f"time input must be a scalar, (B,) or (B, T) = {(b, t_len)}; got {tuple(t.shape)}")
        return t

    def _project(self, x: torch.Tensor, mask: torch.Tensor | None):
        """Check x (B, T, input_dim); the mask as bool on x's device; Q, K, V split into heads
        (B, H, T, depth). Shared by :meth:`forward` and :meth:`forward_reference`."""
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"expected x of shape (B, T, {self.input_dim}), got {tuple(x.shape)}")
        if mask is not None:
            mask = mask.to(device=x.device, dtype=torch.bool)
        return mask, self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))

    def _masked_time(self, t, mask: torch.Tensor | None, b: int, t_len: int, like: torch.Tensor) -> torch.Tensor:
        """The time input as a tensor: ``t_const`` (constant time or none given), a scalar or (B, 1, 1, 1)
        time used as it is, or the (B, T) elapsed times with padded steps set to 0."""
        t = self._time_tensor(t, b, t_len, like)
        if t is None:
            return torch.tensor(self.t_const, dtype=like.dtype, device=like.device)
        if t.dim() == 2 and mask is not None:
            t = t * mask
        return t

    def _pair_time(
        self,
        t,
        mask: torch.Tensor | None,
        sel: Selection,
        q_pos: torch.Tensor | None,
        b: int,
        t_len: int,
        like: torch.Tensor,
    ) -> torch.Tensor:
        """The ODE time broadcastable to (B, H, Tq, K) for the queries at ``q_pos`` (all if None);
        the same values as :meth:`_ode_time`."""
        t = self._masked_time(t, mask, b, t_len, like)
        if t.dim() != 2:
            return t
        stamps = t if self.time_input == "step" else torch.cumsum(t, dim=1)  # (B, T)
        at_query = stamps if q_pos is None else stamps.gather(1, q_pos.expand(b, -1))
        at_query = at_query[:, None, :, None]  # (B, 1, Tq, 1)
        if self.time_input == "step":
            return at_query
        return (at_query - sel.take(stamps)).abs()

    def _weights(self, logits: torch.Tensor, sel: Selection, mask: torch.Tensor | None) -> torch.Tensor:
        """Softmax weights over the selected keys, with the variant's padding and causal rules."""
        valid = sel.valid
        if self.variant == "paper":
            any_valid = valid.any(dim=-1, keepdim=True)
            logits = torch.where(valid, logits, float("-inf"))
            logits = torch.where(any_valid, logits, 0.0)
            return softmax_last(logits) * valid
        if mask is not None:
            if self.pairwise:
                logits = logits + (1.0 - mask[:, None, None, :].float()) * -1e9
            else:
                logits = logits * sel.take(mask.float())
        if self.causal or sel.subset:
            # -inf for future keys (the authors' layer has no causal mode) and for the keys a mask-form
            # selection leaves out; after the mask product: forward_reference sets -inf first, and a
            # selected padded future key then gives -inf * 0 = NaN for the whole query
            logits = torch.where(valid, logits, float("-inf"))
        return softmax_last(logits)

    # ------------------------------------------------------------------ reference forward
    def forward_reference(self, x: torch.Tensor, t=None, mask: torch.Tensor | None = None):
        """The readable forward pass that :meth:`forward` computes faster (same outputs and
        gradients up to round-off; the order of the K keys of a query may differ): every query,
        pairs u = [q_i; k_j] built and fed to :meth:`gates`, keys and values gathered per pair,
        :func:`reference_topk` selection. Slow; kept for reading and for the tests."""
        mask, q, k, v = self._project(x, mask)
        b, tq, _ = x.shape

        select_mask = mask if self.variant == "paper" else None  # official: padding is selectable
        if self.pairwise:
            idx, valid = all_pairs(b, self.num_heads, tq, select_mask, self.causal, x.device)
            k_sel = k[:, :, None].expand(-1, -1, tq, -1, -1)
            v_sel = v[:, :, None].expand(-1, -1, tq, -1, -1)
        else:
            idx, valid = reference_topk(q, k, self.topk, select_mask, self.causal)
            k_sel, v_sel = gather_keys(k, idx), gather_keys(v, idx)
        k_eff = idx.shape[-1]
        pair = torch.cat([q[:, :, :, None].expand(-1, -1, -1, k_eff, -1), k_sel], dim=-1)

        phi, w_tau = self.gates(pair)
        t_ode = self._ode_time(t, mask, idx, b, tq, q)
        if self.time_interpolation:
            t_ode = torch.sigmoid(self.time_a(pair)[..., 0] * t_ode + self.time_b(pair)[..., 0])
        logits = ode_logits(phi, w_tau, t_ode, self.mode, self.euler_steps, self.delta_t)
        logits = logits.expand(b, self.num_heads, tq, k_eff)

        if self.variant == "paper":
            any_valid = valid.any(dim=-1, keepdim=True)
            logits = torch.where(valid, logits, float("-inf"))
            logits = torch.where(any_valid, logits, 0.0)
            weights = torch.softmax(logits, dim=-1) * valid
        else:
            if self.causal:  # the authors' layer has no causal mode; future keys are simply excluded
                logits = torch.where(valid, logits, float("-inf"))
            if mask is not None:
                if self.pairwise:
                    logits = logits + (1.0 - mask[:, None, None, :].float()) * -1e9
                else:
                    key_mask = gather_keys(mask[:, None, :, None].float().expand(-1, self.num_heads, -1, -1), idx)
                    logits = logits * key_mask[..., 0]
            weights = torch.softmax(logits, dim=-1)
        weights = self.attn_dropout(weights)

        heads = self.dt * torch.einsum("bhqk,bhqkd->bhqd", weights, v_sel)
        out = self.activation(self.out_proj(heads.transpose(1, 2).reshape(b, tq, self.d_model)))
        if not self.return_sequences:
            out = last_valid_step(out, mask)  # the contract; the authors' [:, -1] when there is no mask
        if self.return_attention:
            return out, Attention(weights, idx, valid)
        return out

    @property
    def padding_invariant(self) -> bool:  # the official variant's mask multiplies logits (docs/NAC.md 2.6)
        return self.variant == "paper"

    @property
    def uses_time(self) -> bool:  # the contract's flag: does a (B, T) time input change the output?
        return self.time_input != "constant"

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant}, d_model={self.d_model}, heads={self.num_heads}, topk={self.topk}, "
            f"mode={self.mode}, dense={self.dense}, pairwise={self.pairwise}, causal={self.causal}, "
            f"time_input={self.time_input}, time_interpolation={self.time_interpolation}"
        )
