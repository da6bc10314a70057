"""1-D CNN of the RUL literature: convolutions over time, then one dense layer over a flattened window.

Reference: Li, Ding & Sun 2018, "Remaining useful life estimation in prognostics using deep
convolution neural networks" (Reliability Engineering & System Safety 172), the ~12.6 RMSE CNN on
C-MAPSS FD001. Their network, on a window of ``N_tw`` cycles x ``N_ft`` sensors: four convolution
layers of 10 filters with a 10 x 1 kernel (over time only, the same kernels slid along every
sensor), a fifth of 1 filter with a 3 x 1 kernel, ``same`` zero padding, tanh everywhere; then
flatten (``N_tw * N_ft`` values), dropout 0.5, a dense layer of 100 tanh units, one linear output.

Computed here (defaults ``channels=[10, 10, 10, 10, 1]``, ``kernel_size=[10, 10, 10, 10, 3]``):

* ``per_feature=True`` (theirs): every input feature is its own 1-channel series through the same
  convolution stack (a 2-D convolution with a k x 1 kernel); ``False``: an ordinary ``Conv1d`` stack
  that mixes the features from the first layer on;
* ``same`` padding as Keras/TensorFlow lay it out (``k - 1`` zeros, the smaller half on the left:
  4 left and 5 right for k = 10), activation after every layer;
* the dense layer reads the flattened last ``span`` steps of the final feature maps (time-major,
  ``index = step * F + feature``, as Keras flattens ``(N_tw, N_ft, 1)``) ending at a sample's last
  valid step, zeros standing in for steps before the sequence start: with ``span`` equal to the
  window length this is their flatten + dense. With ``return_sequences`` the same dense layer is read
  at every step (the window ending there). Dropout before it, its activation after it; the output is
  ``units`` wide (their 100 units; the harness' head maps it to the target).

Padding: steps with mask False are zeroed before the first layer and after every layer, which is
what a sample run alone sees past its end (``same`` padding adds zeros), so padding never changes
valid outputs. Time: not used (``uses_time=False``; the window is in cycles, as theirs).

Simplifications: in the harness the dataset's stem and head surround the network (C-MAPSS: a
Conv1d(32, k3, ReLU) stem in front, a Dense(32, ReLU) + Dense(1) head after), so the features the
convolutions see are the stem's 32 channels rather than the 14 sensors; initialisation Xavier normal
with zero biases as theirs (``init="torch"`` keeps PyTorch's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nac.contract import SequenceModel, last_valid_step

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda h: h}


def same_padding(kernel_size: int) -> tuple[int, int]:
    """(left, right) zeros of Keras' ``padding='same'`` at stride 1: ``k - 1`` in all, the smaller half left."""
    total = int(kernel_size) - 1
    return total // 2, total - total // 2


def _as_list(value: int | Sequence[int], n: int, key: str) -> list[int]:
    values = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{key}={list(values)} must give one value per layer of channels ({n} layers)")
    return values


class CNN1D(SequenceModel):
    """Conv1d stack over time + dense layer over the last ``span`` steps; see the module docstring."""

    uses_time = False

    def __init__(
        self,
        input_dim: int,
        channels: Sequence[int] = (10, 10, 10, 10, 1),
        kernel_size: int | Sequence[int] = (10, 10, 10, 10, 3),
        span: int = 30,
        units: int = 100,
        per_feature: bool = True,
        dropout: float = 0.5,
        activation: str = "tanh",
        dense_activation: str = "tanh",
        init: str = "xavier_normal",
        return_sequences: bool = False,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"channels={channels} must list at least one layer, each with >= 1 filter")
        kernels = _as_list(kernel_size, len(channels), "kernel_size")
        if min(kernels) < 1 or int(span) < 1 or int(units) < 1:
            raise ValueError(f"kernel_size={kernels}, span={span} and units={units} must be positive")
        for key, value in (("activation", activation), ("dense_activation", dense_activation)):
            if value not in ACTIVATIONS:
                raise ValueError(f"{key}={value!r} is not valid; use one of {', '.join(ACTIVATIONS)}")
        if init not in ("xavier_normal", "torch"):
            raise ValueError(f"init={init!r} is not valid; use 'xavier_normal' or 'torch'")
        self.input_dim, self.output_dim = int(input_dim), int(units)
        self.per_feature, self.span = bool(per_feature), int(span)
        self.return_sequences = bool(return_sequences)
        widths = [1 if self.per_feature else self.input_dim, *channels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k) for a, b, k in zip(widths, widths[1:], kernels))
        self.features = channels[-1] * (self.input_dim if self.per_feature else 1)  # F per step
        self.dense = nn.Linear(self.span * self.features, self.output_dim)
        self.dropout = nn.Dropout(float(dropout))
        self.act, self.dense_act = ACTIVATIONS[activation], ACTIVATIONS[dense_activation]
        if init == "xavier_normal":
            for layer in (*self.convs, self.dense):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def feature_maps(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution stack's output, (B, L, F); padded steps hold values no valid window reads."""
        batch, length, _ = x.shape
        keep = None if mask is None else mask.to(x.dtype)[:, None, :]  # (B, 1, L)
        h = x.transpose(1, 2)  # (B, C, L)
        if self.per_feature:
            h = h.reshape(batch * self.input_dim, 1, length)
            keep = None if keep is None else keep.repeat_interleave(self.input_dim, dim=0)
        for conv in self.convs:
            if keep is not None:
                h = h * keep
            h = self.act(conv(F.pad(h, same_padding(conv.kernel_size[0]))))
        if self.per_feature:  # (B*C, c, L) -> (B, C*c, L): feature index = input feature * c + filter
            h = h.reshape(batch, self.input_dim * h.shape[1], length)
        return h.transpose(1, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.feature_maps(x, mask)  # (B, L, F)
        batch, length, features = maps.shape
        padded = F.pad(maps, (0, 0, self.span - 1, 0))  # span - 1 zero steps before the start
        if self.return_sequences:  # the window ending at every step: (B, L, span, F)
            windows = padded.unfold(1, self.span, 1).transpose(2, 3)
        else:  # only the window ending at the last valid step: (B, span, F)
            ends = last_valid_step(torch.arange(length, device=x.device).expand(batch, length)[..., None], mask)[:, 0]
            steps = ends[:, None] + torch.arange(self.span, device=x.device)[None]  # indices into `padded`
            windows = padded[torch.arange(batch, device=x.device)[:, None], steps]
        flat = windows.reshape(*windows.shape[:-2], self.span * features)
        return self.dense_act(self.dense(self.dropout(flat)))
