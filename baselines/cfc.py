"""Closed-form continuous-time (CfC) network baseline, from ``ncps.torch``.

Reference: R. Hasani, M. Lechner, A. Amini, L. Liebenwein, A. Ray, M. Tschaikowski, G. Teschl and
D. Rus, "Closed-form continuous-time neural networks", Nature Machine Intelligence 4, 2022;
implementation ``ncps.torch.CfC`` / ``CfCCell`` / ``WiredCfCCell`` (ncps 1.0.1).

What is computed: the ncps module is built as usual and its cell ``rnn.rnn_cell`` is stepped here
exactly as ``ncps.torch.CfC.forward`` steps it: optional mixed-memory LSTM first (``rnn.lstm``),
then the cell, then the optional projection ``rnn.fc`` (``proj_size``). With a backbone
``z = backbone([x, h])`` (``backbone_layers`` x ``backbone_units``, lecun_tanh; ncps defaults
1 x 128, no dropout), mode

* ``default``: h' = tanh(f1(z)) * (1 - s) + s * tanh(f2(z)),  s = sigmoid(t_a(z) * dt + t_b(z));
* ``no_gate``: h' = tanh(f1(z)) + s * tanh(f2(z));
* ``pure``:    h' = -A * exp(-dt * (|w_tau| + |f1(z)|)) * f1(z) + A.

With an AutoNCP wiring the cell is ncps' ``WiredCfCCell`` (one sparse CfC layer per NCP layer, no
backbone) and the output is the motor neurons. Output size = ``proj_size``, else the motor
neurons (wiring) or ``units``.

How time is used: ncps 1.0.1's ``CfC.forward`` squeezes a batch of per-sample timespans to (B,),
which crashes or, when the batch size equals the number of units, silently pairs sample i's time
with unit i (upstream issues 81-83). So it is never called with timespans: the cell is given a
(B, 1) elapsed time per step, which broadcasts per sample. ``t=None`` means ``dt = 1``, as ncps.

Non-trainable ncps parameters (a wiring's sparsity masks) become buffers of the same name, so that
every parameter is trainable (see :func:`baselines.ltc.frozen_parameters_to_buffers`).
"""

from __future__ import annotations

import torch
from ncps.torch import CfC as NcpsCfC

from baselines.ltc import NcpsStepper, autoncp_wiring, frozen_parameters_to_buffers


class CfC(NcpsStepper):
    """ncps CfC stepped with per-sample elapsed times."""

    uses_time = True
    padding_invariant = True

    def __init__(
        self,
        input_dim: int,
        units: int = 64,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        proj_size: int | None = None,
        mixed_memory: bool = False,
        wiring: str | None = None,
        motor_neurons: int | None = None,
        sparsity: float = 0.5,
        wiring_seed: int = 22222,
        return_sequences: bool = False,
    ):
        wired = autoncp_wiring(wiring, units, motor_neurons, sparsity, wiring_seed)
        rnn = NcpsCfC(
            input_dim,
            int(units) if wired is None else wired,
            proj_size=proj_size,
            return_sequences=True,
            batch_first=True,
            mixed_memory=mixed_memory,
            mode=mode,
            activation=activation,
            backbone_units=backbone_units,
            backbone_layers=backbone_layers,
            backbone_dropout=backbone_dropout,
        )
        super().__init__(input_dim, rnn.output_size if proj_size is None else int(proj_size), return_sequences)
        self.rnn = rnn
        frozen_parameters_to_buffers(self.rnn)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return self.rnn.fc(out)  # the proj_size projection (identity without one), as ncps' forward
