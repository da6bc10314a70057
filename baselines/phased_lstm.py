"""Phased LSTM baseline (Neil, Pfeiffer & Liu 2016, "Phased LSTM: accelerating recurrent network
training for long or event-based sequences").

What is computed: an LSTM whose state updates are gated per unit by a time gate ``k_t`` in [0, 1]
driven by a learned oscillation with period ``tau``, phase shift ``s`` and open ratio ``r_on``::

    phi_t = ((T_t - s) mod tau) / tau
    k_t   = 2 phi_t / r_on          if phi_t < r_on / 2       (opening)
            2 - 2 phi_t / r_on      if r_on / 2 <= phi_t < r_on   (closing)
            alpha * phi_t           otherwise                  (closed, leak alpha = 0.001)
    (h~, c~) = LSTMCell(x_t, (h_{t-1}, c_{t-1}))
    c_t = k_t c~ + (1 - k_t) c_{t-1},    h_t = k_t h~ + (1 - k_t) h_{t-1}

The output is ``h_t``. No peephole connections (as in the port the NAC authors reused).

How time is used: ``T_t`` is the absolute timestamp of the observation, the running sum of the
elapsed times (``time_reference="timestamp"``, the paper; with no times, T_t = 1, 2, 3, ...). The
NAC authors' port (mlech26l/ode-lstms ``PhasedLSTM``) feeds the *elapsed* time instead, so every step
sees a phase computed from its own gap only; ``time_reference="elapsed"`` reproduces that choice.
Other differences from that port, all following the paper: per-unit (not scalar) tau, s, r_on; the
opening branch is ``2 phi / r_on`` (the port writes ``2 phi r_on``); the init below (the port starts
all three raw parameters at 0).

Parameters and init: ``tau = softplus(tau_raw)`` and ``r_on = softplus(r_on_raw)`` are positive (k_t
stays in [0, 1] for any r_on > 0); ``s`` is unconstrained (the phase is periodic in s). Periods are
drawn log-uniformly in ``[tau_min, tau_max]`` (default [1, 100]: the paper / TensorFlow cell use
[1, 1000], sized for sequences of thousands of steps; the benchmark's sequences have tens to hundreds
of unit steps), shifts uniformly in [0, tau), ``r_on = 0.05`` (the paper). The leak alpha is kept at
evaluation as well (the paper switches it off at test time). The LSTM cell is initialised as Keras
(Glorot input kernel, orthogonal recurrent kernel, zero bias, forget bias 1 as the port's ``fg + 1``).
Gradients reach tau, s (every phase: d phi / d s = -1 / tau, d phi / d tau = -(T - s) / tau^2) and
r_on (in the open phases).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from baselines._recurrent import RecurrentSequenceModel
from baselines.rnn import keras_init_


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y (y > 0), stable for large y."""
    return y + torch.log(-torch.expm1(-y))


def time_gate(
    time: torch.Tensor, tau: torch.Tensor, shift: torch.Tensor, r_on: torch.Tensor, leak: float = 1e-3
) -> torch.Tensor:
    """The Phased LSTM gate k_t: time (B, 1), per-unit tau/shift/r_on (H,) -> (B, H)."""
    phi = torch.remainder(time - shift, tau) / tau
    opening = 2.0 * phi / r_on
    closing = 2.0 - 2.0 * phi / r_on
    return torch.where(phi < 0.5 * r_on, opening, torch.where(phi < r_on, closing, leak * phi))


class PhasedLSTM(RecurrentSequenceModel):
    """LSTM with a learned per-unit oscillating time gate; state is (h, c, timestamp)."""

    uses_time = True

    def __init__(
        self,
        input_dim: int,
        units: int = 32,
        time_reference: str = "timestamp",
        tau_min: float = 1.0,
        tau_max: float = 100.0,
        r_on_init: float = 0.05,
        leak: float = 1e-3,
        return_sequences: bool = False,
    ):
        """``units``: hidden size H (= output_dim); ``time_reference``: ``timestamp`` (the paper) or
        ``elapsed`` (the NAC authors' port); tau ~ log-uniform[tau_min, tau_max], s ~ U[0, tau)."""
        super().__init__(input_dim, units, return_sequences)
        if time_reference not in ("timestamp", "elapsed"):
            raise ValueError(f"time_reference must be 'timestamp' or 'elapsed', not {time_reference!r}")
        if not 0 < tau_min <= tau_max:
            raise ValueError("need 0 < tau_min <= tau_max")
        self.units, self.time_reference, self.leak = int(units), time_reference, float(leak)
        self.cell = nn.LSTMCell(self.input_dim, self.units)
        keras_init_(self.cell, forget_bias=1.0)
        log_tau = torch.empty(self.units).uniform_(math.log(tau_min), math.log(tau_max))
        tau = log_tau.exp()
        self.tau_raw = nn.Parameter(inverse_softplus(tau))
        self.shift = nn.Parameter(torch.rand(self.units) * tau)
        self.r_on_raw = nn.Parameter(inverse_softplus(torch.full((self.units,), float(r_on_init))))

    @property
    def tau(self) -> torch.Tensor:
        """Periods (H,), positive."""
        return F.softplus(self.tau_raw)

    @property
    def r_on(self) -> torch.Tensor:
        """Open ratios (H,), positive."""
        return F.softplus(self.r_on_raw)

    def gate(self, time: torch.Tensor) -> torch.Tensor:
        """k_t (B, H) for the reference time (B, 1)."""
        return time_gate(time, self.tau, self.shift, self.r_on, self.leak)

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero (h, c) and timestamp 0."""
        zeros = like.new_zeros(batch, self.units)
        return zeros, zeros, like.new_zeros(batch, 1)

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor], dt: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """LSTM proposal, blended with the previous state by the time gate."""
        h, c, clock = state
        clock = clock + dt
        k = self.gate(clock if self.time_reference == "timestamp" else dt)
        h_tilde, c_tilde = self.cell(x_t, (h, c))
        c = k * c_tilde + (1.0 - k) * c
        h = k * h_tilde + (1.0 - k) * h
        return h, (h, c, clock)
