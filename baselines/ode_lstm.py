"""ODE-LSTM baseline.

Reference: M. Lechner and R. Hasani, "Learning Long-Term Dependencies in Irregularly-Sampled Time
Series", arXiv:2006.04418, 2020; ported from ``ODELSTM`` of mlech26l/ode-lstms (TensorFlow), as
copied by the NAC authors in ``mnist_exp/baseline_cells.py``.

What is computed, per observation, with state ``(c, h)`` (memory cell, ODE/output state):

    i, g_i, g_f, g_o = split(x W + h U + b)        (W Glorot-uniform, U orthogonal, b zero)
    c' = c * sigmoid(g_f + forget_bias) + tanh(i) * sigmoid(g_i)     (forget_bias = 3)
    u  = tanh(c') * sigmoid(g_o)                                      (the LSTM output)
    h' = CT-RNN state after the elapsed time, started from h and driven by u:
         dh/dt = scale * tanh(u W_o + h U_o + b_o) - h          (see :mod:`baselines.ctrnn`)

The output is ``h'``. As in the reference, the ODE starts from the previous ODE state ``h`` (not
from ``u``), and ``h`` is also the LSTM's recurrent input; the memory cell ``c`` carries no time.

How time is used: the CT-RNN integrates over each sample's own elapsed time ``dt`` with
``num_unfolds`` (4) explicit Euler steps of size ``dt / num_unfolds``; ``dt = 0`` leaves ``h``
unchanged. ``t=None`` means ``dt = 1``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines._recurrent import RecurrentSequenceModel
from baselines.ctrnn import CTRNNCell


class ODELSTM(RecurrentSequenceModel):
    """ODE-LSTM sequence model; output = the ODE state (``units``)."""

    uses_time = True
    padding_invariant = True

    def __init__(
        self,
        input_dim: int,
        units: int = 64,
        num_unfolds: int = 4,
        method: str = "euler",
        forget_bias: float = 3.0,
        return_sequences: bool = False,
    ):
        super().__init__(input_dim, units, return_sequences)
        self.forget_bias = float(forget_bias)
        self.input_kernel = nn.Parameter(torch.empty(input_dim, 4 * units))
        self.recurrent_kernel = nn.Parameter(torch.empty(units, 4 * units))
        self.bias = nn.Parameter(torch.zeros(4 * units))
        nn.init.xavier_uniform_(self.input_kernel)
        nn.init.orthogonal_(self.recurrent_kernel)
        self.ctrnn = CTRNNCell(units, units, method=method, num_unfolds=num_unfolds, tau=1.0)

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, self.output_dim)
        return zeros, zeros.clone()

    def lstm_update(self, x_t: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discrete LSTM part: returns (new memory cell, LSTM output that drives the ODE)."""
        z = x_t @ self.input_kernel + h @ self.recurrent_kernel + self.bias
        i, ig, fg, og = z.chunk(4, dim=-1)
        new_c = c * torch.sigmoid(fg + self.forget_bias) + torch.tanh(i) * torch.sigmoid(ig)
        return new_c, torch.tanh(new_c) * torch.sigmoid(og)

    def step(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], dt: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        c, h = state
        new_c, ode_input = self.lstm_update(x_t, c, h)
        new_h = self.ctrnn(ode_input, h, dt)
        return new_h, (new_c, new_h)
