"""Shared driver for recurrent baselines: step a cell over time with per-sample elapsed times.

A subclass implements :meth:`RecurrentSequenceModel.initial_state` and
:meth:`RecurrentSequenceModel.step`; this class handles the contract (``t`` None -> 1 per step,
(B, 1) elapsed times per step, so every sample uses its own times without a loop over samples;
the state is held at masked steps; ``return_sequences``; the last valid step).
"""

from __future__ import annotations

from typing import Any

import torch

from nac.contract import SequenceModel, last_valid_step

State = Any  # a tensor or a tuple of tensors


def _hold(mask_t: torch.Tensor, new: State, old: State) -> State:
    """Keep ``old`` where ``mask_t`` (B, 1) is False, element-wise over a tensor or a tuple."""
    if isinstance(new, torch.Tensor):
        return torch.where(mask_t, new, old)
    return type(new)(_hold(mask_t, n, o) for n, o in zip(new, old))


def scan(
    step, state: State, x: torch.Tensor, t: torch.Tensor | None, mask: torch.Tensor | None, hold_outputs: bool = False
) -> torch.Tensor:
    """Run ``step(x_t, state, dt) -> (output_t, state)`` over time; the (B, L, H) outputs.

    ``t`` None means one time unit per step; ``dt`` is (B, 1), so each sample uses its own
    elapsed time without a loop over samples; the state is held where ``mask`` is False, and
    with ``hold_outputs`` (outputs that are the state) the output too.
    """
    b, length, _ = x.shape
    if t is None:
        t = torch.ones(b, length, dtype=x.dtype, device=x.device)
    t = t.to(dtype=x.dtype)
    outputs = []
    for i in range(length):
        out, new_state = step(x[:, i], state, t[:, i : i + 1])
        if mask is not None:
            if hold_outputs:
                out = _hold(mask[:, i : i + 1], out, state)
            new_state = _hold(mask[:, i : i + 1], new_state, state)
        state = new_state
        outputs.append(out)
    return torch.stack(outputs, dim=1)


class RecurrentSequenceModel(SequenceModel):
    """Base for models defined by a cell ``(x_t, state, dt) -> (output_t, state)``."""

    def __init__(self, input_dim: int, output_dim: int, return_sequences: bool = False):
        super().__init__()
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.return_sequences = bool(return_sequences)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        """Zero state for ``batch`` samples in the dtype/device of ``like``."""
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: State, dt: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One observation: x_t (B, C), dt (B, 1) elapsed time since the previous one."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        seq = scan(self.step, self.initial_state(x.shape[0], x), x, t, mask)
        return seq if self.return_sequences else last_valid_step(seq, mask)
