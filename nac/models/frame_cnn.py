"""The paper's per-frame CNN stem for CarRacing (docs/PROTOCOLS.md section 2).

Each 96x96 RGB frame goes through Conv2d(10, 3x3, stride 2, ReLU), Dropout 0.2,
Conv2d(20, 5x5, stride 2, ReLU), Dropout 0.2, Conv2d(30, 5x5, stride 2, ReLU), Dropout 0.2 and is
flattened: valid padding gives 96 -> 47 -> 22 -> 9, so 30 * 9 * 9 = 2430 features per frame. The
same weights are applied to every frame of a sequence, so time ``t`` and ``mask`` are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameCNNStem(nn.Module):
    """x (B, L, C, H, W) -> (B, L, features); ``t`` and ``mask`` pass through.

    ``x`` may be float in [0, 1] or a ``uint8`` tensor (0-255, scaled by 1/255 here).
    ``in_features`` is the number of colour channels (the dataset's ``input_dim``, 3 for RGB).
    """

    def __init__(
        self,
        in_features: int = 3,
        channels: tuple[int, ...] = (10, 20, 30),
        kernel_sizes: tuple[int, ...] = (3, 5, 5),
        stride: int = 2,
        dropout: float = 0.2,
        image_size: tuple[int, int] = (96, 96),
    ):
        super().__init__()
        if len(channels) != len(kernel_sizes):
            raise ValueError(f"FrameCNNStem: {len(channels)} channel sizes but {len(kernel_sizes)} kernel sizes")
        layers: list[nn.Module] = []
        width = int(in_features)
        for out, kernel in zip(channels, kernel_sizes):
            layers += [nn.Conv2d(width, out, kernel, stride), nn.ReLU(), nn.Dropout(dropout)]
            width = out
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.output_dim = int(self.net(torch.zeros(1, int(in_features), *image_size)).shape[1])

    def forward(self, x: torch.Tensor, t=None, mask=None):
        if x.dim() != 5:
            raise ValueError(f"FrameCNNStem expects frames (B, L, C, H, W); got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        batch, length = x.shape[:2]
        features = self.net(x.reshape(batch * length, *x.shape[2:]))
        return features.reshape(batch, length, -1), t, mask
