"""PilotNet stem and head for the Udacity steering task (docs/PROTOCOLS.md section 2, ``udacity``).

The stem is NVIDIA's PilotNet convolution stack as the NAC authors use it: Conv2d 24, 36, 48 (5x5,
stride 2, ELU), 64, 64 (3x3, ELU). A 3x66x200 frame becomes a 64-channel 1x18 map; dropout 0.5;
then the map is cut into 64 tokens of 18 features that the sequence model reads.

Token layout: the authors' Keras code applies ``Reshape((-1, H' * W'))`` to the channels-last map
(1, 18, 64), i.e. flattens it in (row, column, channel) order and cuts that into 64 pieces of 18:
``token_layout="keras"`` (default) reproduces this exactly (a token mixes channels and columns).
``token_layout="channels"`` makes token k the 18 column values of channel k instead.
"""

from __future__ import annotations

import torch
from torch import nn


class PilotNetStem(nn.Module):
    """Frames (B, L, C, H, W) -> tokens (B, L * 64, F) with F = H' * W' (18 for 66x200 input).

    ``t`` of every token is 1.0 (tokens are slices of one feature map, evenly spaced); a token is
    valid when its frame is. Usually L = 1 (the paper's single frame); with L > 1 the tokens of the
    frames follow each other.
    """

    def __init__(
        self,
        in_features: int = 3,
        dropout: float = 0.5,
        token_layout: str = "keras",
        image_size: tuple[int, int] = (66, 200),
    ):
        super().__init__()
        if token_layout not in ("keras", "channels"):
            raise ValueError(f"token_layout={token_layout!r} is not valid; choose 'keras' or 'channels'")
        spec = [(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)]
        layers: list[nn.Module] = []
        width = int(in_features)
        for channels, kernel, stride in spec:
            layers += [nn.Conv2d(width, channels, kernel, stride), nn.ELU()]
            width = channels
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.token_layout = token_layout
        self.in_features = int(in_features)
        with torch.no_grad():
            h = self.convs(torch.zeros(1, self.in_features, *image_size))
        if h.shape[-2] * h.shape[-1] < 1:
            raise ValueError(f"image_size={tuple(image_size)} is too small for the PilotNet convolutions")
        self.tokens_per_frame = int(h.shape[1])  # one token per output channel (64)
        self.output_dim = int(h.shape[-2] * h.shape[-1])  # features per token (18 for 66x200)

    def tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 64, F) tokens."""
        h = self.dropout(self.convs(frames))  # (N, 64, H', W')
        n = h.shape[0]
        if self.token_layout == "keras":  # channels-last flatten, then cut into 64 x F
            return h.permute(0, 2, 3, 1).reshape(n, self.tokens_per_frame, -1)
        return h.flatten(2)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        if x.dim() == 4:  # (B, C, H, W): one frame per sample
            x = x[:, None]
        if x.dim() != 5 or x.shape[2] != self.in_features:
            raise ValueError(f"PilotNetStem expects frames (B, L, {self.in_features}, H, W), got {tuple(x.shape)}")
        b, length = x.shape[:2]
        tokens = self.tokens(x.reshape(b * length, *x.shape[2:]))
        tokens = tokens.reshape(b, length * self.tokens_per_frame, -1)
        token_mask = None
        if mask is not None:
            token_mask = mask.bool().repeat_interleave(self.tokens_per_frame, dim=1)
            tokens = tokens * token_mask[..., None]
        token_t = torch.ones(b, length * self.tokens_per_frame, dtype=tokens.dtype, device=tokens.device)
        if token_mask is not None:
            token_t = token_t * token_mask
        return tokens, token_t, token_mask


class EluHead(nn.Sequential):
    """ELU, then Dense(out_features): the head after the sequence layer in the paper's driving model."""

    def __init__(self, in_features: int, out_features: int = 1):
        super().__init__(nn.ELU(), nn.Linear(in_features, out_features))
