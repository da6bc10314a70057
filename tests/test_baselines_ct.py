"""Continuous-time recurrent baselines: LTC, CfC (ncps), CT-RNN, ODE-LSTM, GRU-ODE.

The ncps wrappers are checked against ncps' own ``forward`` (uniform times, same weights) and against
samples run one at a time (per-sample times, where ncps 1.0.1's forward is wrong); the others against
hand computations of their update from the module's parameters.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
import torch
from ncps.torch import CfC as NcpsCfC
from ncps.torch import LTC as NcpsLTC
from ncps.wirings import AutoNCP

from baselines.cfc import CfC
from baselines.ctrnn import CTRNN
from baselines.gru_ode import GRUODE
from baselines.ltc import LTC
from baselines.ode_lstm import ODELSTM

C, UNITS = 3, 8


def data(b: int = 3, length: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, C, generator=g, dtype=torch.float64)
    t = torch.rand(b, length, generator=g, dtype=torch.float64) * 2 + 0.1
    return x, t


# (wrapper class, ncps class, wrapper kwargs, ncps kwargs other than the wiring / units)
NCPS_CASES = {
    "ltc": (LTC, NcpsLTC, {}, {}),
    "ltc_autoncp": (LTC, NcpsLTC, {"wiring": "autoncp"}, {}),
    "ltc_mixed": (LTC, NcpsLTC, {"mixed_memory": True, "ode_unfolds": 3}, {"mixed_memory": True, "ode_unfolds": 3}),
    "cfc": (CfC, NcpsCfC, {"backbone_units": 16}, {"backbone_units": 16}),
    "cfc_autoncp": (CfC, NcpsCfC, {"wiring": "autoncp"}, {}),
    "cfc_no_gate_proj": (CfC, NcpsCfC, {"mode": "no_gate", "proj_size": 5, "backbone_units": 16},
                         {"mode": "no_gate", "proj_size": 5, "backbone_units": 16}),
    "cfc_pure_mixed": (CfC, NcpsCfC, {"mode": "pure", "mixed_memory": True, "backbone_units": 16},
                       {"mode": "pure", "mixed_memory": True, "backbone_units": 16}),
    "cfc_autoncp_no_gate": (CfC, NcpsCfC, {"wiring": "autoncp", "mode": "no_gate"}, {"mode": "no_gate"}),
}


def ncps_pair(case: str, seed: int = 0, units: int = UNITS):
    """The wrapper and an independently built ncps module holding the same weights (float64)."""
    cls, ncps_cls, kwargs, ncps_kwargs = NCPS_CASES[case]
    torch.manual_seed(seed)
    model = cls(C, units, wiring_seed=seed + 5, return_sequences=True, **kwargs).double()
    spec = AutoNCP(units, round(0.3 * units), sparsity_level=0.5, seed=seed + 5) if "wiring" in kwargs else units
    twin = ncps_cls(C, spec, return_sequences=True, batch_first=True, **ncps_kwargs).double()
    twin.load_state_dict(model.rnn.state_dict())
    return model, twin


def ncps_forward(twin, x: torch.Tensor, timespans: torch.Tensor | None = None) -> torch.Tensor:
    h0 = torch.zeros(x.shape[0], twin.state_size, dtype=x.dtype)
    hx = (h0, h0.clone()) if twin.use_mixed else h0
    return twin(x, hx, timespans)[0]


@pytest.mark.parametrize("case", sorted(NCPS_CASES))
def test_ncps_wrapper_equals_ncps_forward_with_uniform_times(case):
    model, twin = ncps_pair(case)
    x, _ = data()
    with torch.no_grad():
        expected = ncps_forward(twin, x)
        none, ones = model(x), model(x, torch.ones(x.shape[:2], dtype=x.dtype))
    assert none.shape == expected.shape == (3, 5, model.output_dim)
    if "autoncp" in case:
        assert model.output_dim == round(0.3 * UNITS) < UNITS
    torch.testing.assert_close(none, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ones, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["ltc", "cfc", "cfc_autoncp"])
def test_ncps_wrapper_per_sample_times_when_batch_equals_units(case):
    """Upstream issues 81-83: with batch == units, ncps 1.0.1 pairs sample i's time with neuron i."""
    model, twin = ncps_pair(case)
    x, t = data(b=model.rnn.state_size, length=4, seed=2)
    with torch.no_grad():
        batched = model(x, t)
        alone = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(x.shape[0])])
    torch.testing.assert_close(batched, alone, rtol=1e-10, atol=1e-12)
    if version("ncps") == "1.0.1":  # documents the trap the wrapper avoids: a crash or wrong values
        try:
            with torch.no_grad():
                upstream = ncps_forward(twin, x, t)
        except RuntimeError:
            return
        assert not torch.allclose(upstream, alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [LTC, CfC])
def test_ncps_wrappers_with_autoncp_train_every_parameter(cls):
    torch.manual_seed(0)
    model = cls(C, 12, wiring="autoncp").double()
    assert {"sparsity_mask"} & {n.rsplit(".", 1)[-1] for n, _ in model.named_buffers()}
    x, t = data()
    model(x, t).pow(2).sum().backward()
    assert all(p.requires_grad and p.grad is not None and p.grad.abs().max() > 0 for p in model.parameters())


def test_ltc_zero_elapsed_time_padding_stays_finite():
    """Zero-padded times (dt = 0) must not poison outputs or gradients (the LTC cell divides by dt)."""
    torch.manual_seed(0)
    model = LTC(C, UNITS).double()
    x, t = data()
    mask = torch.arange(5)[None] < torch.tensor([5, 3, 2])[:, None]
    t = torch.where(mask, t, torch.zeros_like(t))
    out = model(x, t, mask)
    out.pow(2).sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_ctrnn_one_euler_step_matches_hand_computation():
    torch.manual_seed(0)
    model = CTRNN(C, UNITS, num_unfolds=1, tau=0.7, return_sequences=True).double()
    cell = model.cell
    with torch.no_grad():  # non-trivial scale and bias
        cell.scale.uniform_(0.5, 1.5)
        cell.bias.uniform_(-0.5, 0.5)
    x, t = data(length=2)
    with torch.no_grad():
        seq = model(x, t)
        h = torch.zeros(3, UNITS, dtype=torch.float64)
        for i in range(2):
            pre = x[:, i] @ cell.kernel + h @ cell.recurrent_kernel + cell.bias
            h = h + t[:, i:i + 1] * (cell.scale * torch.tanh(pre) - h * 0.7)
            torch.testing.assert_close(seq[:, i], h, rtol=1e-12, atol=1e-12)


def test_ctrnn_rk4_agrees_with_many_euler_steps_for_small_dt():
    torch.manual_seed(0)
    rk4 = CTRNN(C, UNITS, method="rk4", num_unfolds=2, return_sequences=True).double()
    fine = CTRNN(C, UNITS, method="euler", num_unfolds=2000, return_sequences=True).double()
    coarse = CTRNN(C, UNITS, method="euler", num_unfolds=1, return_sequences=True).double()
    heun = CTRNN(C, UNITS, method="heun", num_unfolds=20, return_sequences=True).double()
    for other in (fine, coarse, heun):
        other.load_state_dict(rk4.state_dict())
    x, t = data(length=4)
    t = t * 0.1
    with torch.no_grad():
        a, b, c, d = rk4(x, t), fine(x, t), coarse(x, t), heun(x, t)
    assert (a - b).abs().max() < 2e-5
    assert (a - d).abs().max() < 2e-5
    assert (a - c).abs().max() > 10 * (a - b).abs().max()  # the comparison can tell solvers apart


def _gru_ode_rhs(model: GRUODE, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(1 - z) * (g - h) written out from the module's weights."""
    def dense(layer, v):
        return v @ layer.weight.T + layer.bias
    r = torch.sigmoid(dense(model.reset_gate, torch.cat([x, h], -1)))
    z = torch.sigmoid(dense(model.update_gate, torch.cat([x, h], -1)))
    g = torch.tanh(dense(model.candidate, torch.cat([x, r * h], -1)))
    return (1 - z) * (g - h)


def test_gru_ode_update_zero_and_doubled_elapsed_time():
    torch.manual_seed(0)
    model = GRUODE(C, UNITS, num_unfolds=1).double()
    assert torch.all(model.reset_gate.bias == 1) and torch.all(model.update_gate.bias == 0)
    x, _ = data()
    x_t, h = x[:, 0], torch.randn(3, UNITS, dtype=torch.float64)
    dt = torch.tensor([[0.3], [0.7], [1.5]], dtype=torch.float64)
    with torch.no_grad():
        same, _ = model.step(x_t, h, torch.zeros_like(dt))
        one, _ = model.step(x_t, h, dt)
        two, _ = model.step(x_t, h, 2 * dt)
        hand = h + dt * _gru_ode_rhs(model, x_t, h)
    torch.testing.assert_close(same, h, rtol=0, atol=0)
    torch.testing.assert_close(one, hand, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(one, two)


def test_ode_lstm_update_zero_and_doubled_elapsed_time():
    torch.manual_seed(0)
    model = ODELSTM(C, UNITS).double()
    x, _ = data()
    x_t = x[:, 0]
    c, h = torch.randn(3, UNITS, dtype=torch.float64), torch.randn(3, UNITS, dtype=torch.float64)
    dt = torch.tensor([[0.3], [0.7], [1.5]], dtype=torch.float64)
    with torch.no_grad():
        out0, (c0, h0) = model.step(x_t, (c, h), torch.zeros_like(dt))
        out1, (c1, h1) = model.step(x_t, (c, h), dt)
        out2, (c2, h2) = model.step(x_t, (c, h), 2 * dt)
        # LSTM part by hand: forget gate bias +3, recurrent input = previous ODE state
        i, ig, fg, og = (x_t @ model.input_kernel + h @ model.recurrent_kernel + model.bias).chunk(4, -1)
        c_hand = c * torch.sigmoid(fg + 3.0) + torch.tanh(i) * torch.sigmoid(ig)
        u = torch.tanh(c_hand) * torch.sigmoid(og)
        # CT-RNN part by hand: 4 Euler steps from h driven by u
        cell, h_hand = model.ctrnn, h
        for _ in range(4):
            pre = u @ cell.kernel + h_hand @ cell.recurrent_kernel + cell.bias
            h_hand = h_hand + dt / 4 * (cell.scale * torch.tanh(pre) - h_hand)
    torch.testing.assert_close(h0, h, rtol=0, atol=0)
    torch.testing.assert_close(out0, h, rtol=0, atol=0)
    for new_c in (c0, c1, c2):
        torch.testing.assert_close(new_c, c_hand, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, h_hand, rtol=1e-12, atol=1e-12)
    assert torch.equal(out1, h1) and not torch.allclose(h1, h2)


@pytest.mark.parametrize("cls", [GRUODE, ODELSTM, CTRNN])
def test_zero_elapsed_time_in_sequence_keeps_ode_output(cls):
    """GRU-ODE, CT-RNN: state unchanged; ODE-LSTM: the ODE state (its output) unchanged."""
    torch.manual_seed(0)
    model = cls(C, UNITS, return_sequences=True).double()
    x, t = data()
    t[:, 3] = 0.0
    with torch.no_grad():
        seq = model(x, t)
    torch.testing.assert_close(seq[:, 3], seq[:, 2], rtol=0, atol=0)
    assert not torch.allclose(seq[:, 4], seq[:, 3])
