"""Liquid time-constant (LTC) network baseline, from ``ncps.torch``.

Reference: R. Hasani, M. Lechner, A. Amini, D. Rus and R. Grosu, "Liquid Time-constant Networks",
AAAI 2021; implementation ``ncps.torch.LTC`` / ``LTCCell`` (ncps 1.0.1).

What is computed: the ncps module is built as usual (fully connected, or sparse with an AutoNCP
wiring), and its cell ``rnn.rnn_cell`` is stepped here exactly as ``ncps.torch.LTC.forward`` steps
it: optional mixed-memory LSTM first (``rnn.lstm``), then the cell, whose fused semi-implicit
solver does ``ode_unfolds`` (6) updates of

    v <- (cm_t * v + gleak * vleak + sum_j w_ij sigma(v_j) E_ij + sensory terms)
         / (cm_t + gleak + sum_j w_ij sigma(v_j) + sensory terms),   cm_t = cm / (dt / ode_unfolds)

followed by the output mapping (first ``motor_neurons`` neurons, affine ``output_w``/``output_b``).
Output = the motor neurons (an AutoNCP wiring) or all ``units``.

How time is used: ncps 1.0.1's ``LTC.forward`` squeezes a batch of per-sample timespans to (B,),
which crashes or, when the batch size equals the number of neurons, silently pairs sample i's time
with neuron i (upstream issues 81-83). So it is never called with timespans: the cell is given a
(B, 1) elapsed time per step, which broadcasts per sample. Elapsed times are clamped below at
``min_elapsed`` (1e-6): the cell divides by ``dt``, so ``dt = 0`` (e.g. zero-padded steps) would
give NaN outputs and NaN gradients even through masked steps; above it the result is ncps' own.
``t=None`` means ``dt = 1``, as ncps' default.

Speed: ``compile_solver=true`` runs ncps' cell step through ``torch.compile`` (Inductor; the same
ncps code, fused into generated kernels): measured 2.1x faster per training step (batch 64, 30
steps, 32 units, 1 thread: 0.26 -> 0.12 s) after a one-off compilation of about 40 s per process
(and about 10 s more for the first evaluation pass), so it pays off on long runs only (a C-MAPSS or
E-MNIST run, not the default benchmark). Outputs equal the eager cell up to float round-off
(tests/test_ltc_compiled.py). Off by default.

Non-trainable ncps parameters (the wiring's sparsity masks) are turned into buffers of the same
name (state-dict compatible with the ncps module), so that every parameter is trainable. The
fully connected wiring's synapse polarities use ``wiring_seed`` (ncps fixes 1111 for an int).
"""

from __future__ import annotations

import ncps
import torch
from ncps.torch import LTC as NcpsLTC
from torch import nn

from baselines._recurrent import RecurrentSequenceModel

WIRINGS = (None, "autoncp")


def autoncp_wiring(
    wiring: str | None, units: int, motor_neurons: int | None, sparsity: float, seed: int
) -> ncps.wirings.AutoNCP | None:
    """``None`` for ``wiring=None``, else an AutoNCP wiring of ``units`` neurons.

    ``motor_neurons`` (the output size) defaults to ``max(1, round(0.3 * units))``, the choice the
    ncps documentation recommends.
    """
    if wiring not in WIRINGS:
        raise ValueError(f"unknown wiring {wiring!r}; expected one of {WIRINGS}")
    if wiring is None:
        return None
    motor = max(1, round(0.3 * units)) if motor_neurons is None else int(motor_neurons)
    return ncps.wirings.AutoNCP(int(units), motor, sparsity_level=float(sparsity), seed=int(seed))


def frozen_parameters_to_buffers(module: nn.Module) -> None:
    """Re-register every ``requires_grad=False`` parameter under ``module`` as a buffer (same name)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and not param.requires_grad:
                delattr(sub, name)
                sub.register_buffer(name, param.detach())


def _cell_step(cell: nn.Module, x_t: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor):
    return cell(x_t, h, elapsed)


_compiled_cell_step = None


def compiled_cell_step(cell: nn.Module, x_t: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor):
    """``cell(x_t, h, elapsed)`` through ``torch.compile`` (compiled on first use, shapes dynamic)."""
    global _compiled_cell_step
    if _compiled_cell_step is None:
        _compiled_cell_step = torch.compile(_cell_step, dynamic=True)
    return _compiled_cell_step(cell, x_t, h, elapsed)


class NcpsStepper(RecurrentSequenceModel):
    """Steps the cell of an ``ncps.torch`` LTC/CfC module (``self.rnn``) one observation at a time,
    exactly as that module's forward does, but with (B, 1) elapsed times (ncps issues 81-83)."""

    rnn: nn.Module

    def initial_state(self, batch: int, like: torch.Tensor):
        h = like.new_zeros(batch, self.rnn.state_size)
        return (h, h.clone()) if self.rnn.use_mixed else h

    def elapsed(self, dt: torch.Tensor) -> torch.Tensor:
        """The elapsed time handed to the cell."""
        return dt

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """The cell output mapped to the model output."""
        return out

    def cell(self, x_t: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor):
        """The recurrent cell's (output, state): ncps' own cell."""
        return self.rnn.rnn_cell(x_t, h, elapsed)

    def step(self, x_t: torch.Tensor, state, dt: torch.Tensor):
        if self.rnn.use_mixed:
            h, c = self.rnn.lstm(x_t, state)
        else:
            h, c = state, None
        out, h = self.cell(x_t, h, self.elapsed(dt))
        return self.output(out), ((h, c) if self.rnn.use_mixed else h)


class LTC(NcpsStepper):
    """ncps LTC stepped with per-sample elapsed times; output = motor neurons (or all units)."""

    uses_time = True
    padding_invariant = True

    def __init__(
        self,
        input_dim: int,
        units: int = 64,
        wiring: str | None = None,
        motor_neurons: int | None = None,
        sparsity: float = 0.5,
        wiring_seed: int = 22222,
        ode_unfolds: int = 6,
        mixed_memory: bool = False,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        min_elapsed: float = 1e-6,
        return_sequences: bool = False,
        compile_solver: bool = False,
    ):
        wired = autoncp_wiring(wiring, units, motor_neurons, sparsity, wiring_seed)
        if wired is None:
            wired = ncps.wirings.FullyConnected(int(units), erev_init_seed=int(wiring_seed))
        rnn = NcpsLTC(
            input_dim,
            wired,
            return_sequences=True,
            batch_first=True,
            mixed_memory=mixed_memory,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            implicit_param_constraints=implicit_param_constraints,
        )
        super().__init__(input_dim, rnn.output_size, return_sequences)
        self.rnn = rnn
        frozen_parameters_to_buffers(self.rnn)
        self.min_elapsed = float(min_elapsed)
        self.compile_solver = bool(compile_solver)

    def _sync_cell_params(self) -> None:
        """LTCCell reads its tensors through a ``_params`` dict: point it at the current ones."""
        cell = self.rnn.rnn_cell
        for name in cell._params:
            cell._params[name] = getattr(cell, name)

    def initial_state(self, batch: int, like: torch.Tensor):
        self._sync_cell_params()
        return super().initial_state(batch, like)

    def elapsed(self, dt: torch.Tensor) -> torch.Tensor:
        return dt.clamp(min=self.min_elapsed)

    def cell(self, x_t: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor):
        if self.compile_solver:
            return compiled_cell_step(self.rnn.rnn_cell, x_t, h, elapsed)
        return super().cell(x_t, h, elapsed)
