"""Weight initialisations a stem or head can choose: torch's defaults or Keras' (the authors' code)."""

from __future__ import annotations

from torch import nn

#: ``torch``: the layers' own defaults; ``keras``: Glorot-uniform weights, zero biases
INITS = ("torch", "keras")


def check_init(key: str, init: str) -> None:
    """One-line error for an unknown ``init`` value of config key ``key``."""
    if init not in INITS:
        raise ValueError(f"{key}={init!r} is not valid; use one of {', '.join(INITS)}")


def keras_init_(layer: nn.Module) -> None:
    """Keras' default initialisation of a Dense / Conv1D layer: Glorot-uniform weight, zero bias
    (fan_in = in * k, fan_out = out * k, as for Keras' (k, in, out) kernel)."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
