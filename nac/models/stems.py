"""Stems: per-domain feature extractors applied before the sequence model.

A stem follows ``forward(x, t, mask) -> (x, t, mask)`` (it may change the length, e.g. a strided
convolution, and then also resamples ``t`` and ``mask``) and exposes ``output_dim``.
"""

from __future__ import annotations

import torch
from torch import nn

from nac.models.init import check_init, keras_init_


class LinearStem(nn.Module):
    """A per-step linear map (optionally followed by an activation); keeps the time grid."""

    def __init__(self, in_features: int, out_features: int, activation: str | None = None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = {None: nn.Identity(), "relu": nn.ReLU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}[activation]
        self.output_dim = int(out_features)

    def forward(self, x: torch.Tensor, t=None, mask=None):
        return self.act(self.linear(x)), t, mask


class ConvStem(nn.Module):
    """Stacked Conv1d + activation over time, with stride, as in the paper's E-MNIST model.

    Output step j of a stride-s layer reads inputs from ``j*s - (k-1)//2`` on (a fixed left
    padding, so a sample's outputs do not depend on how much padding its batch adds); steps past
    a sample's end are zeroed after every layer. Time and mask are resampled per stride block:
    the block's elapsed times are summed (the output is observed when its block ends) and the
    output step is valid when any step of its block is.

    ``padding="keras"`` pads as Keras' ``padding='same'`` does instead: per layer, the total
    ``max((ceil(L/s) - 1) * s + k - L, 0)`` with its smaller half on the left (for the E-MNIST stem:
    2 left / 2 right on 256 steps, then 1 left / 2 right on 52; ``left`` pads 2 / 2 and 2 / 1). The
    left padding then depends on the batch's length, so use it on fixed-length data (``emnist_authors``).
    ``padding="causal"`` pads ``k - 1`` steps on the left only (stride 1): output step i reads inputs
    i - k + 1 .. i, never a later one, as per-step labels with a causal sequence model need
    (``experiment=bearings_clean_causal``); ``left`` shows step i the input of step i + (k - 1) // 2.
    ``keep_time=False`` returns no time (``t=None``: every model sees unit steps, as a Keras model
    given no time does). ``init="keras"``: Glorot-uniform weights and zero biases (Keras' Conv1D
    defaults) instead of torch's.
    """

    def __init__(
        self,
        in_features: int,
        channels: list[int] | int,
        kernel_size: int = 5,
        stride: list[int] | int = 1,
        activation: str = "relu",
        padding: str = "left",
        keep_time: bool = True,
        init: str = "torch",
    ):
        super().__init__()
        if padding not in ("left", "keras", "causal"):
            raise ValueError(f"stem.padding={padding!r} is not valid; use one of left, keras, causal")
        check_init("stem.init", init)
        channels = [channels] if isinstance(channels, int) else list(channels)
        strides = [stride] * len(channels) if isinstance(stride, int) else list(stride)
        if len(strides) != len(channels):
            raise ValueError(f"ConvStem: {len(channels)} channel sizes but {len(strides)} strides")
        if padding == "causal" and any(s != 1 for s in strides):
            raise ValueError(
                f"stem.padding=causal needs stride 1 in every layer, got stride {strides}: a strided output "
                "step summarises a block of inputs that ends after the step it would be read at"
            )
        widths = [in_features, *channels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, s) for a, b, s in zip(widths, widths[1:], strides))
        self.act = {"relu": nn.ReLU(), "elu": nn.ELU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}[activation]
        self.kernel_size = int(kernel_size)
        self.output_dim = widths[-1]
        self.padding, self.keep_time = padding, bool(keep_time)
        if init == "keras":
            for conv in self.convs:
                keras_init_(conv)

    def _pads(self, length: int, out_len: int, stride: int) -> tuple[int, int]:
        """(left, right) padding of one layer (class docstring)."""
        if self.padding == "keras":
            total = max((out_len - 1) * stride + self.kernel_size - length, 0)
            return total // 2, total - total // 2
        if self.padding == "causal":
            return self.kernel_size - 1, 0  # stride 1: out_len == length
        left = (self.kernel_size - 1) // 2
        return left, max(0, (out_len - 1) * stride + self.kernel_size - length - left)

    @staticmethod
    def _resample(t, mask, length: int, stride: int):
        out_len = -(-length // stride)
        pad = out_len * stride - length
        if mask is not None:
            mask = nn.functional.pad(mask, (0, pad)).view(mask.shape[0], out_len, stride).any(-1)
        if t is not None:
            t = nn.functional.pad(t, (0, pad)).view(t.shape[0], out_len, stride).sum(-1)
        return t, mask, out_len

    @staticmethod
    def _convolve(conv: nn.Conv1d, h: torch.Tensor, out_len: int) -> torch.Tensor:
        """``conv(h)`` (B, C, L) -> (B, C', out_len). When the stride equals the kernel size (the
        paper's E-MNIST stem) the windows do not overlap: the convolution is then a reshape and one
        linear map, several times faster on the CPU than a small oneDNN convolution and its backward
        (equal up to float round-off; tests compare it with ``conv`` itself)."""
        k = conv.kernel_size[0]
        if conv.stride[0] != k or conv.dilation[0] != 1 or conv.groups != 1 or conv.padding != (0,):
            return conv(h)
        b, c, _ = h.shape
        windows = h[..., : out_len * k].reshape(b, c, out_len, k).transpose(1, 2).reshape(b, out_len, c * k)
        return nn.functional.linear(windows, conv.weight.reshape(conv.out_channels, c * k), conv.bias).transpose(1, 2)

    def forward(self, x: torch.Tensor, t=None, mask=None):
        h = x.transpose(1, 2)  # (B, C, L)
        if mask is not None:
            h = h * mask[:, None, :]
        if t is not None and mask is not None:
            t = t * mask
        for conv in self.convs:
            length = h.shape[-1]
            stride = conv.stride[0]
            t, mask, out_len = self._resample(t, mask, length, stride)
            left, right = self._pads(length, out_len, stride)
            h = self.act(self._convolve(conv, nn.functional.pad(h, (left, right)), out_len))
            if mask is not None:
                h = h * mask[:, None, :]
        return h.transpose(1, 2), (t if self.keep_time else None), mask
