"""Continuous-time recurrent baselines: LTC, CfC (ncps), CT-RNN, ODE-LSTM, GRU-ODE.

The ncps wrappers are checked against ncps' own ``forward`` (uniform times, same weights) and against
samples run one at a time (per-sample times, where ncps 1.0.1's forward is wrong); the others against
hand computations of their update from the module's parameters.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
import torch
from ncps.torch import LTC as NcpsLTC
from ncps.torch import CfC as NcpsCfC
from ncps.wirings import AutoNCP, FullyConnected

from baselines._recurrent import scan
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
    "cfc_no_gate_proj": (
        CfC,
        NcpsCfC,
        {"mode": "no_gate", "proj_size": 5, "backbone_units": 16},
        {"mode": "no_gate", "proj_size": 5, "backbone_units": 16},
    ),
    "cfc_pure_mixed": (
        CfC,
        NcpsCfC,
        {"mode": "pure", "mixed_memory": True, "backbone_units": 16},
        {"mode": "pure", "mixed_memory": True, "backbone_units": 16},
    ),
    "cfc_autoncp_no_gate": (CfC, NcpsCfC, {"wiring": "autoncp", "mode": "no_gate"}, {"mode": "no_gate"}),
    "ltc_linear_maps": (
        LTC,
        NcpsLTC,
        *[{"input_mapping": "linear", "output_mapping": "linear", "epsilon": 1e-3, "implicit_param_constraints": False}]
        * 2,
    ),
    "cfc_two_layers_silu": (CfC, NcpsCfC, *[{"backbone_units": 16, "backbone_layers": 2, "activation": "silu"}] * 2),
}


def ncps_pair(case: str, seed: int = 0, units: int = UNITS):
    """The wrapper and an independently built ncps module holding the same weights (float64)."""
    cls, ncps_cls, kwargs, ncps_kwargs = NCPS_CASES[case]
    torch.manual_seed(seed)
    model = cls(C, units, wiring_seed=seed + 5, return_sequences=True, **kwargs).double()
    spec = AutoNCP(units, round(0.3 * units), sparsity_level=0.5, seed=seed + 5) if "wiring" in kwargs else units
    twin = ncps_cls(C, spec, return_sequences=True, batch_first=True, **ncps_kwargs).double()
    twin.load_state_dict(model.rnn.state_dict())
    return model.eval(), twin.eval()


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
        alone = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])
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
            h = h + t[:, i : i + 1] * (cell.scale * torch.tanh(pre) - h * 0.7)
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


# ---------------------------------------------------------------- ncps wrappers: construction
def _masks(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    return {n: v.detach() for n, v in tensors.items() if n.endswith("sparsity_mask")}


@pytest.mark.parametrize("cls,ncps_cls", [(LTC, NcpsLTC), (CfC, NcpsCfC)])
def test_autoncp_wiring_follows_units_motor_neurons_sparsity_and_seed(cls, ncps_cls):
    model = cls(C, 20, wiring="autoncp", motor_neurons=4, sparsity=0.2, wiring_seed=9)  # default motor: 6
    assert model.output_dim == 4
    got = _masks(model.rnn)
    want = _masks(ncps_cls(C, AutoNCP(20, 4, sparsity_level=0.2, seed=9)))
    assert got.keys() == want.keys() and got
    assert all(torch.equal(got[n], want[n]) for n in got)
    for other in (AutoNCP(20, 4, sparsity_level=0.2, seed=10), AutoNCP(20, 4, sparsity_level=0.5, seed=9)):
        other = _masks(ncps_cls(C, other))
        assert not all(torch.equal(got[n], other[n]) for n in got)  # the seed and the sparsity matter


def test_autoncp_default_motor_neurons_is_three_tenths_of_units_at_least_one():
    assert LTC(C, 4, wiring="autoncp").output_dim == 1  # round(1.2) = 1
    assert LTC(C, 10, wiring="autoncp").output_dim == 3
    assert CfC(C, 17, wiring="autoncp").output_dim == 5


def test_unknown_wiring_raises_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown wiring 'ncp'; expected one of \(None, 'autoncp'\)"):
        LTC(C, 8, wiring="ncp")


def test_fully_connected_ltc_synapse_polarities_follow_wiring_seed():
    for seed in (3, 4):
        wiring = FullyConnected(6, erev_init_seed=seed)
        wiring.build(C)
        erev = LTC(C, 6, wiring_seed=seed).rnn.rnn_cell.erev.detach()
        assert torch.equal(erev, torch.as_tensor(wiring.erev_initializer(), dtype=erev.dtype))
    assert not torch.equal(LTC(C, 6, wiring_seed=3).rnn.rnn_cell.erev, LTC(C, 6, wiring_seed=4).rnn.rnn_cell.erev)


@pytest.mark.parametrize("cls", [LTC, CfC])
def test_default_output_is_the_last_step_in_the_models_dtype(cls):
    torch.manual_seed(0)
    model = cls(C, 8)
    x, t = data()
    out = model(x.float(), t)  # float64 times into a float32 model
    assert out.shape == (3, 8) and out.dtype == torch.float32


def test_cfc_backbone_dropout_reaches_the_cell():
    torch.manual_seed(0)
    model = CfC(C, 8, backbone_units=16, backbone_layers=2, backbone_dropout=0.5).double()
    x, t = data()
    with torch.no_grad():
        assert not torch.equal(model.train()(x, t), model(x, t))  # dropout draws differ in training
        assert torch.equal(model.eval()(x, t), model(x, t))


# ---------------------------------------------------------------- the shared driver (baselines/_recurrent.py)
def _toy_step(x_t, state, dt):
    """Output 10 * new h; the state is a tuple (h, count) to exercise tuple holding."""
    h, count = state
    h = h + dt * x_t.sum(-1, keepdim=True)
    return 10.0 * h, (h, count + 1)


def _state_step(x_t, h, dt):
    """Output = the new state (as CT-RNN and GRU-ODE), a plain tensor."""
    h = h + dt * x_t.sum(-1, keepdim=True)
    return h, h


@pytest.mark.parametrize("hold_outputs", [False, True])
def test_scan_holds_state_and_optionally_outputs_at_masked_steps(hold_outputs):
    x, t = data(b=2, length=5, seed=9)
    mask = torch.tensor([[True, False, True, False, True], [True, True, True, True, False]])
    h0 = torch.zeros(2, 1, dtype=x.dtype)
    step, state = (_state_step, h0) if hold_outputs else (_toy_step, (h0, h0.clone()))
    got = scan(step, state, x, t, mask, hold_outputs=hold_outputs)
    for b in range(2):
        h = 0.0
        for s in range(5):
            new_h = h + float(t[b, s]) * float(x[b, s].sum())
            if mask[b, s]:
                h = new_h
                want = h if hold_outputs else 10.0 * h
            else:  # state held; the output too only with hold_outputs
                want = h if hold_outputs else 10.0 * new_h
            assert float(got[b, s, 0]) == pytest.approx(want, rel=1e-12), (b, s)
    if not hold_outputs:  # a tuple state is held element-wise: the step count grows at valid steps only
        seen = []

        def counting(x_t, st, dt):
            seen.append(st[1][:, 0].tolist())
            return st[1], (st[0], st[1] + 1)

        scan(counting, (h0, h0.clone()), x, t, mask)
        assert seen == [[0, 0], [1, 1], [1, 2], [2, 3], [2, 4]]
    ones = scan(step, state, x, None, None)
    torch.testing.assert_close(ones, scan(step, state, x, torch.ones(2, 5, dtype=x.dtype), None))
