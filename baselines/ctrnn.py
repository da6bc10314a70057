"""Continuous-time RNN (CT-RNN) baseline.

Reference: K. Funahashi and Y. Nakamura, "Approximation of dynamical systems by continuous time
recurrent neural networks", Neural Networks 6(6), 1993; the variant ported here is ``CTRNNCell``
of mlech26l/ode-lstms (Lechner & Hasani 2020, TensorFlow), as copied by the NAC authors in
``mnist_exp/baseline_cells.py``.

What is computed: between two observations the hidden state follows

    dh/dt = scale * tanh(x W + h U + b) - tau * h

(``tau`` is a fixed leak *rate*, 1 by default, as in the reference, where ``tau <= 0`` removes the
leak; ``scale`` is learned, initialised to 1). ``W`` is Glorot-uniform, ``U`` orthogonal, ``b`` zero,
as with the reference's Keras initialisers. The input ``x`` is held constant over the interval.

How time is used: each observation integrates the ODE over that sample's own elapsed time ``dt``
with ``num_unfolds`` fixed steps of size ``dt / num_unfolds`` (explicit Euler, Heun or classic
RK4). The output is the state after the last step. ``t=None`` means ``dt = 1`` per observation.

:func:`fixed_step_solve` and :class:`CTRNNCell` are shared with :mod:`baselines.ode_lstm` and
:mod:`baselines.gru_ode`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from baselines._recurrent import RecurrentSequenceModel

METHODS = ("euler", "heun", "rk4")


def fixed_step_solve(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    dt: torch.Tensor,
    num_unfolds: int,
    method: str = "euler",
) -> torch.Tensor:
    """Integrate the autonomous ODE ``dh/dt = f(h)`` from 0 to ``dt`` (B, 1), per sample.

    ``num_unfolds`` fixed steps of size ``dt / num_unfolds`` with ``method`` (euler, heun, rk4),
    written as in the reference (``heun``: explicit trapezoid; ``rk4``: classic 4-stage).
    """
    if method not in METHODS:
        raise ValueError(f"unknown ODE method {method!r}; expected one of {METHODS}")
    delta = dt / num_unfolds
    for _ in range(num_unfolds):
        if method == "euler":
            h = h + delta * f(h)
        elif method == "heun":
            k1 = f(h)
            k2 = f(h + delta * k1)
            h = h + delta * 0.5 * (k1 + k2)
        else:
            k1 = f(h)
            k2 = f(h + k1 * delta * 0.5)
            k3 = f(h + k2 * delta * 0.5)
            k4 = f(h + k3 * delta)
            h = h + delta * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
    return h


class CTRNNCell(nn.Module):
    """One CT-RNN observation: ``(x (B, C), h (B, H), dt (B, 1)) -> h(dt)``."""

    def __init__(self, input_dim: int, units: int, method: str = "euler", num_unfolds: int = 6, tau: float = 1.0):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown ODE method {method!r}; expected one of {METHODS}")
        if int(num_unfolds) < 1:
            raise ValueError(f"num_unfolds must be >= 1, got {num_unfolds}")
        self.units, self.method, self.num_unfolds, self.tau = int(units), method, int(num_unfolds), float(tau)
        self.kernel = nn.Parameter(torch.empty(input_dim, units))
        self.recurrent_kernel = nn.Parameter(torch.empty(units, units))
        self.bias = nn.Parameter(torch.zeros(units))
        self.scale = nn.Parameter(torch.ones(units))
        nn.init.xavier_uniform_(self.kernel)
        nn.init.orthogonal_(self.recurrent_kernel)

    def dfdt(self, x_proj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Right-hand side, with the input term ``x W`` already computed (constant over the interval)."""
        dh = self.scale * torch.tanh(x_proj + h @ self.recurrent_kernel + self.bias)
        return dh - h * self.tau if self.tau > 0 else dh

    def forward(self, x: torch.Tensor, h: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        x_proj = x @ self.kernel
        return fixed_step_solve(lambda s: self.dfdt(x_proj, s), h, dt, self.num_unfolds, self.method)


class CTRNN(RecurrentSequenceModel):
    """CT-RNN sequence model; output = hidden state (``units``)."""

    uses_time = True
    padding_invariant = True

    def __init__(
        self,
        input_dim: int,
        units: int = 64,
        method: str = "euler",
        num_unfolds: int = 6,
        tau: float = 1.0,
        return_sequences: bool = False,
    ):
        super().__init__(input_dim, units, return_sequences)
        self.cell = CTRNNCell(input_dim, units, method, num_unfolds, tau)

    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.output_dim)

    def step(self, x_t: torch.Tensor, state: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(x_t, state, dt)
        return h, h
