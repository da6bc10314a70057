"""The attention baselines against hand computations (the generic contract checks are in
tests/test_models_contract.py)."""

import math

import pytest
import torch

from baselines._attention import allowed_keys, masked_softmax
from baselines.cta import ContinuousTimeAttention
from baselines.dot_attention import DotProductAttention
from baselines.fna import FNA, FractionalAttention
from baselines.mha import MultiHeadAttentionBaseline
from baselines.odeformer import ODEFormerEncoder
from baselines.transformer import Transformer

D = torch.float64


def _data(b=2, length=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, c, generator=g, dtype=D)
    t = torch.rand(b, length, generator=g, dtype=D) + 0.1
    return x, t


# ----------------------------------------------------------------------------- FNA
def _fna_by_hand(x, attn: FractionalAttention, mask, alpha, eps, s):
    q = x @ attn.q_proj.weight.T  # bias-free projections
    k = x @ attn.k_proj.weight.T
    assert attn.q_proj.bias is None and attn.k_proj.bias is None
    d_h = q.shape[-1]
    r = ((q[:, :, None, :] - k[:, None, :, :]) ** 2).sum(-1).sqrt() / s  # (B, L, L), no cdist
    u = r / eps ** (1 / alpha)
    kernel = (1 + u) ** -(d_h + alpha) if alpha < 2 else torch.exp(-(u ** (alpha / (alpha - 1))))
    kernel = kernel * mask[:, None, :]
    return kernel / kernel.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    "alpha,eps,scale",
    [(1.2, 1.0, math.sqrt(4) / (2 ** (1 / 4) - 1)), (1.2, 0.6, None), (2.0, 1.0, 2.0), (2.0, 0.6, None)],
)
def test_fna_weights_equal_the_kernel_formula(alpha, eps, scale):
    torch.manual_seed(0)
    attn = FractionalAttention(4, 1, alpha=alpha, eps=eps).double()
    if scale is not None:  # the default rule: text scale for alpha < 2, sqrt(d_h) for alpha = 2
        assert attn.scale == pytest.approx(scale)
    x = torch.randn(1, 5, 4, dtype=D)
    mask = torch.tensor([[True, True, True, False, True]])
    weights = attn.weights(x, allowed_keys(mask, 5, False, x.device))[:, 0]  # (B, L, L), one head
    expected = _fna_by_hand(x, attn, mask, alpha, eps, attn.scale)
    torch.testing.assert_close(weights, expected, rtol=1e-10, atol=1e-12)
    assert (weights[..., 3] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 5, dtype=D))


def test_fna_scale_rules_and_model_attention():
    assert FractionalAttention(8, 2, alpha=1.2, scale="dim").scale == 4.0
    assert FractionalAttention(8, 2, alpha=1.2, scale="sqrt").scale == 2.0
    assert FractionalAttention(8, 2, alpha=1.2, scale=3.5).scale == 3.5
    with pytest.raises(ValueError):
        FractionalAttention(8, 2, scale="bogus")
    # inside the encoder: the first layer's weights are the kernel of its input tokens
    torch.manual_seed(1)
    model = FNA(3, d_model=4, num_heads=1, return_attention=True).double().eval()
    x, t = _data(1, 5)
    mask = torch.tensor([[True, True, True, True, False]])
    _, weights = model(x, t, mask)
    tokens = model.embedding(x, t, mask)
    attn = model.layers[0].attention
    torch.testing.assert_close(weights[0][:, 0], _fna_by_hand(tokens, attn, mask, 1.2, 1.0, attn.scale))


def test_fna_causal_rows():
    torch.manual_seed(0)
    attn = FractionalAttention(4, 2).double()
    w = attn.weights(torch.randn(1, 4, 4, dtype=D), allowed_keys(None, 4, True, torch.device("cpu")))
    assert (w.triu(1) == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 4, dtype=D))


# ----------------------------------------------------------------------------- Transformer
def test_transformer_time_encoding_controls_time_use():
    x, t = _data()
    for time_encoding, position_encoding in [(True, True), (False, True), (False, False)]:
        torch.manual_seed(0)
        model = (
            Transformer(3, d_model=8, num_heads=2, time_encoding=time_encoding, position_encoding=position_encoding)
            .double()
            .eval()
        )
        with torch.no_grad():
            changed = not torch.allclose(model(x, t), model(x, 3 * t + 0.5))
        assert changed == time_encoding == model.uses_time


def test_transformer_without_t_encodes_index_positions():
    torch.manual_seed(0)
    model = Transformer(3, d_model=8, num_heads=2).double().eval()
    x, _ = _data()
    with torch.no_grad():  # t None means one unit per step, so s = 1..L
        torch.testing.assert_close(model(x), model(x, torch.ones(2, 5, dtype=D)))


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_causal_mask_hides_the_future(causal):
    torch.manual_seed(0)
    model = Transformer(3, d_model=8, num_heads=2, num_layers=2, causal=causal, return_sequences=True).double().eval()
    x, t = _data()
    x2, t2 = x.clone(), t.clone()
    x2[:, 3] += 1.0
    t2[:, 3] += 0.7
    with torch.no_grad():
        a, b = model(x, t), model(x2, t2)
    assert torch.allclose(a[:, :3], b[:, :3]) == causal
    assert not torch.allclose(a[:, 3:], b[:, 3:])


# ----------------------------------------------------------------------------- mha / dot attention
def test_mha_equals_hand_computation():
    torch.manual_seed(0)
    model = MultiHeadAttentionBaseline(3, d_model=4, num_heads=2, return_sequences=True).double().eval()
    x, _ = _data(1, 4)
    a = model.attention
    z = x @ model.embedding.proj.weight.T + model.embedding.proj.bias
    heads = []
    for h in range(2):
        rows = slice(2 * h, 2 * h + 2)
        q = z @ a.q_proj.weight[rows].T + a.q_proj.bias[rows]
        k = z @ a.k_proj.weight[rows].T + a.k_proj.bias[rows]
        v = z @ a.v_proj.weight[rows].T + a.v_proj.bias[rows]
        heads.append(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(2), dim=-1) @ v)
    expected = torch.cat(heads, -1) @ a.out_proj.weight.T + a.out_proj.bias
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
        residual = MultiHeadAttentionBaseline(3, d_model=4, num_heads=2, residual=True, return_sequences=True).double()
        residual.load_state_dict(model.state_dict())
        torch.testing.assert_close(residual(x), z + expected)
        # Keras' key_dim: heads wider than d_model / num_heads
        wide = MultiHeadAttentionBaseline(3, d_model=4, num_heads=2, head_dim=5).double()
        assert wide.attention.q_proj.out_features == 10 and wide(x).shape == (1, 4)


@pytest.mark.parametrize("scale,factor", [("sqrt", 1 / math.sqrt(4)), ("none", 1.0)])
def test_dot_attention_equals_hand_computation(scale, factor):
    torch.manual_seed(0)
    model = DotProductAttention(3, d_model=4, scale=scale, return_sequences=True).double().eval()
    x, _ = _data(1, 4)
    z = x @ model.embedding.proj.weight.T + model.embedding.proj.bias
    expected = torch.softmax(z @ z.transpose(-1, -2) * factor, dim=-1) @ z
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
        mask = torch.tensor([[True, True, True, False]])
        z3 = z[:, :3]
        expected_masked = torch.softmax(z3 @ z3.transpose(-1, -2) * factor, dim=-1) @ z3
        torch.testing.assert_close(model(x, None, mask)[:, :3], expected_masked)


def test_attention_baselines_ignore_time_unless_asked():
    x, t = _data()
    for cls in (MultiHeadAttentionBaseline, DotProductAttention):
        for time_encoding in (False, True):
            torch.manual_seed(0)
            model = cls(3, d_model=4, time_encoding=time_encoding).double().eval()
            with torch.no_grad():
                changed = not torch.allclose(model(x, t), model(x, 2 * t + 0.3))
            assert changed == time_encoding == model.uses_time


def test_masked_softmax_rows_without_keys_are_zero():
    logits = torch.randn(2, 1, 3, 3, dtype=D)
    allowed = torch.tensor([[True, False, True], [False, False, False]])[:, None, None, :]
    w = masked_softmax(logits, allowed)
    assert torch.isfinite(w).all() and (w[1] == 0).all() and (w[0, ..., 1] == 0).all()
    torch.testing.assert_close(w[0].sum(-1), torch.ones(1, 3, dtype=D))


# ----------------------------------------------------------------------------- ODEFormer
def test_odeformer_token_embeds_timestamp_with_observation():
    torch.manual_seed(0)
    model = ODEFormerEncoder(3, d_model=8, num_heads=2, time_scale=2.0).double().eval()
    x, t = _data()
    proj = model.embedding.proj
    s = t.cumsum(1) / 2.0
    expected = torch.cat([s[..., None], x], -1) @ proj.weight.T + proj.bias
    torch.testing.assert_close(model.embedding(x, t, None), expected)
    assert model.uses_time


# ----------------------------------------------------------------------------- CTA
@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_cta_zero_elapsed_time_is_identity(solver):
    torch.manual_seed(0)
    model = ContinuousTimeAttention(3, d_model=6, num_heads=2, solver=solver).double().eval()
    h = torch.randn(2, 6, dtype=D)
    assert torch.equal(model.evolve(h, torch.zeros(2, 1, dtype=D)), h)
    assert not torch.allclose(model.evolve(h, torch.full((2, 1), 0.5, dtype=D)), h)
    # with t = 0 the hidden states are a plain GRU run, sample 0 evolving with its own times
    x, t = _data()
    t[1] = 0.0
    states = model.hidden_states(x, t)
    g = torch.zeros(1, 6, dtype=D)
    for i in range(x.shape[1]):
        g = model.cell(x[1:2, i], g)
        torch.testing.assert_close(states[1:2, i], g)
    assert not torch.allclose(states[0], model.hidden_states(x[:1], torch.zeros_like(t[:1]))[0])


def test_cta_euler_steps_by_hand():
    torch.manual_seed(0)
    model = ContinuousTimeAttention(3, d_model=4, num_heads=2, ode_steps=3).double()
    h, dt = torch.randn(2, 4, dtype=D), torch.tensor([[0.3], [1.2]], dtype=D)
    expected = h
    for _ in range(3):
        expected = expected + dt / 3 * model.ode(expected)
    torch.testing.assert_close(model.evolve(h, dt), expected)
