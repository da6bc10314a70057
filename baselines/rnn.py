"""Discrete-time recurrent baselines: vanilla RNN (Elman), LSTM (Hochreiter & Schmidhuber 1997), GRU (Cho et al. 2014).

What is computed: one ``torch.nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (batch first, ``num_layers`` stacked
layers) over the sequence; the output is the top layer's hidden state at each sample's last valid step
(or at every step with ``return_sequences``).

How time is used: as in the ODE-LSTM benchmark code (Lechner & Hasani 2020, mlech26l/ode-lstms) that
the NAC authors reused, a discrete RNN sees irregular sampling only through its input: with
``time_as_input=True`` the elapsed time since the previous observation is concatenated to the input at
every step, ``[x_t, dt_t]`` (``dt = 1`` when no times are given); with ``time_as_input=False`` the times
are ignored and ``uses_time`` is False.

Padding: sequences are right-padded and the networks are causal, so the padded tail never changes the
valid steps; the last valid output is picked with ``last_valid_step`` (no packing needed).

Initialisation (``init="keras"``, the default, as the Keras layers of the reference code): input
kernels Glorot-uniform, recurrent kernels orthogonal, biases zero, LSTM forget-gate bias 1
(``unit_forget_bias``). ``init="torch"`` keeps PyTorch's defaults.
"""

from __future__ import annotations

import torch
from torch import nn

from nac.contract import SequenceModel, last_valid_step


def keras_init_(module: nn.RNNBase, forget_bias: float | None = None) -> None:
    """Keras-style init of a torch recurrent module (or cell): Glorot-uniform W_ih, orthogonal W_hh,
    zero biases; ``forget_bias`` goes into the LSTM forget-gate chunk (torch gate order i, f, g, o)."""
    for name, param in module.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)  # fan_in = C, fan_out = G*H, as Keras' (C, G*H) kernel
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(param)
        elif name.startswith("bias"):
            nn.init.zeros_(param)
            if forget_bias is not None and name.startswith("bias_ih"):
                hidden = param.shape[0] // 4
                with torch.no_grad():
                    param[hidden : 2 * hidden].fill_(forget_bias)


class _TorchRecurrent(SequenceModel):
    """Shared implementation: a torch recurrent module over ``[x, dt]`` (or ``x``)."""

    module_class: type[nn.RNNBase] = nn.RNN
    forget_bias: float | None = None

    def __init__(
        self,
        input_dim: int,
        units: int = 32,
        num_layers: int = 1,
        time_as_input: bool = True,
        dropout: float = 0.0,
        init: str = "keras",
        return_sequences: bool = False,
        **module_kwargs,
    ):
        """``units``: hidden size H (= output_dim); ``dropout`` between stacked layers;
        ``module_kwargs`` go to the torch module (e.g. ``nonlinearity`` for the vanilla RNN)."""
        super().__init__()
        self.input_dim, self.output_dim = int(input_dim), int(units)
        self.time_as_input = bool(time_as_input)
        self.uses_time = self.time_as_input
        self.return_sequences = bool(return_sequences)
        self.rnn = self.module_class(
            self.input_dim + int(self.time_as_input),
            self.output_dim,
            num_layers=int(num_layers),
            batch_first=True,
            dropout=float(dropout),
            **module_kwargs,
        )
        if init == "keras":
            keras_init_(self.rnn, self.forget_bias)
        elif init != "torch":
            raise ValueError(f"init must be 'keras' or 'torch', not {init!r}")

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.time_as_input:
            if t is None:
                t = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
            x = torch.cat([x, t.to(dtype=x.dtype).unsqueeze(-1)], dim=-1)
        seq, _ = self.rnn(x)
        return seq if self.return_sequences else last_valid_step(seq, mask)


class RNN(_TorchRecurrent):
    """Vanilla (Elman) RNN, ``h_t = tanh(W_ih [x_t, dt_t] + W_hh h_{t-1} + b)``."""

    module_class = nn.RNN


class LSTM(_TorchRecurrent):
    """LSTM; Keras init puts 1 in the forget-gate bias."""

    module_class = nn.LSTM
    forget_bias = 1.0


class GRU(_TorchRecurrent):
    """GRU."""

    module_class = nn.GRU
