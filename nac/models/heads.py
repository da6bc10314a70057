"""Heads: map the sequence model's output (B, H) or (B, L, H) to predictions."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nac.models.init import check_init, keras_init_


class MLPHead(nn.Sequential):
    """Dense layers with ReLU between them, then a linear output layer. ``init="keras"``:
    Glorot-uniform weights and zero biases (Keras' Dense defaults) instead of torch's."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] | int = (), init: str = "torch"):
        check_init("head.init", init)
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
        if init == "keras":
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    keras_init_(layer)
