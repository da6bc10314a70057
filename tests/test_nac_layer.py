"""Tests of the NAC layer against independent computations (docs/NAC.md, section 4).

Every check compares the layer with something computed here by hand (a Python Euler loop, a dense
torch.topk, an explicit rebuild of the official forward pass, a closed-form softmax, ...), never the
layer with itself. Sizes are tiny; float64 is used wherever a tolerance matters.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from nac.layers import NeuronalAttentionCircuit, ode_logits
from nac.layers.nac import AffineProjection
from nac.layers.topk import all_pairs, chunked_topk
from nac.layers.wiring import MaskedLinear, NCPBackbone

F64 = torch.float64
EPS = 1e-6  # the layer's default tau_epsilon


# ----------------------------------------------------------------------------- helpers
def make(input_dim=3, d_model=4, num_heads=2, seed=0, randomize=True, **kw):
    """A small float64 layer; ``randomize`` perturbs every parameter so that no default
    (ones, zeros) hides a mistake."""
    torch.manual_seed(seed)
    layer = NeuronalAttentionCircuit(input_dim, d_model, num_heads, **kw).double()
    if randomize:
        gen = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


def clone_with(layer, **kw):
    """A new layer with the same constructor settings as ``make`` used plus ``kw``, carrying
    ``layer``'s weights (load_state_dict)."""
    other = NeuronalAttentionCircuit(layer.input_dim, layer.d_model, layer.num_heads, **kw).double()
    other.load_state_dict(layer.state_dict())
    return other


def split_heads(y, num_heads):
    b, t, d = y.shape
    return y.view(b, t, num_heads, d // num_heads).transpose(1, 2)


def select(x, idx):
    """x (B, H, T, D) at key positions idx (B|1, H|1, T, K) -> (B, H, T, K, D), by plain indexing."""
    b, h = x.shape[:2]
    idx = idx.expand(b, h, *idx.shape[2:])
    bi = torch.arange(b)[:, None, None, None]
    hi = torch.arange(h)[None, :, None, None]
    return x[bi, hi, idx]


def hand_pairs(layer, x, idx):
    """Pairs u = [q_i; k_j] for the selected keys, built from the layer's q/k projections."""
    q = split_heads(layer.q_proj(x), layer.num_heads)
    k = split_heads(layer.k_proj(x), layer.num_heads)
    k_sel = select(k, idx)
    q_rep = q[:, :, :, None, :].expand_as(k_sel)
    return torch.cat([q_rep, k_sel], dim=-1)


def sort_by_index(weights, idx):
    """Reorder the last axis by key index so that two selections can be compared."""
    idx = idx.expand_as(weights)
    sidx, order = idx.sort(dim=-1)
    return torch.gather(weights, -1, order), sidx


def rand_x(b, t, c, seed=0):
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ----------------------------------------------------------------------------- ODE modes
def test_ode_exact_large_t_equals_steady():
    gen = torch.Generator().manual_seed(1)
    phi = torch.rand(50, generator=gen, dtype=F64)
    w = 0.05 + 5 * torch.rand(50, generator=gen, dtype=F64)
    hand_steady = phi / w
    torch.testing.assert_close(ode_logits(phi, w, 1e4, "steady"), hand_steady, rtol=0, atol=1e-15)
    torch.testing.assert_close(ode_logits(phi, w, 1e4, "exact"), hand_steady, rtol=1e-13, atol=1e-15)
    # and at moderate t it is really different (the test is not vacuous)
    assert (ode_logits(phi, w, 1.0, "exact") - hand_steady).abs().max() > 1e-2


@pytest.mark.parametrize(
    "variant,kw",
    [("paper", {}), ("paper", {"dense": True}), ("official", {"time_interpolation": False, "dense": True})],
)
def test_layer_exact_large_t_equals_steady(variant, kw):
    big = 1e6  # exactly representable in float32 too
    layer = make(
        variant=variant,
        topk=3,
        mode="exact",
        time_input="constant",
        t_const=big,
        return_sequences=True,
        return_attention=True,
        **kw,
    )
    x = rand_x(2, 6, 3)
    out_exact, att = layer(x)
    with torch.no_grad():
        _, w_tau = layer.gates(hand_pairs(layer, x, att.indices))
    assert w_tau.min() * big > 50  # exp(-w t) is negligible for every pair used
    steady = clone_with(
        layer, variant=variant, topk=3, mode="steady", return_sequences=True, return_attention=True, **kw
    )
    out_steady, att_s = steady(x)
    torch.testing.assert_close(out_exact, out_steady, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(att.weights, att_s.weights, rtol=1e-12, atol=1e-12)
    # at t = 1 the two modes differ
    small = clone_with(
        layer, variant=variant, topk=3, mode="exact", time_input="constant", t_const=1.0, return_sequences=True, **kw
    )
    assert (small(x) - out_steady).abs().max() > 1e-6


def euler_loop(phi, w, dt, n):
    a = torch.zeros_like(phi)
    for _ in range(n):
        a = a + dt * (-w * a + phi)
    return a


@pytest.mark.parametrize("n", [1, 2, 5, 6, 11])
@pytest.mark.parametrize("dt", [0.5, 0.13])
def test_euler_closed_form_equals_loop_with_gradients(n, dt):
    gen = torch.Generator().manual_seed(n)
    dtw = torch.linspace(0.03, 1.97, 40, dtype=F64)  # dt * w_tau across the whole stable range
    assert (dtw > 1).sum() > 10  # negative base 1 - dt*w included
    w = (dtw / dt).requires_grad_()
    phi = torch.rand(40, generator=gen, dtype=F64).requires_grad_()
    g = torch.randn(40, generator=gen, dtype=F64)

    closed = ode_logits(phi, w, 1.0, "euler", euler_steps=n, delta_t=dt)
    loop = euler_loop(phi, w, dt, n)
    torch.testing.assert_close(closed, loop, rtol=1e-12, atol=1e-13)

    gc = torch.autograd.grad((closed * g).sum(), (phi, w))
    gl = torch.autograd.grad((loop * g).sum(), (phi, w))
    torch.testing.assert_close(gc[0], gl[0], rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(gc[1], gl[1], rtol=1e-11, atol=1e-12)


def test_euler_many_steps_equals_steady():
    gen = torch.Generator().manual_seed(3)
    dt = 0.5
    dtw = 0.05 + 1.9 * torch.rand(60, generator=gen, dtype=F64)  # in (0.05, 1.95)
    w = dtw / dt
    phi = torch.rand(60, generator=gen, dtype=F64)
    n = 2000  # |1 - dt w| <= 0.95, 0.95 ** 2000 ~ 1e-45
    torch.testing.assert_close(ode_logits(phi, w, 1.0, "euler", n, dt), phi / w, rtol=1e-13, atol=1e-15)
    # the explicit loop agrees too (it is the definition)
    torch.testing.assert_close(euler_loop(phi, w, dt, n), phi / w, rtol=1e-12, atol=1e-14)


def test_layer_euler_many_steps_equals_steady():
    layer = make(topk=3, mode="steady", time_input="constant", return_sequences=True, return_attention=True)
    x = rand_x(2, 6, 3, seed=4)
    out_steady, att = layer(x)
    with torch.no_grad():
        _, w_tau = layer.gates(hand_pairs(layer, x, att.indices))
    delta_t = 1.0 / float(w_tau.max())  # dt_e * w_tau in (0, 1] for every pair used
    n = math.ceil(80.0 / (delta_t * float(w_tau.min())))
    assert 0 < delta_t * w_tau.min() and delta_t * w_tau.max() < 2
    euler = clone_with(
        layer, topk=3, mode="euler", euler_steps=n, delta_t=delta_t, time_input="constant", return_sequences=True
    )
    torch.testing.assert_close(euler(x), out_steady, rtol=1e-11, atol=1e-12)
    few = clone_with(
        layer, topk=3, mode="euler", euler_steps=1, delta_t=delta_t, time_input="constant", return_sequences=True
    )
    assert (few(x) - out_steady).abs().max() > 1e-6


@pytest.mark.parametrize(
    "kw",
    [
        dict(variant="paper"),
        dict(variant="paper", dense=True),
        dict(variant="official"),
        dict(variant="official", dense=True),
    ],
)
def test_exact_logits_lie_between_zero_and_steady(kw):
    layer = make(**kw)
    gen = torch.Generator().manual_seed(5)
    pair = 2 * torch.randn(200, 2 * layer.depth, generator=gen, dtype=F64)
    phi, w_tau = layer.gates(pair)
    assert (w_tau > 0).all() and (phi > 0).all() and (phi < 1).all()
    phi, w_tau = phi.expand(200), w_tau.expand(200)
    t = torch.cat([torch.zeros(20, dtype=F64), 30 * torch.rand(180, generator=gen, dtype=F64)])
    a = ode_logits(phi, w_tau, t, "exact")
    upper = phi / w_tau
    assert (a >= 0).all()
    assert (a <= upper * (1 + 1e-12)).all()
    assert (a[:20] == 0).all()  # a(0) = 0


# ----------------------------------------------------------------------------- official variant
@pytest.mark.parametrize("mode", ["steady", "euler"])
@pytest.mark.parametrize("topk,t_len", [(3, 7), (9, 5)])
def test_official_steady_euler_weights_uniform(mode, topk, t_len):
    layer = make(variant="official", mode=mode, topk=topk, return_sequences=True, return_attention=True)
    x = rand_x(2, t_len, 3, seed=6)
    _, att = layer(x)
    k_eff = min(topk, t_len)
    assert att.weights.shape[-1] == k_eff
    torch.testing.assert_close(att.weights, torch.full_like(att.weights, 1.0 / k_eff), rtol=0, atol=1e-15)


def test_official_gates_do_not_depend_on_input():
    layer = make(variant="official")
    gen = torch.Generator().manual_seed(7)
    p1 = torch.randn(10, 2 * layer.depth, generator=gen, dtype=F64)
    p2 = 5 * torch.randn(10, 2 * layer.depth, generator=gen, dtype=F64) + 3
    phi1, w1 = layer.gates(p1)
    phi2, w2 = layer.gates(p2)
    # one scalar feeds both: raw = gate_bias * gate_out_w + gate_out_b (docs/NAC.md 2.1)
    raw = layer.gate_bias.item() * layer.gate_out_w.item() + layer.gate_out_b.item()
    exp_phi = 1 / (1 + math.exp(-raw))
    exp_w = math.log1p(math.exp(raw)) + EPS
    for phi, w in ((phi1, w1), (phi2, w2)):
        assert torch.allclose(phi, torch.tensor(exp_phi, dtype=F64), rtol=1e-14, atol=0)
        assert torch.allclose(w, torch.tensor(exp_w, dtype=F64), rtol=1e-14, atol=0)
    assert torch.equal(phi1.expand(10), phi2.expand(10)) and torch.equal(w1.expand(10), w2.expand(10))


@pytest.mark.parametrize("mode", ["steady", "euler"])
def test_official_steady_qk_get_zero_gradient(mode):
    layer = make(variant="official", mode=mode, topk=3, return_sequences=True)
    x = rand_x(2, 6, 3, seed=8)
    out = layer(x)
    (out * torch.randn_like(out)).sum().backward()
    for proj in (layer.q_proj, layer.k_proj):
        for name, p in proj.named_parameters():
            assert p.grad is None or (p.grad == 0).all(), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.v_proj.parameters())
    assert layer.out_proj.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- paper variant
@pytest.mark.parametrize("dense", [False, True])
def test_paper_gates_depend_on_input(dense):
    layer = make(variant="paper", dense=dense)
    gen = torch.Generator().manual_seed(9)
    pair = torch.randn(30, 2 * layer.depth, generator=gen, dtype=F64)
    phi, w = layer.gates(pair)
    assert phi.shape == (30,) and w.shape == (30,)
    assert phi.std() > 1e-3 and w.std() > 1e-3
    phi2, w2 = layer.gates(pair + 1.0)
    assert (phi - phi2).abs().min() > 0 and (w - w2).abs().min() > 0


@pytest.mark.parametrize("kw", [dict(), dict(dense=True), dict(pairwise=True)])
def test_paper_every_parameter_gets_gradient(kw):
    layer = make(variant="paper", topk=3, mode="exact", time_input="step", return_sequences=True, **kw)
    gen = torch.Generator().manual_seed(10)
    x = rand_x(2, 6, 3, seed=10)
    t = 0.2 + 2 * torch.rand(2, 6, generator=gen, dtype=F64)
    out = layer(x, t)
    (out * torch.randn(out.shape, generator=gen, dtype=F64)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    if not kw.get("dense"):  # the NCP mask really reaches the sensory projections
        for proj in (layer.q_proj, layer.k_proj, layer.v_proj):
            assert (proj.mask == 0).any()
            assert (proj.weight.grad[proj.mask == 0] == 0).all()


# ----------------------------------------------------------------------------- top-K
@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("extra", [0, 3])
def test_topk_at_least_t_uses_all_keys(variant, extra):
    t_len = 5
    layer = make(variant=variant, topk=t_len + extra, return_sequences=True, return_attention=True)
    _, att = layer(rand_x(2, t_len, 3, seed=11))
    idx = att.indices.expand(2, layer.num_heads, t_len, -1)
    assert idx.shape[-1] == t_len
    assert torch.equal(idx.sort(-1).values, torch.arange(t_len).expand_as(idx))
    assert att.valid.all()


@pytest.mark.parametrize(
    "kw",
    [
        dict(variant="paper"),
        dict(variant="paper", pairwise=True),
        dict(variant="paper", dense=True),
        dict(variant="official"),
    ],
)
def test_permutation_equivariance_in_keys(kw):
    t_len = 6
    layer = make(topk=t_len, time_input="constant", return_sequences=True, **kw)
    x = rand_x(2, t_len, 3, seed=12)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out = layer(x)
    out_perm = layer(x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-12, atol=1e-12)


def dense_reference_topk(q, k, topk, key_mask, causal):
    scores = q @ k.transpose(-1, -2)  # (B, H, T, T)
    t_q, t_k = scores.shape[-2:]
    allowed = torch.ones(q.shape[0], 1, t_q, t_k, dtype=torch.bool)
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(t_q, t_k, dtype=torch.bool).tril()
    scores = scores.masked_fill(~allowed, float("-inf"))
    _, idx = torch.topk(scores, min(topk, t_k), dim=-1)
    return idx, allowed.expand_as(scores)


@pytest.mark.parametrize("chunk", [1, 3, 4, 11, 64, None])
@pytest.mark.parametrize("use_mask,causal", [(False, False), (True, False), (False, True), (True, True)])
def test_chunked_topk_matches_dense_topk(chunk, use_mask, causal):
    gen = torch.Generator().manual_seed(13)
    b, h, t_len, d, topk = 2, 3, 11, 4, 4
    q = torch.randn(b, h, t_len, d, generator=gen, dtype=F64)
    k = torch.randn(b, h, t_len, d, generator=gen, dtype=F64)
    key_mask = None
    if use_mask:
        key_mask = torch.rand(b, t_len, generator=gen) < 0.6
        key_mask[1] = False
        key_mask[1, [2, 7]] = True  # sample 1 has fewer valid keys than topk
        key_mask[0, 0] = True
    idx, valid = chunked_topk(q, k, topk, key_mask, causal, chunk)
    assert idx.shape == (b, h, t_len, topk) and valid.shape == idx.shape
    ref_idx, allowed = dense_reference_topk(q, k, topk, key_mask, causal)
    for bi in range(b):
        for hi in range(h):
            for i in range(t_len):
                n_allowed = int(allowed[bi, hi, i].sum())
                n_valid = min(topk, n_allowed)
                got = sorted(idx[bi, hi, i][valid[bi, hi, i]].tolist())
                assert len(got) == n_valid
                want = sorted(ref_idx[bi, hi, i, :n_valid].tolist())
                assert got == want, (bi, hi, i)
                assert all(allowed[bi, hi, i, j] for j in got)


def test_chunked_topk_without_mask_equals_dense_topk_exactly():
    gen = torch.Generator().manual_seed(14)
    q = torch.randn(1, 2, 9, 3, generator=gen)
    k = torch.randn(1, 2, 9, 3, generator=gen)
    ref = torch.topk(q @ k.transpose(-1, -2), 4, dim=-1).indices.sort(-1).values
    for chunk in (1, 2, 5, 9):
        idx, valid = chunked_topk(q, k, 4, chunk_size=chunk)
        assert valid.all()
        assert torch.equal(idx.sort(-1).values, ref)
    idx, _ = chunked_topk(q, k, 20)  # K_eff = min(K, T)
    assert idx.shape[-1] == 9


# ----------------------------------------------------------------------------- masks and padding
@pytest.mark.parametrize("kw", [dict(), dict(pairwise=True), dict(causal=True)])
def test_paper_masked_key_gets_no_weight(kw):
    layer = make(variant="paper", topk=3, return_sequences=True, return_attention=True, **kw)
    x = rand_x(2, 6, 3, seed=15)
    mask = torch.tensor([[True, False, True, True, False, True], [True, True, True, False, False, False]])
    gen = torch.Generator().manual_seed(15)
    t = 0.1 + torch.rand(2, 6, generator=gen, dtype=F64)
    _, att = layer(x, t, mask)
    b, h, t_len, k_eff = att.weights.shape
    idx = att.indices.expand(b, h, t_len, k_eff)
    key_ok = mask[torch.arange(b)[:, None, None, None], idx]
    assert (att.weights[~key_ok] == 0).all()
    assert (att.weights[key_ok & ~att.valid.expand_as(key_ok)] == 0).all()
    # each query's weights still sum to one over the valid keys it selected
    torch.testing.assert_close(att.weights.sum(-1), torch.ones(b, h, t_len, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_does_not_change_valid_outputs(causal):
    lengths = [6, 4, 1]
    b, t_len = len(lengths), max(lengths)
    kw = dict(variant="paper", topk=3, mode="exact", time_input="pair", causal=causal)
    layer = make(**kw)
    seq_layer = clone_with(layer, return_sequences=True, **kw)
    gen = torch.Generator().manual_seed(16)
    x = rand_x(b, t_len, 3, seed=16)
    t = 0.1 + 2 * torch.rand(b, t_len, generator=gen, dtype=F64)
    mask = torch.arange(t_len)[None, :] < torch.tensor(lengths)[:, None]
    x = torch.where(mask[..., None], x, 10 * torch.randn(b, t_len, 3, generator=gen, dtype=F64) + 5)
    t = torch.where(mask, t, 7 + torch.rand(b, t_len, generator=gen, dtype=F64))

    out = layer(x, t, mask)
    seq = seq_layer(x, t, mask)
    for i, n in enumerate(lengths):
        xi, ti = x[i : i + 1, :n], t[i : i + 1, :n]
        torch.testing.assert_close(out[i], layer(xi, ti)[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(seq[i, :n], seq_layer(xi, ti)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "variant,pairwise", [("paper", False), ("paper", True), ("official", False), ("official", True)]
)
def test_causal_output_does_not_see_future(variant, pairwise):
    """Regression (an earlier official branch ignored ``valid`` under causal=True, so early queries,
    with fewer than K past keys, attended to future keys): no output depends on a future step."""
    layer = make(variant=variant, topk=4, causal=True, pairwise=pairwise, time_input="constant", return_sequences=True)
    x = rand_x(1, 7, 3, seed=17)
    y = x.clone()
    y[:, 4:] += 3.0 * torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(17), dtype=F64)
    torch.testing.assert_close(layer(x)[:, :4], layer(y)[:, :4], rtol=1e-12, atol=1e-12)


def test_official_mask_multiplies_logits_steady():
    t_len = 5
    layer = make(variant="official", mode="steady", topk=t_len, return_sequences=True, return_attention=True)
    x = rand_x(2, t_len, 3, seed=18)
    mask = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    _, att = layer(x, mask=mask)
    raw = layer.gate_bias.item() * layer.gate_out_w.item() + layer.gate_out_b.item()
    c = (1 / (1 + math.exp(-raw))) / (math.log1p(math.exp(raw)) + EPS)  # the constant logit
    assert c > 0.05
    idx = att.indices.expand_as(att.weights)
    key_ok = mask[torch.arange(2)[:, None, None, None], idx]
    n_valid = mask.sum(1).double()[:, None, None, None]
    denom = n_valid * math.exp(c) + (t_len - n_valid)
    expected = torch.where(key_ok, math.exp(c) / denom, 1.0 / denom)
    torch.testing.assert_close(att.weights, expected, rtol=1e-13, atol=1e-15)
    assert (att.weights[~key_ok] > 0).all()  # masked keys keep logit 0 and still get weight


# ----------------------------------------------------------------------------- time input
def test_pair_time_uses_elapsed_time_between_observations():
    layer = make(variant="paper", topk=3, mode="exact", time_input="pair", return_sequences=True, return_attention=True)
    x = rand_x(1, 3, 3, seed=19)
    t = torch.tensor([[0.5, 1.25, 2.0]], dtype=F64)  # exact in float32 as well
    out, att = layer(x, t)
    # timestamps s = cumsum(t) = [0.5, 1.75, 3.75]; |s_i - s_j| written out by hand
    elapsed = torch.tensor([[0.0, 1.25, 3.25], [1.25, 0.0, 2.0], [3.25, 2.0, 0.0]], dtype=F64)
    idx = att.indices.expand(1, layer.num_heads, 3, 3)
    assert torch.equal(idx.sort(-1).values, torch.arange(3).expand_as(idx))
    t_pair = elapsed[torch.arange(3)[:, None], idx]  # (1, H, 3, 3)
    phi, w = layer.gates(hand_pairs(layer, x, idx))
    logits = phi / w * (1 - torch.exp(-w * t_pair))
    weights = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(att.weights, weights, rtol=1e-12, atol=1e-14)

    v = select(split_heads(layer.v_proj(x), layer.num_heads), idx)
    heads = 1.0 * (weights[..., None] * v).sum(-2)  # (1, H, 3, D); dt = 1 by default
    expected = layer.out_proj(heads.transpose(1, 2).reshape(1, 3, layer.d_model))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)

    # discriminative: the per-query ("step") reading of t gives other weights
    logits_step = phi / w * (1 - torch.exp(-w * t[0][None, None, :, None]))
    assert (torch.softmax(logits_step, -1) - att.weights).abs().max() > 1e-3


@pytest.mark.parametrize("time_input,changes", [("pair", True), ("step", True), ("constant", False)])
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_changing_t_changes_output_only_for_time_inputs(time_input, changes, variant):
    layer = make(variant=variant, topk=3, mode="exact", time_input=time_input, return_sequences=True)
    x = rand_x(2, 5, 3, seed=20)
    gen = torch.Generator().manual_seed(20)
    t1 = 0.2 + torch.rand(2, 5, generator=gen, dtype=F64)
    t2 = 0.2 + 3 * torch.rand(2, 5, generator=gen, dtype=F64)
    diff = (layer(x, t1) - layer(x, t2)).abs().max()
    if changes:
        assert diff > 1e-6
    else:
        assert diff == 0
        assert torch.equal(layer(x, t1), layer(x))


def test_float64_layer_uses_float64_time():
    """Regression (an earlier layer rounded its time input, t and t_const, to float32, putting the
    exact mode's logits off by ~1e-8 relative): a float64 layer uses float64 time."""
    t_len = 4
    x = rand_x(1, t_len, 3, seed=21)
    # (a) a (B, T) step time
    layer = make(
        variant="paper", topk=t_len, mode="exact", time_input="step", return_sequences=True, return_attention=True
    )
    t = torch.tensor([[0.1, 0.7, 1.3, 2.9]], dtype=F64)  # not representable in float32
    _, att = layer(x, t)
    phi, w = layer.gates(hand_pairs(layer, x, att.indices))
    logits = phi / w * (1 - torch.exp(-w * t[:, None, :, None]))
    torch.testing.assert_close(att.weights, torch.softmax(logits, -1), rtol=1e-12, atol=1e-14)
    # (b) the constant time t_const
    layer = clone_with(
        layer,
        variant="paper",
        topk=t_len,
        mode="exact",
        time_input="constant",
        t_const=0.37,
        return_sequences=True,
        return_attention=True,
    )
    _, att = layer(x)
    logits = phi / w * (1 - torch.exp(-w * 0.37))
    torch.testing.assert_close(att.weights, torch.softmax(logits, -1), rtol=1e-12, atol=1e-14)


def test_bfloat16_layer_accepts_time_input():
    """Regression (an earlier layer forced the time to float32, promoting a bfloat16/float16 layer's
    logits to float32, so the einsum with the bfloat16 values failed): low-precision layers run."""
    torch.manual_seed(0)
    for time_input in ("step", "pair"):
        layer = NeuronalAttentionCircuit(3, 4, 2, topk=3, time_input=time_input, return_sequences=True).to(
            torch.bfloat16
        )
        x = torch.randn(2, 5, 3).to(torch.bfloat16)
        out = layer(x, torch.rand(2, 5))
        assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


# ----------------------------------------------------------------------------- official reference
def official_reference(layer, x, t_const=1.0, mask=None, dt=1.0, pairwise=False):
    """The official variant's forward pass written out from docs/NAC.md 2.1-2.8 (output factor ``dt``);
    ``pairwise`` (NAC-PW): every key, masked keys' logits - 1e9."""
    b, t_len, _ = x.shape
    h = layer.num_heads

    def sensory(p):  # docs/NAC.md 2.4
        return p.out_w * ((x * p.in_w + p.in_b) @ p.weight + p.bias) + p.out_b

    q, k, v = (split_heads(sensory(p), h) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
    scores = q @ k.transpose(-1, -2)  # raw dot products, dense (B, H, T, T)
    idx = torch.topk(scores, min(layer.topk, t_len), dim=-1).indices
    if pairwise:
        idx = torch.arange(t_len).expand(b, h, t_len, t_len)
    k_sel, v_sel = select(k, idx), select(v, idx)
    u = torch.cat([q[:, :, :, None, :].expand_as(k_sel), k_sel], dim=-1)
    a = (u @ layer.time_a.weight.T)[..., 0] + layer.time_a.bias
    c = (u @ layer.time_b.weight.T)[..., 0] + layer.time_b.bias
    t_interp = torch.sigmoid(a * t_const + c)
    raw = layer.gate_bias * layer.gate_out_w + layer.gate_out_b
    phi, w = torch.sigmoid(raw), F.softplus(raw) + EPS
    logits = phi / w * (1 - torch.exp(-w * t_interp))
    if mask is not None:
        key_ok = mask[torch.arange(b)[:, None, None, None], idx].double()
        logits = logits - 1e9 * (1 - key_ok) if pairwise else logits * key_ok
    weights = torch.softmax(logits, dim=-1)
    heads = dt * (weights[..., None] * v_sel).sum(-2)
    out = heads.transpose(1, 2).reshape(b, t_len, -1) @ layer.out_proj.weight.T + layer.out_proj.bias
    return out, weights, idx


@pytest.mark.parametrize("t_const,dt", [(1.0, 1.0), (0.375, 0.6), (1.0, 2.5)])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("pairwise", [False, True])
def test_official_forward_matches_hand_reference(t_const, dt, with_mask, pairwise):
    layer = make(
        input_dim=3,
        d_model=4,
        num_heads=2,
        variant="official",
        topk=3,
        mode="exact",
        pairwise=pairwise,
        t_const=t_const,
        dt=dt,
        return_sequences=True,
        return_attention=True,
        seed=22,
    )
    x = rand_x(2, 5, 3, seed=22)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]]) if with_mask else None
    out, att = layer(x, mask=mask)
    ref_out, ref_w, ref_idx = official_reference(layer, x, t_const, mask, dt, pairwise)
    w_sorted, idx_sorted = sort_by_index(att.weights, att.indices)
    rw_sorted, ridx_sorted = sort_by_index(ref_w, ref_idx)
    assert torch.equal(idx_sorted, ridx_sorted)
    torch.testing.assert_close(w_sorted, rw_sorted, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    # the weights are not uniform here (exact mode: interpolated time depends on the pair)
    assert att.weights.std(-1).max() > 1e-4


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "arg,valid",
    [
        ("mode", ["exact", "euler", "steady"]),
        ("variant", ["paper", "official"]),
        ("time_input", ["constant", "step", "pair"]),
        ("activation", ["relu", "tanh", "gelu", "elu", "sigmoid"]),
    ],
)
def test_unknown_choice_raises_with_valid_choices(arg, valid):
    with pytest.raises(ValueError) as err:
        NeuronalAttentionCircuit(3, 4, 2, **{arg: "bogus"})
    msg = str(err.value)
    assert f"{arg}='bogus'" in msg  # names the setting and the bad value
    for choice in valid:
        assert choice in msg
    with pytest.raises(ValueError, match="mode='bogus' is not valid; choose one of"):
        ode_logits(torch.ones(2), torch.ones(2), 1.0, "bogus")


def test_bad_sizes_raise_with_the_setting_named():
    with pytest.raises(ValueError, match="d_model=5 must be divisible by num_heads=2"):
        NeuronalAttentionCircuit(3, 5, 2)
    with pytest.raises(ValueError, match="topk=0 must be >= 1"):
        NeuronalAttentionCircuit(3, 4, 2, topk=0)
    NeuronalAttentionCircuit(3, 4, 2, topk=1)
    with pytest.raises(ValueError, match=r"backbone_units=4 is too small: need at least motor \+ 3 = 5"):
        NeuronalAttentionCircuit(3, 4, 2, backbone_units=4)
    assert NeuronalAttentionCircuit(3, 4, 2, backbone_units=5).backbone.sizes[-1] == 2


@pytest.mark.parametrize("kw", [dict(), dict(dense=True), dict(pairwise=True)])
@pytest.mark.parametrize("sparsity", [0.0, 0.05, 0.95, 1.5])
def test_sparsity_out_of_range_raises(kw, sparsity):
    with pytest.raises(
        ValueError,
        match=rf"^sparsity={sparsity} is outside .*\]\. For a dense \(fully connected\) NAC "
        r"use the NAC-FC ablation \(model=nac_fc\)\.$",
    ):
        NeuronalAttentionCircuit(3, 4, 2, variant="paper", sparsity=sparsity, **kw)


def test_official_sparsity_out_of_range_raises():
    """Regression (the official variant once accepted any ``sparsity``, which it does not use): a
    bad value is rejected, as the authors' layer (AutoNCP) rejects it."""
    for kw in (dict(), dict(dense=True)):
        for sparsity in (0.0, 0.05, 0.95, 1.5):
            with pytest.raises(ValueError):
                NeuronalAttentionCircuit(3, 4, 2, variant="official", sparsity=sparsity, **kw)


def test_sparsity_in_range_accepted():
    for s in (0.1, 0.5, 0.9):
        NeuronalAttentionCircuit(3, 4, 2, sparsity=s)


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 4), (2, 5, 3, 1), (3,)])
def test_wrong_x_shape_raises(shape):
    layer = NeuronalAttentionCircuit(3, 4, 2)
    with pytest.raises(ValueError, match=rf"expected x of shape \(B, T, 3\), got {re.escape(str(shape))}"):
        layer(torch.randn(*shape))


def test_wrong_t_shape_raises():
    layer = NeuronalAttentionCircuit(3, 4, 2, time_input="step")
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"one value per sample \(2\), got \(3,\)"):
        layer(x, torch.rand(3))
    for t in (torch.rand(2, 4), torch.rand(2, 5, 1)):
        with pytest.raises(
            ValueError, match=rf"scalar, \(B,\) or \(B, T\) = \(2, 5\); got {re.escape(str(tuple(t.shape)))}"
        ):
            layer(x, t)


# ----------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_same_seeds_give_identical_outputs(variant):
    def build_and_run():
        torch.manual_seed(123)
        layer = NeuronalAttentionCircuit(6, 8, 2, variant=variant, topk=3, wiring_seed=7, return_sequences=True)
        x = torch.randn(2, 5, 6)
        return layer(x, torch.rand(2, 5))

    assert torch.equal(build_and_run(), build_and_run())


def test_different_wiring_seed_gives_different_masks():
    torch.manual_seed(0)
    a = NeuronalAttentionCircuit(6, 8, 2, wiring_seed=1)
    torch.manual_seed(0)
    b = NeuronalAttentionCircuit(6, 8, 2, wiring_seed=2)
    torch.manual_seed(0)
    a2 = NeuronalAttentionCircuit(6, 8, 2, wiring_seed=1)
    for name in ("q_proj", "k_proj", "v_proj"):
        assert torch.equal(getattr(a, name).mask, getattr(a2, name).mask)
    assert any(not torch.equal(getattr(a, n).mask, getattr(b, n).mask) for n in ("q_proj", "k_proj", "v_proj"))
    assert not torch.equal(a.q_proj.mask, b.q_proj.mask)


# ----------------------------------------------------------------------------- defaults (docs/NAC.md 2, 5)
@pytest.mark.parametrize(
    "variant,time_kw",
    [
        ("paper", dict(time_input="pair", time_interpolation=False)),
        ("official", dict(time_input="constant", time_interpolation=True)),
    ],
)
@pytest.mark.parametrize("mode", ["exact", "euler"])
def test_defaults_are_the_documented_settings(variant, time_kw, mode):
    """docs/NAC.md: topk 8, euler_steps 5, delta_t 0.5, sparsity 0.5, dt 1, tau_epsilon 1e-6, use_bias, t = 1;
    d_model 64 with 16 heads; paper: real (pair) time, official: constant time through the interpolation.
    The wiring seed stays AutoNCP's default, 22222, so that default models keep their recorded wirings."""
    documented = dict(
        d_model=64,
        num_heads=16,
        topk=8,
        euler_steps=5,
        delta_t=0.5,
        sparsity=0.5,
        dt=1.0,
        tau_epsilon=1e-6,
        use_bias=True,
        t_const=1.0,
        wiring_seed=22222,
        **time_kw,
    )
    x = rand_x(2, 12, 3, seed=30)
    t = 0.2 + torch.rand(2, 12, generator=torch.Generator().manual_seed(30), dtype=F64)
    outs = []
    for kw in ({}, documented):
        torch.manual_seed(0)
        outs.append(NeuronalAttentionCircuit(3, variant=variant, mode=mode, **kw).double()(x, t))
    assert outs[0].shape == (2, 64)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_ode_logits_euler_defaults_are_five_steps_of_half():
    phi = torch.tensor([0.3, 0.9], dtype=F64)
    w = torch.tensor([0.7, 2.5], dtype=F64)
    torch.testing.assert_close(ode_logits(phi, w, 1.0, "euler"), euler_loop(phi, w, 0.5, 5), rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(variant="paper"),
        dict(variant="paper", causal=True),
        dict(variant="official"),
        dict(variant="official", pairwise=True),
    ],
)
def test_integer_and_float_masks_act_as_boolean_masks(kw):
    layer = make(topk=3, time_input="step", return_sequences=True, **kw)
    x = rand_x(2, 6, 3, seed=31)
    t = 0.3 + torch.rand(2, 6, generator=torch.Generator().manual_seed(31), dtype=F64)
    mask = torch.tensor([[True, False, True, True, False, True], [True, True, True, True, False, False]])
    want = layer(x, t, mask)
    for other in (mask.int(), mask.double()):
        torch.testing.assert_close(layer(x, t, other), want, rtol=0, atol=0)


@pytest.mark.parametrize("use_bias", [True, False])
def test_official_fc_gates_are_two_linear_maps_of_the_pair(use_bias):
    """NAC-FC (official): phi = sigmoid(W2 (W1 u + b1) + b2), w_tau = softplus(V2 (V1 u + c1) + c2) + eps."""
    layer = make(variant="official", dense=True, use_bias=use_bias, d_model=8, num_heads=2)
    p1, p2 = layer.phi_net
    v1, v2 = layer.tau_net
    assert p2.weight.shape == (1, 8) and v2.weight.shape[0] == 1
    assert all((lin.bias is not None) == use_bias for lin in (p1, v1, v2))

    def affine(lin, u):
        return u @ lin.weight.T + (0.0 if lin.bias is None else lin.bias)

    u = torch.randn(7, 8, generator=torch.Generator().manual_seed(32), dtype=F64)
    phi, w_tau = layer.gates(u)
    torch.testing.assert_close(phi, torch.sigmoid(affine(p2, affine(p1, u)))[:, 0], rtol=1e-14, atol=0)
    torch.testing.assert_close(w_tau, F.softplus(affine(v2, affine(v1, u)))[:, 0] + EPS, rtol=1e-14, atol=0)
    assert phi.std() > 1e-3 and w_tau.std() > 1e-3


# ----------------------------------------------------------------------------- building blocks
def test_masked_linear_init_scales_by_each_units_fan_in():
    """Weights uniform in +-sqrt(3 / fan_in) per output unit (fan_in at least 1): unit variance out."""
    mask = torch.zeros(400, 4)
    mask[0, 1] = 1
    mask[:7, 2] = 1
    mask[:, 3] = 1  # column 0 has no synapse at all
    torch.manual_seed(0)
    lin = MaskedLinear(mask)
    bound = torch.sqrt(3.0 / torch.tensor([1.0, 1.0, 7.0, 400.0]))
    w = lin.weight.detach()
    assert (w.abs() <= bound).all()
    assert (w.max(0).values > 0.9 * bound).all() and (w.min(0).values < -0.9 * bound).all()
    assert torch.equal(lin.bias.detach(), torch.zeros(4)) and MaskedLinear(mask, bias=False).bias is None
    x = torch.randn(3, 400)
    torch.testing.assert_close(lin(x), x @ (w * mask), rtol=1e-6, atol=1e-6)


def test_affine_projection_has_keras_glorot_init_and_identity_affines():
    torch.manual_seed(0)
    proj = AffineProjection(200, 4, fan_out_for_init=50)
    bound = math.sqrt(6.0 / (200 + 50))
    w = proj.weight.detach()
    assert w.shape == (200, 4) and w.abs().max() <= bound
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound
    x = torch.randn(3, 5, 200)
    torch.testing.assert_close(proj(x), x @ w, rtol=1e-5, atol=1e-5)  # in/out affines start as identity


def test_ncp_backbone_is_sparse_unless_dense():
    sparse, dense = NCPBackbone(4, 12, 2, 0.5, seed=3), NCPBackbone(4, 12, 2, 0.5, seed=3, dense=True)
    assert all((lin.mask == 0).any() for lin in sparse.layers)
    assert all((lin.mask == 1).all() for lin in dense.layers)
    assert [lin.mask.shape for lin in sparse.layers] == [lin.mask.shape for lin in dense.layers]


@pytest.mark.parametrize("causal", [False, True])
def test_all_pairs_selects_every_key_with_documented_shapes(causal):
    idx, valid = all_pairs(3, 2, 4, None, causal, "cpu")
    assert idx.shape == (1, 1, 4, 4) and valid.shape == (1, 1, 4, 4)
    assert torch.equal(idx[0, 0], torch.arange(4).expand(4, 4))
    allowed = torch.ones(4, 4, dtype=torch.bool)
    assert torch.equal(valid[0, 0], allowed.tril() if causal else allowed)
    mask = torch.tensor([[True, False, True, True], [True] * 4, [False, True, True, False]])
    _, valid = all_pairs(3, 2, 4, mask, causal, "cpu")
    assert valid.shape == (3, 1, 4, 4)
    want = mask[:, None, None, :] & (allowed.tril() if causal else allowed)
    assert torch.equal(valid, want)
