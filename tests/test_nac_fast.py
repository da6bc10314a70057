"""The NAC layer's fast forward pass against the plain computation it replaced (issue 12).

``plain_forward`` below is the layer's forward pass as it was before the speed work (commit
ea6d27f), copied here and written from the layer's parameters only: it builds every pair
u = [q_i; k_j] with ``torch.cat``, runs the gate networks on it layer by layer (``x @ (W * M) + b``),
selects keys with one dense ``torch.topk``, gathers keys and values per pair and attends from every
query. It calls none of the layer's methods or sub-modules except the activation. The layer must
give the same outputs and gradients (float64, to round-off) for every variant, mode, mask, time
input and ablation, through each of its paths: the last-step-only query, every key (K >= T),
gathered top-K and the block-pruned top-K of long sequences.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import nac.layers.nac as nac_module
import nac.layers.topk as topk_module
from nac.layers import NeuronalAttentionCircuit
from nac.layers.topk import block_topk, chunked_topk
from nac.models.contract import last_valid_step

F64 = torch.float64


# ----------------------------------------------------------------------------- the plain computation
def _gather(x, idx):
    """x (B, H, T, D) at key indices idx (B|1, H|1, Tq, K) -> (B, H, Tq, K, D)."""
    b, h, _, d = x.shape
    tq, k = idx.shape[2:]
    flat = idx.expand(b, h, tq, k).reshape(b, h, tq * k, 1).expand(-1, -1, -1, d)
    return torch.gather(x, 2, flat).reshape(b, h, tq, k, d)


def _projection(layer, proj, x):
    if layer.dense:  # nn.Linear
        return x @ proj.weight.T + (0.0 if proj.bias is None else proj.bias)
    if layer.variant == "official":  # AffineProjection, docs/NAC.md 2.4
        return proj.out_w * ((x * proj.in_w + proj.in_b) @ proj.weight + proj.bias) + proj.out_b
    y = x @ (proj.weight * proj.mask)  # MaskedLinear
    return y if proj.bias is None else y + proj.bias


def _masked(lin, x):
    y = x @ (lin.weight * lin.mask)
    return y if lin.bias is None else y + lin.bias


def _linear(lin, x):
    return x @ lin.weight.T + (0.0 if lin.bias is None else lin.bias)


def _gates(layer, pair):
    if layer.variant == "paper":
        lin = layer.backbone.layers
        raw = _masked(lin[2], torch.tanh(_masked(lin[1], torch.tanh(_masked(lin[0], pair)))))
        phi, tau_raw = raw[..., 0], raw[..., 1]
    elif layer.dense:
        phi = _linear(layer.phi_net[1], _linear(layer.phi_net[0], pair))[..., 0]
        tau_raw = _linear(layer.tau_net[1], _linear(layer.tau_net[0], pair))[..., 0]
    else:
        raw = layer.gate_bias * layer.gate_out_w + layer.gate_out_b
        phi, tau_raw = raw, raw
    return torch.sigmoid(phi), F.softplus(tau_raw) + layer.tau_epsilon


def _topk(q, k, topk, key_mask, causal):
    scores = q @ k.transpose(-1, -2)
    t_q, t_k = scores.shape[-2:]
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    if causal:
        scores = scores.masked_fill(~torch.ones(t_q, t_k, dtype=torch.bool).tril(), float("-inf"))
    vals, idx = torch.topk(scores, min(topk, t_k), dim=-1)
    return idx, torch.isfinite(vals)


def _ode_time(layer, t, mask, idx, b, tq, like):
    if t is None or layer.time_input == "constant":
        return torch.tensor(layer.t_const, dtype=like.dtype)
    t = torch.as_tensor(t).to(dtype=like.dtype)
    if t.dim() == 0:
        return t
    if t.dim() == 1:
        return t.view(b, 1, 1, 1)
    if mask is not None:
        t = t * mask
    if layer.time_input == "step":
        return t[:, None, :, None]
    stamps = torch.cumsum(t, dim=1)[:, None, :, None]
    key_stamps = _gather(stamps.expand(-1, idx.shape[1], -1, -1), idx)[..., 0]
    return (stamps - key_stamps).abs()


def _logits(layer, phi, w_tau, t_ode):
    steady = phi / w_tau
    if layer.mode == "steady":
        return steady
    if layer.mode == "exact":
        return steady * (1.0 - torch.exp(-w_tau * t_ode))
    return steady * (1.0 - torch.pow(1.0 - layer.delta_t * w_tau, layer.euler_steps))


def plain_forward(layer, x, t=None, mask=None, causal_after_mask=False):
    """The layer's forward pass before the speed work: (output, weights, indices, valid).

    ``causal_after_mask``: the official variant applies the causal -inf after the mask product
    instead of before (before, a selected padded future key gives -inf * 0 = NaN)."""
    b, tq, _ = x.shape
    h, d = layer.num_heads, layer.depth
    if mask is not None:
        mask = mask.to(dtype=torch.bool)

    def split(y):
        return y.view(b, tq, h, d).transpose(1, 2)

    q, k, v = (split(_projection(layer, p, x)) for p in (layer.q_proj, layer.k_proj, layer.v_proj))
    select_mask = mask if layer.variant == "paper" else None
    if layer.pairwise:
        idx = torch.arange(tq).expand(tq, tq)[None, None]
        valid = torch.ones(1, 1, tq, tq, dtype=torch.bool)
        if select_mask is not None:
            valid = valid & select_mask[:, None, None, :]
        if layer.causal:
            valid = valid & torch.ones(tq, tq, dtype=torch.bool).tril()
        k_sel = k[:, :, None].expand(-1, -1, tq, -1, -1)
        v_sel = v[:, :, None].expand(-1, -1, tq, -1, -1)
    else:
        idx, valid = _topk(q, k, layer.topk, select_mask, layer.causal)
        k_sel, v_sel = _gather(k, idx), _gather(v, idx)
    k_eff = idx.shape[-1]
    pair = torch.cat([q[:, :, :, None].expand(-1, -1, -1, k_eff, -1), k_sel], dim=-1)

    phi, w_tau = _gates(layer, pair)
    t_ode = _ode_time(layer, t, mask, idx, b, tq, q)
    if layer.time_interpolation:
        t_ode = torch.sigmoid(_linear(layer.time_a, pair)[..., 0] * t_ode + _linear(layer.time_b, pair)[..., 0])
    logits = _logits(layer, phi, w_tau, t_ode).expand(b, h, tq, k_eff)

    if layer.variant == "paper":
        any_valid = valid.any(dim=-1, keepdim=True)
        logits = torch.where(valid, logits, float("-inf"))
        logits = torch.where(any_valid, logits, 0.0)
        weights = torch.softmax(logits, dim=-1) * valid
    else:
        if layer.causal and not causal_after_mask:
            logits = torch.where(valid, logits, float("-inf"))
        if mask is not None:
            if layer.pairwise:
                logits = logits + (1.0 - mask[:, None, None, :].float()) * -1e9
            else:
                key_mask = _gather(mask[:, None, :, None].float().expand(-1, h, -1, -1), idx)
                logits = logits * key_mask[..., 0]
        if layer.causal and causal_after_mask:
            logits = torch.where(valid, logits, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
    weights = layer.attn_dropout(weights)

    heads = layer.dt * torch.einsum("bhqk,bhqkd->bhqd", weights, v_sel)
    out = heads.transpose(1, 2).reshape(b, tq, layer.d_model) @ layer.out_proj.weight.T
    if layer.out_proj.bias is not None:
        out = out + layer.out_proj.bias
    out = layer.activation(out)
    if not layer.return_sequences:
        out = last_valid_step(out, mask)
    return out, weights, idx, valid


# ----------------------------------------------------------------------------- helpers
def make(seed=0, input_dim=3, d_model=8, num_heads=2, **kw):
    """A float64 layer with every parameter perturbed (no default ones/zeros hide a mistake)."""
    torch.manual_seed(seed)
    layer = NeuronalAttentionCircuit(input_dim, d_model, num_heads, **kw).double()
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


def data(b, t_len, seed=0, c=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t_len, c, generator=gen, dtype=F64, requires_grad=True)
    t = (0.2 + 1.5 * torch.rand(b, t_len, generator=gen, dtype=F64)).requires_grad_()
    mask = torch.rand(b, t_len, generator=gen) < 0.7
    mask[0] = True  # one full sample
    mask[-1, -2:] = False  # trailing padding: the last valid step is not the last step
    if b > 2:
        mask[1] = False
        mask[1, 0] = True  # a sample with a single valid step
    return x, t, mask


def grads(out, layer, inputs, seed=1):
    """Gradients of a random projection of ``out`` with respect to the parameters and ``inputs``."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    wrt = [*layer.parameters(), *inputs]
    got = torch.autograd.grad((out * g).sum(), wrt, allow_unused=True)
    return [torch.zeros_like(w) if gi is None else gi for w, gi in zip(wrt, got)]


def assert_same(layer, x, t, mask, causal_after_mask=False, rtol=1e-10, atol=1e-12):
    """The layer's output and gradients equal ``plain_forward``'s; returns the output."""
    inputs = [x] + ([t] if isinstance(t, torch.Tensor) and t.requires_grad else [])
    out = layer(x, t, mask)
    out = out[0] if isinstance(out, tuple) else out
    ref = plain_forward(layer, x, t, mask, causal_after_mask)[0]
    assert out.shape == ref.shape
    assert torch.isfinite(ref).all() and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    names = [n for n, _ in layer.named_parameters()] + ["x", "t"][: len(inputs)]
    for name, a, r in zip(names, grads(out, layer, inputs), grads(ref, layer, inputs)):
        torch.testing.assert_close(a, r, rtol=rtol, atol=atol, msg=lambda m, n=name: f"gradient of {n}: {m}")
    return out


LAYER_CASES = {  # ablations x modes x time handling, for both variants
    "paper": dict(variant="paper"),
    "paper_fc": dict(variant="paper", dense=True),
    "paper_pw": dict(variant="paper", pairwise=True),
    "paper_pwfc": dict(variant="paper", pairwise=True, dense=True),
    "paper_interp": dict(variant="paper", time_interpolation=True, time_input="step"),
    "paper_units": dict(variant="paper", backbone_units=11, use_bias=False, activation="tanh"),
    "official": dict(variant="official"),
    "official_fc": dict(variant="official", dense=True),
    "official_pw": dict(variant="official", pairwise=True),
    "official_pwfc": dict(variant="official", pairwise=True, dense=True, use_bias=False),
    "official_pair_time": dict(variant="official", time_input="pair", activation="relu"),
}
MODES = {
    "exact": dict(mode="exact"),
    "euler": dict(mode="euler", euler_steps=4, delta_t=0.3),
    "steady": dict(mode="steady"),
}


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
@pytest.mark.parametrize("path", ["gathered", "mask_form"])
def test_fast_forward_equals_plain_forward(monkeypatch, path, case, mode, sequences, causal, with_mask):
    """Top-K (T = 7 > K): outputs and gradients of every parameter, x and t. ``gathered``: K = 3,
    keys gathered per query; ``mask_form``: K = 5 with T <= 1.5 K, the selection applied as a mask
    over every key (NAC-PW, which selects every key anyway, takes neither)."""
    monkeypatch.setattr(nac_module, "DENSE_SELECTION_RATIO", 1.5)
    used = []
    dense_selection = nac_module.NeuronalAttentionCircuit._dense_selection
    monkeypatch.setattr(
        nac_module.NeuronalAttentionCircuit,
        "_dense_selection",
        staticmethod(lambda *a: used.append(1) or dense_selection(*a)),
    )
    kw = {**LAYER_CASES[case], **MODES[mode]}
    layer = make(seed=3, topk=3 if path == "gathered" else 5, causal=causal, return_sequences=sequences, dt=0.7, **kw)
    x, t, mask = data(3, 7, seed=4)
    assert_same(
        layer, x, t, mask if with_mask else None, causal_after_mask=kw["variant"] == "official" and causal and with_mask
    )
    assert bool(used) == (path == "mask_form" and not kw.get("pairwise", False))


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sequences", [False, True])
@pytest.mark.parametrize("case", ["paper", "paper_fc", "official", "official_fc", "paper_interp"])
@pytest.mark.parametrize("topk", [5, 8])
def test_every_key_path_equals_plain_forward(case, topk, sequences, causal, with_mask):
    """K >= T = 5: every key is used, no score is computed, nothing is gathered."""
    layer = make(seed=5, topk=topk, causal=causal, return_sequences=sequences, **LAYER_CASES[case])
    x, t, mask = data(3, 5, seed=6)
    assert_same(
        layer, x, t, mask if with_mask else None, causal_after_mask=layer.variant == "official" and causal and with_mask
    )


@pytest.mark.parametrize("time", ["none", "scalar", "per_sample", "steps"])
@pytest.mark.parametrize("time_input", ["constant", "step", "pair"])
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_time_inputs_equal_plain_forward(variant, time_input, time):
    layer = make(seed=7, variant=variant, topk=3, time_input=time_input, t_const=0.6)
    x, t, mask = data(2, 6, seed=8)
    t = {
        "none": None,
        "scalar": torch.tensor(0.8, dtype=F64, requires_grad=True),
        "per_sample": t[:, 0].detach().requires_grad_(),
        "steps": t,
    }[time]
    assert_same(layer, x, t, mask)


@pytest.mark.parametrize("case", ["paper", "official", "paper_pw"])
def test_block_topk_path_equals_plain_forward(monkeypatch, case):
    """Long-sequence selection (block-pruned top-K), switched on at T = 40 for the test, with
    several chunks and a length that is not a multiple of the block."""
    monkeypatch.setattr(topk_module, "BLOCK_MIN_KEYS", 16)
    calls = []
    monkeypatch.setattr(topk_module, "block_topk", lambda *a: calls.append(a[2]) or block_topk(*a))
    for sequences, causal, with_mask in itertools.product([False, True], repeat=3):
        layer = make(seed=9, topk=3, causal=causal, return_sequences=sequences, chunk_size=7, **LAYER_CASES[case])
        x, t, mask = data(3, 40, seed=10)
        assert_same(
            layer,
            x,
            t,
            mask if with_mask else None,
            causal_after_mask=layer.variant == "official" and causal and with_mask,
        )
    assert (not calls) == LAYER_CASES[case].get("pairwise", False)
    assert all(block == 16 for block in calls)  # sqrt(40) rounded to a multiple of 16: T is padded


@pytest.mark.parametrize("case", ["paper", "official", "paper_fc"])
def test_attention_record_equals_plain_forward(case):
    """return_attention: the same weights on the same keys (compared as key -> weight sets)."""
    layer = make(seed=11, topk=3, return_sequences=True, return_attention=True, **LAYER_CASES[case])
    x, t, mask = data(3, 7, seed=12)
    with torch.no_grad():
        _, att = layer(x, t, mask)
        _, ref_w, ref_idx, ref_valid = plain_forward(layer, x, t, mask)
    b, h, tq, k = ref_w.shape
    for bi, hi, i in itertools.product(range(b), range(h), range(tq)):

        def keyed(w, idx, valid):
            idx, valid = idx.expand(b, h, tq, k)[bi, hi, i], valid.expand(b, h, tq, k)[bi, hi, i]
            return {int(j): float(wj) for j, wj, ok in zip(idx, w[bi, hi, i], valid) if ok}

        got, want = keyed(att.weights, att.indices, att.valid), keyed(ref_w, ref_idx, ref_valid)
        assert got.keys() == want.keys()
        assert all(got[j] == pytest.approx(want[j], rel=1e-12, abs=1e-14) for j in want)
        assert float(att.weights[bi, hi, i].sum()) == pytest.approx(float(ref_w[bi, hi, i].sum()), abs=1e-12)


@pytest.mark.parametrize("topk", [3, 7])
def test_dropout_in_training_uses_every_query_like_the_plain_forward(topk):
    """Active attention dropout draws one mask over every query and over the keys in top-K order
    (also when K >= T), as before: the same random numbers land on the same keys."""
    layer = make(seed=13, topk=topk, dropout=0.3)
    layer.train()
    x, t, mask = data(3, 7, seed=14)
    torch.manual_seed(99)
    out = layer(x, t, mask)
    torch.manual_seed(99)
    ref = plain_forward(layer, x, t, mask)[0]
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    layer.eval()  # and without dropout at eval time the last-step query path agrees too
    assert_same(layer, x, t, mask)


def test_official_causal_mask_no_longer_gives_nan():
    """Before, the official variant set future keys to -inf and then multiplied by the mask: a
    selected padded future key gave -inf * 0 = NaN for the whole query. The layer now multiplies
    first; the outputs equal the plain computation in that order, and the old order was NaN."""
    layer = make(seed=15, variant="official", topk=3, causal=True, return_sequences=True)
    x, t, mask = data(3, 7, seed=16)
    mask[0, 3] = False  # padding in the future of query 0, which has fewer than K past keys
    old = plain_forward(layer, x, t, mask)[0]
    assert torch.isnan(old).any()
    assert_same(layer, x, t, mask, causal_after_mask=True)


def test_last_step_query_gives_same_output_for_float32():
    """The default float32 path too (B = 4, T = 30, K = 5): last-step query vs every query."""
    torch.manual_seed(17)
    layer = NeuronalAttentionCircuit(6, 16, 4, topk=5, sparsity=0.7)
    seq = NeuronalAttentionCircuit(6, 16, 4, topk=5, sparsity=0.7, return_sequences=True)
    seq.load_state_dict(layer.state_dict())
    x = torch.randn(4, 30, 6)
    mask = torch.arange(30)[None] < torch.tensor([30, 12, 1, 29])[:, None]
    torch.testing.assert_close(layer(x, None, mask), last_valid_step(seq(x, None, mask), mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_forward_reference_is_the_plain_forward(case):
    """The layer keeps the plain pass as ``forward_reference``: it equals the copy here, keys
    in the same (top-K) order, weights included."""
    layer = make(seed=19, topk=3, return_sequences=True, return_attention=True, **LAYER_CASES[case])
    x, t, mask = data(3, 7, seed=20)
    out, att = layer.forward_reference(x, t, mask)
    ref_out, ref_w, ref_idx, ref_valid = plain_forward(layer, x, t, mask)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(att.weights, ref_w, rtol=1e-12, atol=1e-13)
    assert torch.equal(att.indices.expand_as(ref_idx), ref_idx.expand_as(att.indices))


# ----------------------------------------------------------------------------- selection
@pytest.mark.parametrize("t_len,block,k", [(64, 8, 3), (61, 8, 5), (100, 16, 6), (40, 16, 2), (33, 4, 8)])
def test_block_topk_equals_topk(t_len, block, k):
    """Same values (as sorted lists) and indices pointing at those values, including rows with
    ties, with -inf keys, and with fewer finite keys than k."""
    gen = torch.Generator().manual_seed(t_len)
    scores = torch.randn(5, 3, t_len, generator=gen, dtype=F64)
    scores[0, 0] = torch.randint(0, 3, (t_len,), generator=gen).double()  # many ties
    scores[1, 1, ::2] = float("-inf")
    scores[2, 2] = float("-inf")
    scores[2, 2, [0, t_len - 1]] = 1.0  # two finite keys, at both ends
    scores[3, 0, : t_len - 1] = float("-inf")
    vals, idx = block_topk(scores, k, block)
    ref_vals, _ = torch.topk(scores, k, dim=-1)
    assert idx.shape == (5, 3, k) and (idx >= 0).all() and (idx < t_len).all()
    torch.testing.assert_close(vals, ref_vals, rtol=0, atol=0)  # sorted, as torch.topk
    finite = torch.isfinite(vals)
    torch.testing.assert_close(torch.gather(scores, -1, idx)[finite], vals[finite], rtol=0, atol=0)
    # a finite key is never picked twice
    for row_idx, row_ok in zip(idx.reshape(-1, k), finite.reshape(-1, k)):
        assert len(set(row_idx[row_ok].tolist())) == int(row_ok.sum())


def test_block_topk_indices_stay_in_range_whatever_the_tie_breaking(monkeypatch):
    """With fewer finite keys than k, the -inf picks tie with the -inf padding of the last block;
    ``torch.topk`` on the CPU happens to prefer real keys, another device may not. Under a top-k
    that breaks ties towards the last position, every index must still name a real key."""
    real_topk = torch.topk

    def last_among_ties(x, k, dim=-1, largest=True, sorted=True):
        vals, idx = real_topk(x.flip(dim), k, dim=dim, largest=largest, sorted=sorted)
        return vals, x.shape[dim] - 1 - idx

    monkeypatch.setattr(torch, "topk", last_among_ties)
    scores = torch.full((4, 33), float("-inf"), dtype=F64)
    scores[0, 5] = scores[1, 32] = scores[2, [0, 31]] = 1.0  # row 3: no finite key
    vals, idx = block_topk(scores, 8, 4)  # 9 blocks, the last padded with 3 columns
    assert (idx < 33).all() and (idx >= 0).all()
    assert torch.isfinite(vals).sum(-1).tolist() == [1, 1, 2, 0]


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_topk_long_rows_and_query_positions(monkeypatch, causal):
    """Block path (long rows) and queries given by position: the same key sets as a dense top-K."""
    monkeypatch.setattr(topk_module, "BLOCK_MIN_KEYS", 32)
    gen = torch.Generator().manual_seed(18)
    b, h, t_len, d, k = 2, 3, 50, 4, 4
    q = torch.randn(b, h, t_len, d, generator=gen, dtype=F64)
    kk = torch.randn(b, h, t_len, d, generator=gen, dtype=F64)
    key_mask = torch.rand(b, t_len, generator=gen) < 0.5
    q_pos = torch.tensor([[49], [2]])
    q_at = torch.gather(q, 2, q_pos[:, None, :, None].expand(b, h, 1, d))
    idx, valid = chunked_topk(q_at, kk, k, key_mask, causal, q_pos=q_pos)
    full_idx, full_valid = topk_module.reference_topk(q, kk, k, key_mask, causal)
    for bi, hi in itertools.product(range(b), range(h)):
        i = int(q_pos[bi, 0])
        got = sorted(idx[bi, hi, 0][valid[bi, hi, 0]].tolist())
        want = sorted(full_idx[bi, hi, i][full_valid[bi, hi, i]].tolist())
        assert got == want, (bi, hi)
