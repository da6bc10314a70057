"""GRU-ODE baseline (without the Bayesian update of GRU-ODE-Bayes).

Reference: E. De Brouwer, J. Simm, A. Arany and Y. Moreau, "GRU-ODE-Bayes: Continuous modeling of
sporadically-observed time series", NeurIPS 2019; ported from ``GRUODE`` of mlech26l/ode-lstms
(TensorFlow), as copied by the NAC authors in ``mnist_exp/baseline_cells.py``.

What is computed: between observations the state follows the continuous GRU

    r = sigmoid([x, h] W_r + b_r)        (b_r initialised to 1)
    z = sigmoid([x, h] W_z + b_z)
    g = tanh([x, r * h] W_g + b_g)
    dh/dt = (1 - z) * (g - h)

with the current observation ``x`` held constant (kernels Glorot-uniform, other biases zero, as
the reference's Keras ``Dense`` layers). The output is the state.

How time is used: each observation integrates over that sample's own elapsed time ``dt`` with
``num_unfolds`` (4, as the reference) explicit Euler steps of size ``dt / num_unfolds``
(``method`` heun and rk4 are also available); ``dt = 0`` leaves the state unchanged.
``t=None`` means ``dt = 1``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines._recurrent import RecurrentSequenceModel
from baselines.ctrnn import METHODS, fixed_step_solve


def _dense(in_features: int, out_features: int, bias: float = 0.0) -> nn.Linear:
    """``nn.Linear`` initialised like a Keras ``Dense``: Glorot-uniform kernel, constant bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.constant_(layer.bias, bias)
    return layer


class GRUODE(RecurrentSequenceModel):
    """GRU-ODE sequence model; output = hidden state (``units``)."""

    uses_time = True
    padding_invariant = True

    def __init__(
        self,
        input_dim: int,
        units: int = 64,
        num_unfolds: int = 4,
        method: str = "euler",
        return_sequences: bool = False,
    ):
        super().__init__(input_dim, units, return_sequences)
        if method not in METHODS:
            raise ValueError(f"unknown ODE method {method!r}; expected one of {METHODS}")
        if int(num_unfolds) < 1:
            raise ValueError(f"num_unfolds must be >= 1, got {num_unfolds}")
        self.num_unfolds, self.method = int(num_unfolds), method
        self.reset_gate = _dense(input_dim + units, units, bias=1.0)
        self.update_gate = _dense(input_dim + units, units)
        self.candidate = _dense(input_dim + units, units)

    def dhdt(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Right-hand side ``(1 - z) * (g - h)`` of the GRU-ODE."""
        fused = torch.cat([x_t, h], dim=-1)
        r = torch.sigmoid(self.reset_gate(fused))
        z = torch.sigmoid(self.update_gate(fused))
        g = torch.tanh(self.candidate(torch.cat([x_t, r * h], dim=-1)))
        return (1.0 - z) * (g - h)

    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.output_dim)

    def step(self, x_t: torch.Tensor, state: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = fixed_step_solve(lambda s: self.dhdt(x_t, s), state, dt, self.num_unfolds, self.method)
        return h, h
