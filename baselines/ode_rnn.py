"""ODE-RNN baseline (Rubanova, Chen & Duvenaud 2019, "Latent ODEs for irregularly-sampled time series").

What is computed, per observation i with elapsed time dt_i since the previous one::

    h'_i = ODESolve(dh/dt = f_theta(h), h_{i-1}, over an interval of length dt_i)   # continuous evolution
    h_i  = GRUCell(x_i, h'_i)                                                       # discrete update

``f_theta`` is an autonomous MLP (tanh hidden layers, weights ~ N(0, 0.1), zero biases, as
``create_net``/``init_network_weights`` in the authors' code); the output at step i is ``h_i``
and ``h_0 = 0``. The first step evolves over ``t[:, 0]`` (the time since the sequence start).

How time is used: the state is integrated over the *real* elapsed time of each sample. The PyPI
``torchdiffeq`` 0.2.5 ``odeint`` takes one strictly increasing 1-D time grid per call, while elapsed
times differ per sample; so the integration runs over s in [0, 1] with the dynamics rescaled per
sample, ``dh/ds = dt_b * f_theta(h)`` with ``dt`` of shape (B, 1). Since ``h(s) = h_true(s * dt_b)``
this is exactly the ODE over [0, dt_b] for every sample, with one ``odeint`` call per observation
for the whole batch and no loop over samples. A zero elapsed time leaves the state unchanged.

Solver: a fixed-step method by default (``rk4``); ``step_size`` is then measured in s, i.e. it is the
fraction of each interval (0.25 -> 4 steps per observation, whatever dt is, like ``num_unfolds`` in
the ODE-LSTM benchmark code). Adaptive methods (``dopri5`` ...) use ``rtol``/``atol``; note that their
error control is over the whole batch, so a sample's result then depends (within tolerance) on the
other samples of the batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from baselines._recurrent import RecurrentSequenceModel

#: torchdiffeq 0.2.5 methods that step on a fixed grid (they take ``step_size``)
FIXED_STEP_METHODS = frozenset({"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", "fixed_adams"})


def ode_mlp(units: int, hidden: int, hidden_layers: int = 2) -> nn.Sequential:
    """Autonomous dynamics ``f(h)``: ``hidden_layers`` tanh layers of width ``hidden``, linear output."""
    if hidden_layers < 1:
        raise ValueError("hidden_layers must be >= 1")
    layers: list[nn.Module] = [nn.Linear(units, hidden), nn.Tanh()]
    for _ in range(hidden_layers - 1):
        layers += [nn.Linear(hidden, hidden), nn.Tanh()]
    layers.append(nn.Linear(hidden, units))
    for layer in layers:
        if isinstance(layer, nn.Linear):  # the authors' init_network_weights
            nn.init.normal_(layer.weight, mean=0.0, std=0.1)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def evolve_rescaled(
    func: nn.Module,
    h: torch.Tensor,
    dt: torch.Tensor,
    method: str = "rk4",
    options: dict | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> torch.Tensor:
    """Solve ``dh/dt = func(h)`` over each sample's own interval ``[0, dt_b]``; h (B, H), dt (B, 1).

    Integrates ``dh/ds = dt * func(h)`` for s in [0, 1] with a single ``odeint`` call.
    """
    grid = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
    dt = dt.to(dtype=h.dtype)

    def rescaled(_s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return dt * func(y)

    return odeint(rescaled, h, grid, method=method, options=options, rtol=rtol, atol=atol)[-1]


class ODERNN(RecurrentSequenceModel):
    """ODE-RNN: MLP-ODE evolution of the hidden state between observations, GRU update at each one."""

    uses_time = True

    def __init__(
        self,
        input_dim: int,
        units: int = 32,
        ode_hidden: int | None = None,
        ode_hidden_layers: int = 2,
        method: str = "rk4",
        step_size: float | None = 0.25,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        return_sequences: bool = False,
    ):
        """``units``: hidden size H (= output_dim); ``ode_hidden``: width of f's hidden layers (default H);
        ``method``: a torchdiffeq method; ``step_size``: fixed-step size as a fraction of each interval."""
        super().__init__(input_dim, units, return_sequences)
        self.units = int(units)
        self.ode_func = ode_mlp(self.units, int(ode_hidden or units), int(ode_hidden_layers))
        self.gru = nn.GRUCell(self.input_dim, self.units)
        self.method = str(method)
        self.rtol, self.atol = float(rtol), float(atol)
        if self.method in FIXED_STEP_METHODS:
            if step_size is None or float(step_size) <= 0:
                raise ValueError(f"method {self.method!r} needs a positive step_size (fraction of each interval)")
            self.options: dict | None = {"step_size": float(step_size)}
        else:
            self.options = None

    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """Zero hidden state (B, H)."""
        return like.new_zeros(batch, self.units)

    def evolve(self, h: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """The ODE part: h (B, H) evolved over each sample's elapsed time dt (B, 1)."""
        return evolve_rescaled(self.ode_func, h, dt, self.method, self.options, self.rtol, self.atol)

    def step(self, x_t: torch.Tensor, state: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evolve over dt, then the GRU update with observation x_t; the output is the new state."""
        h = self.gru(x_t, self.evolve(state, dt))
        return h, h
