"""What the speed suite times: training steps of NAC and of torch reference layers, and one
long-sequence forward + backward of the NAC layer with its memory increment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nac.bench.probe import MemoryProbe
from nac.bench.timing import measure

#: NAC variants and the torch reference layers a training step can be built for
NAC_VARIANTS = ("paper", "official")
REFERENCES = ("lstm", "mha")
#: suffix of a NAC kind that computes every query and then reads the last step, as the authors'
#: layer does; without it the layer attends from the returned (last) query only (same output)
EVERY_QUERY = "+all"


@dataclass(frozen=True)
class StepShape:
    """The paper's E-MNIST settings for one training step (issue 12)."""

    batch: int = 32
    input_dim: int = 64
    d_model: int = 64
    heads: int = 16
    topk: int = 10
    sparsity: float = 0.7
    mode: str = "exact"
    classes: int = 10

    def describe(self, length: int) -> str:
        return f"B={self.batch} T={length} F={self.input_dim} d={self.d_model} h={self.heads}"


@dataclass(frozen=True)
class LongShape:
    """One long sequence, forward + backward (loss = output.sum()); sparsity is the layer's default."""

    batch: int = 1
    input_dim: int = 64
    d_model: int = 64
    heads: int = 16
    topk: int = 8
    mode: str = "exact"

    def describe(self, length: int) -> str:
        return f"B={self.batch} T={length} F={self.input_dim} d={self.d_model} h={self.heads} K={self.topk}"


class LastStep(nn.Module):
    """A torch reference layer (LSTM or self-attention) returning its last step, as NAC does."""

    def __init__(self, kind: str, input_dim: int, d_model: int, heads: int):
        super().__init__()
        self.kind = kind
        if kind == "lstm":
            self.layer = nn.LSTM(input_dim, d_model, batch_first=True)
        elif kind == "mha":
            self.inp = nn.Identity() if input_dim == d_model else nn.Linear(input_dim, d_model)
            self.layer = nn.MultiheadAttention(d_model, heads, batch_first=True)
        else:
            raise ValueError(f"unknown reference layer {kind!r}; choose one of {list(REFERENCES)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "lstm":
            return self.layer(x)[0][:, -1]
        x = self.inp(x)
        return self.layer(x, x, x, need_weights=False)[0][:, -1]


class EveryQueryLastStep(nn.Module):
    """A NAC layer that attends from every query (``return_sequences=True``), read at its last step."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)[:, -1]


def nac_layer(
    kind: str, input_dim: int, d_model: int, heads: int, topk: int, mode: str, sparsity: float | None = None
) -> nn.Module:
    """NAC ``paper``/``official``, or ``<variant>+all`` computing every query (see :data:`EVERY_QUERY`)."""
    from nac.layers import NeuronalAttentionCircuit

    variant, every_query = kind.removesuffix(EVERY_QUERY), kind.endswith(EVERY_QUERY)
    extra = {} if sparsity is None else {"sparsity": sparsity}
    layer = NeuronalAttentionCircuit(
        input_dim, d_model, heads, variant=variant, topk=topk, mode=mode, return_sequences=every_query, **extra
    )
    return EveryQueryLastStep(layer) if every_query else layer


def sequence_layer(kind: str, shape: StepShape) -> nn.Module:
    """NAC (``paper``, ``official``, each also ``+all``) or a reference layer (``lstm``, ``mha``) at ``shape``."""
    if kind.removesuffix(EVERY_QUERY) in NAC_VARIANTS:
        return nac_layer(kind, shape.input_dim, shape.d_model, shape.heads, shape.topk, shape.mode, shape.sparsity)
    return LastStep(kind, shape.input_dim, shape.d_model, shape.heads)


def training_step(
    kind: str, length: int, shape: StepShape, device: torch.device | str, seed: int = 0
) -> Callable[[], float]:
    """One training step as a closure: forward, Linear(d_model, classes) head, cross-entropy,
    backward, Adam step; returns the loss."""
    torch.manual_seed(seed)
    layer = sequence_layer(kind, shape).to(device)
    head = nn.Linear(shape.d_model, shape.classes).to(device)
    optimizer = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=1e-3)
    x = torch.randn(shape.batch, length, shape.input_dim, device=device)
    y = torch.randint(0, shape.classes, (shape.batch,), device=device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(layer(x)), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def long_point(variant: str, length: int, device: str, threads: int, repeats: int, shape: dict) -> dict:
    """In this (fresh) process: a cold forward + backward at ``length`` steps with its memory increment,
    then ``repeats`` more, each timed. JSON-able, for :func:`nac.bench.fresh.call_fresh`."""
    torch.set_num_threads(threads)
    s = LongShape(**shape)
    torch.manual_seed(0)
    layer = nac_layer(variant, s.input_dim, s.d_model, s.heads, s.topk, s.mode).to(device)
    x = torch.randn(s.batch, length, s.input_dim, device=device)

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    probe = MemoryProbe(device)
    probe.start()
    cold = measure(forward_backward, warmup=0, repeats=1, label="cold forward + backward")
    memory = probe.stop()
    warm = measure(forward_backward, warmup=0, repeats=repeats, label="forward + backward") if repeats else None
    return {
        "variant": variant,
        "length": length,
        "shape": asdict(s),
        "threads": torch.get_num_threads(),
        "cold_s": cold.times[0],
        "times_s": list(warm.times) if warm else [],
        "peak_mib": memory.peak_mib,
        "baseline_mib": memory.baseline_mib,
        "increment_mib": memory.increment_mib,
        "memory_method": memory.method,
    }
