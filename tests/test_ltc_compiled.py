"""LTC with ``compile_solver=true``: the same outputs and gradients as ncps' eager cell, up to round-off.

The reference is the eager model itself (ncps' own cell, checked against ncps in
tests/test_references_ncps.py), with the same weights; per-sample elapsed times, a mask and two batch
sizes (the compiled step is built with dynamic shapes), training and evaluation.
"""

from __future__ import annotations

import pytest
import torch

from baselines.ltc import LTC

pytestmark = pytest.mark.slow  # torch.compile takes tens of seconds


def _pair() -> tuple[LTC, LTC]:
    torch.manual_seed(0)
    eager = LTC(3, units=6, return_sequences=True)
    compiled = LTC(3, units=6, return_sequences=True, compile_solver=True)
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


def _inputs(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 7, 3, generator=g)
    t = 0.2 + 1.5 * torch.rand(batch, 7, generator=g)
    mask = torch.ones(batch, 7, dtype=torch.bool)
    mask[0, 5:] = False
    return x, t, mask


def test_compiled_solver_equals_the_eager_cell_outputs_and_gradients():
    eager, compiled = _pair()
    for batch, seed in ((4, 1), (5, 2)):  # a second batch size: no recompilation error, same numbers
        x, t, mask = _inputs(batch, seed)
        outputs = []
        for model in (eager, compiled):
            model.zero_grad()
            y = model(x, t, mask)
            (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
            outputs.append((y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        (y_eager, g_eager), (y_compiled, g_compiled) = outputs
        torch.testing.assert_close(y_compiled, y_eager, rtol=1e-5, atol=1e-6)
        assert g_eager.keys() == g_compiled.keys()
        for name in g_eager:
            torch.testing.assert_close(g_compiled[name], g_eager[name], rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():
        x, t, mask = _inputs(3, 3)
        torch.testing.assert_close(compiled.eval()(x, t, mask), eager.eval()(x, t, mask), rtol=1e-5, atol=1e-6)
