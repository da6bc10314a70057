"""Continuous-time attention (CTA) baseline: ODE-RNN hidden states attended by multi-head attention.

Reference: Chien and Chen 2021, "Continuous-time attention for sequential learning", AAAI 35(8)
(https://ojs.aaai.org/index.php/AAAI/article/view/16875).

Computed, for observations i = 1..L with elapsed times ``dt_i`` (the contract's ``t``; 1 when t is
None), starting from ``h = 0``:

1. between observations the hidden state follows a neural ODE ``dh/dt = f(h)`` (``f`` a small tanh
   MLP) over the real elapsed time, solved with ``ode_steps`` fixed steps of size ``dt_i / ode_steps``
   (``solver="euler"``: ``h <- h + dt/n f(h)``; ``"rk4"``: classical Runge-Kutta), ``dt`` divided by
   the constant ``time_scale``; ``dt_i`` is a
   (B, 1) tensor, so every sample uses its own time without a loop over samples;
2. at the observation a GRU cell updates it: ``h_i = GRU(x_i, h)``; at padded steps the state is
   held;
3. multi-head softmax self-attention over the hidden states ``h_1..h_L`` (padded keys weight 0;
   ``causal`` (default) lets step i attend to steps <= i only, so every step's output depends on
   the past only), and the output ``h_i + Attn(h)_i`` (``residual``) at each sample's last valid step.

Time: through the ODE in step 1 (``uses_time`` is True); ``dt = 0`` makes step 1 the identity.

Simplifications with respect to the paper: the paper also makes the attention itself continuous
in time (the context vector evolves by its own ODE along the hidden trajectory, so attention
covers the whole continuous path); here attention is taken only at the observation times, over
the ODE-RNN states, with an ordinary discrete softmax. Fixed-step solvers instead of an adaptive
one; one GRU layer; no latent-variable/variational parts. (The NAC authors' Keras ``CTA`` is
simpler still: a learned scalar step replaces the real elapsed time and a single learned query
pools the states.)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from baselines._attention import MultiHeadSelfAttention, prepare_input
from baselines._recurrent import scan
from baselines.ctrnn import fixed_step_solve
from nac.contract import SequenceModel, last_valid_step

Solver = Literal["euler", "rk4"]


class ODEFunc(nn.Module):
    """The autonomous dynamics ``f(h)``: an MLP with ``layers`` tanh hidden layers of ``units``."""

    def __init__(self, dim: int, units: int, layers: int = 1):
        super().__init__()
        if layers < 1:
            raise ValueError(f"ode_layers={layers} must be >= 1")
        modules: list[nn.Module] = []
        width = dim
        for _ in range(layers):
            modules += [nn.Linear(width, units), nn.Tanh()]
            width = units
        modules.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*modules)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class ContinuousTimeAttention(SequenceModel):
    """ODE-RNN (neural ODE between observations, GRU at observations) + multi-head attention over its states."""

    def __init__(
        self,
        input_dim: int,
        d_model: int = 64,
        num_heads: int = 4,
        ode_units: int | None = None,
        ode_layers: int = 1,
        ode_steps: int = 4,
        solver: Solver = "euler",
        time_scale: float = 1.0,
        causal: bool = True,
        residual: bool = True,
        dropout: float = 0.0,
        return_sequences: bool = False,
        return_attention: bool = False,
    ):
        super().__init__()
        if solver not in ("euler", "rk4"):
            raise ValueError(f"solver={solver!r} is not valid; choose one of ['euler', 'rk4']")
        if ode_steps < 1 or not time_scale > 0:
            raise ValueError(f"need ode_steps >= 1 and time_scale > 0, got {ode_steps}, {time_scale}")
        self.input_dim, self.output_dim = int(input_dim), int(d_model)
        self.ode_steps, self.solver, self.time_scale = int(ode_steps), solver, float(time_scale)
        self.causal, self.residual = bool(causal), bool(residual)
        self.return_sequences, self.return_attention = bool(return_sequences), bool(return_attention)
        self.ode = ODEFunc(d_model, int(ode_units or d_model), int(ode_layers))
        self.cell = nn.GRUCell(input_dim, d_model)
        self.attention = MultiHeadSelfAttention(d_model, num_heads, dropout=dropout)

    def evolve(self, h: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Solve ``dh/dt = f(h)`` from h (B, D) over elapsed times dt (B, 1) with fixed steps."""
        return fixed_step_solve(self.ode, h, dt / self.time_scale, self.ode_steps, self.solver)

    def hidden_states(
        self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The ODE-RNN states h_1..h_L (B, L, D), held constant at padded steps."""
        b, length, _ = x.shape
        if t is not None and t.shape != (b, length):
            raise ValueError(f"t must be (B, L) = {(b, length)}, got {tuple(t.shape)}")

        def step(x_t: torch.Tensor, h: torch.Tensor, dt: torch.Tensor):
            new = self.cell(x_t, self.evolve(h, dt))
            return new, new

        return scan(step, x.new_zeros(b, self.output_dim), x, t, mask, hold_outputs=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        mask, allowed = prepare_input(x, mask, self.input_dim, self.causal)
        states = self.hidden_states(x, t, mask)
        attended, weights = self.attention(states, allowed)
        out = states + attended if self.residual else attended
        if not self.return_sequences:
            out = last_valid_step(out, mask)
        return (out, weights) if self.return_attention else out

    def extra_repr(self) -> str:
        return (
            f"solver={self.solver}, ode_steps={self.ode_steps}, time_scale={self.time_scale}, "
            f"causal={self.causal}, residual={self.residual}"
        )
