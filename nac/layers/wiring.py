"""NCP wirings (from ``ncps.wirings``) turned into fixed masks for dense PyTorch layers.

The NAC ``paper`` variant uses two kinds of sparse maps, both drawn from an ``AutoNCP``
wiring with a fixed seed so that a model is reproducible:

* a *sensory* map input_dim -> n (used for Q/K/V): the sensory -> inter synapses of an
  AutoNCP wiring whose inter layer has exactly ``n`` neurons;
* a feed-forward *backbone* in_dim -> inter -> command -> motor, one masked linear map per
  layer (the command layer's recurrent synapses are not used: each pair is evaluated once).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from ncps.wirings import AutoNCP
from torch import nn


def check_sparsity(sparsity: float) -> None:
    if not 0.1 <= sparsity <= 0.9:
        raise ValueError(
            f"sparsity={sparsity} is outside the range an AutoNCP wiring accepts, [0.1, 0.9]. "
            "For a dense (fully connected) NAC use the NAC-FC ablation (model=nac_fc)."
        )


def autoncp_units_for_inter(n_inter: int) -> int:
    """Smallest AutoNCP size (with 0 motor neurons) whose inter layer has ``n_inter`` neurons.

    The authors' code uses ``ceil((n - 0.5) / 0.6)``, which satisfies this for the sizes they
    use; searching keeps it correct for every ``n``.
    """
    start = max(3, math.ceil((n_inter - 0.5) / 0.6) - 2)
    for units in range(start, 3 * n_inter + 8):
        command = max(int(0.4 * units), 1)
        if units - command == n_inter:
            return units
    raise ValueError(f"no AutoNCP size gives exactly {n_inter} inter neurons")


def sensory_mask(input_dim: int, n_out: int, sparsity: float, seed: int) -> torch.Tensor:
    """A fixed 0/1 mask of shape (input_dim, n_out) from an AutoNCP sensory -> inter wiring."""
    check_sparsity(sparsity)
    wiring = AutoNCP(autoncp_units_for_inter(n_out), 0, sparsity_level=sparsity, seed=seed)
    wiring.build(input_dim)
    inter = wiring.get_neurons_of_layer(0)
    mask = np.abs(wiring.sensory_adjacency_matrix)[:, inter]
    return torch.as_tensor(mask, dtype=torch.float32)


class MaskedLinear(nn.Module):
    """``y = x @ (W * M) + b`` with a fixed 0/1 mask M; init scaled by each unit's real fan-in."""

    def __init__(self, mask: torch.Tensor, bias: bool = True):
        super().__init__()
        in_features, out_features = mask.shape
        self.register_buffer("mask", mask.float())
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        fan_in = self.mask.sum(0).clamp(min=1.0)
        bound = torch.sqrt(3.0 / fan_in)  # unit variance for unit-variance inputs
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_(bound)

    @property
    def in_features(self) -> int:
        return self.mask.shape[0]

    @property
    def out_features(self) -> int:
        return self.mask.shape[1]

    def masked_weight(self) -> torch.Tensor:
        """``W * M``, (in_features, out_features)."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x @ (W * M) + b; F.linear adds the bias inside the matrix product (addmm) instead of in a
        # second pass over the output (the per-pair backbone spent 7 % of a step in that add); the
        # (out, in) weight made contiguous (a few hundred floats) measured 7 % faster on the
        # backbone's 1.3 M pairs than passing the transposed view
        return F.linear(x, self.masked_weight().t().contiguous(), self.bias)


class NCPBackbone(nn.Module):
    """Feed-forward inter -> command -> motor network masked by an AutoNCP wiring.

    ``dense=True`` keeps the same layer sizes with all-ones masks (the NAC-FC ablation).
    """

    def __init__(
        self,
        in_dim: int,
        units: int,
        motor: int,
        sparsity: float,
        seed: int,
        dense: bool = False,
        activation: type[nn.Module] = nn.Tanh,
    ):
        super().__init__()
        check_sparsity(sparsity)
        if units < motor + 3:
            raise ValueError(f"backbone_units={units} is too small: need at least motor + 3 = {motor + 3}")
        wiring = AutoNCP(units, motor, sparsity_level=sparsity, seed=seed)
        wiring.build(in_dim)
        inter, command, motor_ids = (wiring.get_neurons_of_layer(i) for i in range(3))
        adj = np.abs(wiring.adjacency_matrix)
        masks = [
            np.abs(wiring.sensory_adjacency_matrix)[:, inter],
            adj[np.ix_(inter, command)],
            adj[np.ix_(command, motor_ids)],
        ]
        if dense:
            masks = [np.ones_like(m) for m in masks]
        self.layers = nn.ModuleList(MaskedLinear(torch.as_tensor(m, dtype=torch.float32)) for m in masks)
        self.act = activation()
        self.sizes = (in_dim, len(inter), len(command), len(motor_ids))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.act(self.layers[0](x)))

    def tail(self, inter: torch.Tensor) -> torch.Tensor:
        """The network after the inter layer's activation: inter -> command -> motor. (The NAC layer
        computes the first layer itself, per token instead of per pair; ``NeuronalAttentionCircuit``.)"""
        return self.layers[2](self.act(self.layers[1](inter)))
