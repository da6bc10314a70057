"""Recurrent baselines (ODE-RNN, RNN/LSTM/GRU, Phased LSTM) against independent computations.

The generic contract checks (batch vs one at a time, padding, uses_time, gradients, seeding) are in
tests/test_models_contract.py; these check each model's own math.
"""

import pytest
import torch
from torch import nn

from baselines.ode_rnn import ODERNN, evolve_rescaled
from baselines.phased_lstm import PhasedLSTM, inverse_softplus, time_gate
from baselines.rnn import GRU, LSTM, RNN
from tests.test_models_contract import build

C, H = 4, 5


def data(b=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, C, generator=g, dtype=torch.float64)
    t = torch.rand(b, length, generator=g, dtype=torch.float64) * 2 + 0.05
    return x, t


# ---------------------------------------------------------------- ODE-RNN


def linear_dynamics(a: torch.Tensor) -> nn.Linear:
    f = nn.Linear(a.shape[0], a.shape[0], bias=False).double()
    with torch.no_grad():
        f.weight.copy_(a)
    return f


@pytest.mark.parametrize("method, kwargs", [("rk4", {"step_size": 0.01}), ("dopri5", {"rtol": 1e-10, "atol": 1e-12})])
def test_ode_part_equals_matrix_exponential_per_sample(method, kwargs):
    """With f(h) = A h the evolved state is expm(A dt_b) h_b, each sample over its own dt."""
    torch.manual_seed(0)
    model = ODERNN(C, units=H, method=method, **kwargs).double()
    a = torch.randn(H, H, dtype=torch.float64) * 0.6
    model.ode_func = linear_dynamics(a)
    h = torch.randn(4, H, dtype=torch.float64)
    dt = torch.tensor([[0.3], [1.7], [2.5], [0.05]], dtype=torch.float64)
    got = model.evolve(h, dt)
    want = torch.stack([torch.linalg.matrix_exp(a * dt[i, 0]) @ h[i] for i in range(4)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_zero_elapsed_time_leaves_state_unchanged_before_gru():
    torch.manual_seed(0)
    model = ODERNN(C, units=H).double()
    with torch.no_grad():
        for p in model.ode_func.parameters():
            p.normal_()  # make f(h) clearly non-zero
        h = torch.randn(2, H, dtype=torch.float64)
        dt = torch.tensor([[0.0], [0.7]], dtype=torch.float64)
        evolved = model.evolve(h, dt)
        assert torch.equal(evolved[0], h[0]) and not torch.allclose(evolved[1], h[1])
        x = torch.randn(2, C, dtype=torch.float64)
        out, _ = model.step(x, h, dt)
        torch.testing.assert_close(out[0], model.gru(x[:1], h[:1])[0], rtol=1e-12, atol=1e-14)


def test_ode_rnn_batch_with_own_times_equals_samples_alone():
    torch.manual_seed(0)
    model = ODERNN(C, units=H, return_sequences=True).double()
    x, t = data()
    with torch.no_grad():
        batch = model(x, t)
        alone = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])
        torch.testing.assert_close(batch, alone, rtol=1e-10, atol=1e-12)
        # the helper alone: rescaled integration of a batch equals per-sample integration
        h = torch.randn(3, H, dtype=torch.float64)
        dt = t[:, :1]
        one_call = evolve_rescaled(model.ode_func, h, dt, "rk4", {"step_size": 0.25})
        per_sample = torch.cat(
            [evolve_rescaled(model.ode_func, h[i : i + 1], dt[i : i + 1], "rk4", {"step_size": 0.25}) for i in range(3)]
        )
        torch.testing.assert_close(one_call, per_sample, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- RNN, LSTM, GRU

TORCH_MODULES = {RNN: nn.RNN, LSTM: nn.LSTM, GRU: nn.GRU}


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU], ids=lambda c: c.__name__)
def test_time_as_input_equals_torch_module_on_concatenated_input(cls):
    torch.manual_seed(0)
    model = cls(C, units=H, num_layers=2, return_sequences=True).double().eval()
    last = cls(C, units=H, num_layers=2).double().eval()
    last.load_state_dict(model.state_dict())
    ref = TORCH_MODULES[cls](C + 1, H, num_layers=2, batch_first=True).double()
    ref.load_state_dict(model.rnn.state_dict())
    x, t = data()
    lengths = [6, 2, 4]
    mask = torch.arange(6)[None] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        want, _ = ref(torch.cat([x, t[..., None]], dim=-1))
        torch.testing.assert_close(model(x, t, mask), want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(last(x, t, mask), torch.stack([want[i, n - 1] for i, n in enumerate(lengths)]))
        ones, _ = ref(torch.cat([x, torch.ones_like(t)[..., None]], dim=-1))
        torch.testing.assert_close(model(x), ones, rtol=1e-12, atol=1e-12)  # no times: dt = 1
    assert model.uses_time


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_without_time_as_input_time_does_not_matter(name):
    model = build(name, time_as_input=False).eval()
    assert not model.uses_time and model.rnn.input_size == model.input_dim
    x = torch.randn(2, 5, model.input_dim, dtype=torch.float64)
    t = torch.rand(2, 5, dtype=torch.float64)
    with torch.no_grad():
        a, b, c = model(x, t), model(x, 3 * t + 1), model(x)
        want, _ = model.rnn(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(a, want[:, -1], rtol=0, atol=0)


def test_keras_init_lstm_forget_bias():
    model = LSTM(C, units=H)
    bias = model.rnn.bias_ih_l0.detach()
    assert torch.equal(bias[H : 2 * H], torch.ones(H)) and torch.equal(bias[:H], torch.zeros(H))
    assert torch.equal(model.rnn.bias_hh_l0.detach(), torch.zeros(4 * H))
    w = model.rnn.weight_hh_l0.detach()  # (4H, H), orthonormal columns
    torch.testing.assert_close(w.T @ w, torch.eye(H), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- Phased LSTM


def test_time_gate_by_hand():
    """tau = 2, s = 0.5, r_on = 0.1, alpha = 1e-3 at chosen phases."""
    tau = torch.full((1,), 2.0, dtype=torch.float64)
    s = torch.full((1,), 0.5, dtype=torch.float64)
    r_on = torch.full((1,), 0.1, dtype=torch.float64)
    cases = [  # (timestamp, phase, k by hand)
        (0.54, 0.02, 2 * 0.02 / 0.1),  # opening: 0.4
        (4.54, 0.02, 0.4),  # same phase two periods later
        (0.60, 0.05, 1.0),  # peak
        (0.62, 0.06, 2 - 2 * 0.06 / 0.1),  # closing: 0.8
        (0.66, 0.08, 2 - 2 * 0.08 / 0.1),  # closing: 0.4
        (1.50, 0.50, 1e-3 * 0.5),  # closed: leak
        (0.00, 0.75, 1e-3 * 0.75),  # before s: phase wraps to (0 - 0.5) mod 2 = 1.5
    ]
    time = torch.tensor([[c[0]] for c in cases], dtype=torch.float64)
    got = time_gate(time, tau, s, r_on, leak=1e-3)[:, 0]
    torch.testing.assert_close(got, torch.tensor([c[2] for c in cases], dtype=torch.float64), rtol=1e-9, atol=1e-12)

    # the model's own parametrisation gives the same gate (per unit)
    model = PhasedLSTM(C, units=2).double()
    with torch.no_grad():
        model.tau_raw.copy_(inverse_softplus(torch.tensor([2.0, 2.0], dtype=torch.float64)))
        model.shift.copy_(torch.tensor([0.5, 0.5]))
        model.r_on_raw.copy_(inverse_softplus(torch.tensor([0.1, 0.1], dtype=torch.float64)))
    torch.testing.assert_close(model.gate(time)[:, 0], got, rtol=1e-9, atol=1e-12)


def lstm_step_by_hand(cell: nn.LSTMCell, x, h, c):
    z = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = z.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_phased_lstm_with_open_gate_is_an_lstm():
    torch.manual_seed(0)
    model = PhasedLSTM(C, units=H, return_sequences=True).double()
    model.gate = lambda time: torch.ones(time.shape[0], H, dtype=time.dtype)
    x, t = data()
    with torch.no_grad():
        got = model(x, t)
        h = c = torch.zeros(3, H, dtype=torch.float64)
        want = []
        for i in range(x.shape[1]):
            h, c = lstm_step_by_hand(model.cell, x[:, i], h, c)
            want.append(h)
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=1e-12, atol=1e-12)


def test_phased_lstm_closed_gate_leaks():
    """k = alpha phi in the closed phase: the state moves by only that fraction of the LSTM update."""
    torch.manual_seed(0)
    model = PhasedLSTM(C, units=H).double()
    k = torch.full((1, H), 5e-4, dtype=torch.float64)
    model.gate = lambda time: k
    x = torch.randn(1, C, dtype=torch.float64)
    h, c = torch.randn(1, H, dtype=torch.float64), torch.randn(1, H, dtype=torch.float64)
    with torch.no_grad():
        clock, dt = torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
        out, (h1, c1, _) = model.step(x, (h, c, clock), dt)
        assert torch.equal(out, h1)
        h_t, c_t = lstm_step_by_hand(model.cell, x, h, c)
    torch.testing.assert_close(h1, k * h_t + (1 - k) * h)
    torch.testing.assert_close(c1, k * c_t + (1 - k) * c)


@pytest.mark.parametrize("reference", ["timestamp", "elapsed"])
def test_phased_lstm_time_reference(reference):
    model = PhasedLSTM(C, units=H, time_reference=reference).double()
    seen = []
    gate = model.gate
    model.gate = lambda time: (seen.append(time), gate(time))[1]
    x, t = data()
    model(x, t)
    want = t.cumsum(1) if reference == "timestamp" else t
    torch.testing.assert_close(torch.cat(seen, dim=1), want)


def test_phased_lstm_gradient_reaches_every_unit_of_tau_shift_r_on():
    torch.manual_seed(0)
    model = PhasedLSTM(C, units=3).double()
    with torch.no_grad():  # unit steps, tau = 1: every unit sits at a fixed phase of its open period
        model.tau_raw.fill_(float(inverse_softplus(torch.tensor(1.0))))
        model.r_on_raw.fill_(float(inverse_softplus(torch.tensor(0.4))))
        model.shift.copy_(torch.tensor([0.9, 0.75, 0.68]))  # phases 0.1 (opening), 0.25, 0.32 (closing)
    x, _ = data()
    model(x, torch.ones(3, 6, dtype=torch.float64)).pow(2).sum().backward()
    for p in (model.tau_raw, model.shift, model.r_on_raw):
        assert (p.grad.abs() > 0).all(), p.grad
