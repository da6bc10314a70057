"""The NAC ``paper`` variant written out by plain loops from the NCP wirings (docs/NAC.md 1 and 3).

The reference builds its own ``ncps.wirings.AutoNCP`` wirings (the seeds the layer documents:
``wiring_seed + 0/1/2`` for the Q/K/V sensory maps, ``+ 3`` for the backbone), reads which
synapses exist from their adjacency matrices, and reads only weights and biases from the layer.
Every product, sum, tanh, sigmoid, softplus, softmax and the ``dt`` factor is written out on
Python floats; the top-K keys are chosen by sorting q.k scores by hand. Nothing in the reference
calls the layer's own ``gates()``, masks, projections or selection.
"""

from __future__ import annotations

import math

import pytest
import torch
from ncps.wirings import AutoNCP

from nac.layers.wiring import autoncp_units_for_inter
from tests.test_nac_layer import make, rand_x

F64 = torch.float64
SEED = 31


# ----------------------------------------------------------------------------- wirings by hand
def inter_wiring(n_inter: int, seed: int, in_dim: int, sparsity: float) -> AutoNCP:
    """The AutoNCP wiring without motor neurons and with the fewest units whose inter layer has
    ``n_inter`` neurons (docs/NAC.md 3: the sensory maps' synapses), built for ``in_dim`` inputs."""
    for units in range(3, 4 * n_inter + 8):
        wiring = AutoNCP(units, 0, sparsity_level=sparsity, seed=seed)
        if len(wiring.get_neurons_of_layer(0)) == n_inter:
            wiring.build(in_dim)
            return wiring
    raise AssertionError(f"no AutoNCP has {n_inter} inter neurons")


def masked_affine(x: list[float], linear, synapse, bias: bool = True) -> list[float]:
    """out_j = b_j + sum over existing synapses (i -> j) of W_ij x_i, by plain loops; W is (in, out)
    (an ``nn.Linear``'s (out, in) weight is transposed); ``bias=False``: the map must have none."""
    assert (linear.bias is not None) == bias, f"expected bias={bias}"
    weight = (linear.weight.T if isinstance(linear, torch.nn.Linear) else linear.weight).tolist()
    bias = [0.0] * len(weight[0]) if linear.bias is None else linear.bias.tolist()
    return [bias[j] + sum(weight[i][j] * x[i] for i in range(len(x)) if synapse(i, j)) for j in range(len(bias))]


def backbone_by_hand(layer, pair: list[float], units: int, sparsity: float, dense: bool, act=math.tanh) -> list[float]:
    """inter -> command -> motor(2) with ``act`` between layers, synapses from the wiring's adjacency."""
    wiring = AutoNCP(units, 2, sparsity_level=sparsity, seed=SEED + 3)
    wiring.build(len(pair))
    inter, command, motor = (wiring.get_neurons_of_layer(i) for i in range(3))
    sens, adj = wiring.sensory_adjacency_matrix, wiring.adjacency_matrix

    def synapse(matrix, sources, targets):
        return lambda i, j: dense or matrix[i if sources is None else sources[i], targets[j]] != 0

    lin = layer.backbone.layers
    h = [act(v) for v in masked_affine(pair, lin[0], synapse(sens, None, inter))]
    h = [act(v) for v in masked_affine(h, lin[1], synapse(adj, inter, command))]
    return masked_affine(h, lin[2], synapse(adj, command, motor))


def logit_by_hand(phi: float, w: float, t: float, mode: str, steps: int, delta_t: float) -> float:
    if mode == "exact":
        return phi / w * (1.0 - math.exp(-w * t))
    if mode == "steady":
        return phi / w
    a = 0.0
    for _ in range(steps):  # explicit Euler from a(0) = 0
        a += delta_t * (-w * a + phi)
    return a


def sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


def time_by_hand(t, cfg: dict, b: int, i: int, j: int, elapsed: list[float], stamps: list[float]) -> float:
    """The ODE time of pair (i, j) of sample b for a time input t that is None, a scalar, (B,) or (B, T)."""
    if t is None or cfg["time_input"] == "constant":
        return cfg.get("t_const", 1.0)
    if t.dim() == 0:
        return float(t)
    if t.dim() == 1:
        return float(t[b])
    return elapsed[i] if cfg["time_input"] == "step" else abs(stamps[i] - stamps[j])


# ----------------------------------------------------------------------------- the layer by hand
def nac_by_hand(
    layer,
    cfg: dict,
    x: torch.Tensor,
    t: torch.Tensor | None,
    mask: torch.Tensor | None,
    act=math.tanh,
    dense_backbone: bool | None = None,
    dt: float | None = None,
):
    """(outputs (B, T, d_model) as nested lists, weights {(b, h, i): {key j: weight}})."""
    b_size, length, c_in = x.shape
    d_model, heads = layer.d_model, layer.num_heads
    depth = d_model // heads
    dense = cfg.get("dense", False)
    dense_backbone = dense if dense_backbone is None else dense_backbone
    dt = cfg["dt"] if dt is None else dt
    units = cfg.get("backbone_units") or 4 * 2 * depth + 2
    sparsity, use_bias = cfg.get("sparsity", 0.5), cfg.get("use_bias", True)
    ok = [[True] * length for _ in range(b_size)] if mask is None else mask.tolist()

    qkv = []
    for n, proj in enumerate((layer.q_proj, layer.k_proj, layer.v_proj)):
        if dense:
            synapse = lambda i, j: True  # noqa: E731
        else:
            wiring = inter_wiring(d_model, SEED + n, c_in, sparsity)
            inter = wiring.get_neurons_of_layer(0)
            synapse = (lambda m, nodes: lambda i, j: m[i, nodes[j]] != 0)(wiring.sensory_adjacency_matrix, inter)
        qkv.append(
            [[masked_affine(x[b, s].tolist(), proj, synapse, use_bias) for s in range(length)] for b in range(b_size)]
        )
    q, k, v = qkv

    out, weights = [], {}
    for b in range(b_size):
        elapsed = [float(t[b, s]) if (t is not None and t.dim() == 2 and ok[b][s]) else 0.0 for s in range(length)]
        stamps = [sum(elapsed[: s + 1]) for s in range(length)]
        rows = []
        for i in range(length):
            concat = []
            for h in range(heads):
                sl = slice(h * depth, (h + 1) * depth)
                qi = q[b][i][sl]
                allowed = [j for j in range(length) if ok[b][j] and (j <= i or not cfg.get("causal"))]
                score = {j: sum(a * c for a, c in zip(qi, k[b][j][sl])) for j in allowed}
                chosen = allowed if cfg.get("pairwise") else sorted(allowed, key=lambda j: -score[j])[: cfg["topk"]]
                logits = {}
                for j in chosen:
                    pair = qi + k[b][j][sl]
                    motor = backbone_by_hand(layer, pair, units, sparsity, dense_backbone, act)
                    phi = sigmoid(motor[0])
                    w = math.log1p(math.exp(motor[1])) + cfg.get("tau_epsilon", 1e-6)
                    t_ode = time_by_hand(t, cfg, b, i, j, elapsed, stamps)
                    if cfg.get("time_interpolation"):  # docs/NAC.md 2.3: t_ij = sigmoid(a(u) t + b(u))
                        a_u, b_u = (
                            masked_affine(pair, lin, lambda *_: True)[0] for lin in (layer.time_a, layer.time_b)
                        )
                        t_ode = sigmoid(a_u * t_ode + b_u)
                    logits[j] = logit_by_hand(
                        phi, w, t_ode, cfg.get("mode", "exact"), cfg.get("euler_steps", 5), cfg.get("delta_t", 0.5)
                    )
                total = sum(math.exp(a) for a in logits.values())
                wts = {j: math.exp(a) / total for j, a in logits.items()}
                weights[b, h, i] = wts
                concat += [dt * sum(wts[j] * v[b][j][sl][d] for j in wts) for d in range(depth)]
            y = masked_affine(concat, layer.out_proj, lambda *_: True, use_bias)
            rows.append([math.tanh(a) for a in y] if cfg.get("activation") == "tanh" else y)
        out.append(rows)
    return out, weights


def layer_weights(att, b: int, h: int, i: int) -> dict[int, float]:
    """The layer's weights of query i as {key index: weight}, valid selections only."""
    idx = att.indices.expand(*att.weights.shape)[b, h, i].tolist()
    ok = att.valid.expand(*att.weights.shape)[b, h, i].tolist()
    return {j: float(w) for j, w, v in zip(idx, att.weights[b, h, i].tolist(), ok) if v}


MASK = torch.tensor(
    [
        [False, True, True, False, True, True],  # a leading gap: under `causal` query 0 sees no key
        [True, True, True, True, False, False],
    ]
)
CASES = {  # every case has dt != 1; times are (B, T) unless TIME_SHAPE says otherwise
    "exact_pair_topk": dict(topk=3, mode="exact", time_input="pair", dt=0.37, sparsity=0.3),
    "exact_step_fc": dict(topk=2, mode="exact", time_input="step", dense=True, dt=2.5, backbone_units=12),
    "euler_pair_causal": dict(
        topk=3, mode="euler", euler_steps=4, delta_t=0.3, time_input="pair", causal=True, dt=0.6, tau_epsilon=1e-3
    ),
    "steady_constant_tanh_nobias": dict(
        topk=4,
        mode="steady",
        time_input="constant",
        t_const=0.7,
        dt=1.7,
        activation="tanh",
        backbone_units=11,
        use_bias=False,
    ),
    "exact_constant_pairwise": dict(topk=2, mode="exact", time_input="constant", t_const=0.45, pairwise=True, dt=0.8),
    "exact_pair_pairwise_causal": dict(topk=2, mode="exact", time_input="pair", pairwise=True, causal=True, dt=3.0),
    "exact_per_sample_time_interpolated": dict(
        topk=3, mode="exact", time_input="step", time_interpolation=True, dt=0.9, sparsity=0.7
    ),
    "exact_pair_top1": dict(topk=1, mode="exact", time_input="pair", dt=1.9),
    "exact_scalar_time_fc_nobias": dict(topk=3, mode="exact", time_input="pair", dense=True, use_bias=False, dt=1.3),
}
TIME_SHAPE = {"exact_per_sample_time_interpolated": "B", "exact_scalar_time_fc_nobias": "scalar"}


def build(cfg: dict):
    return make(
        input_dim=3,
        d_model=4,
        num_heads=2,
        seed=7,
        variant="paper",
        wiring_seed=SEED,
        **{"return_sequences": True, "return_attention": True, **cfg},
    )


def inputs(seed: int = 7, shape: str = "BT"):
    x = rand_x(2, 6, 3, seed=seed)
    t = 0.2 + 1.5 * torch.rand(2, 6, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x, {"BT": t, "B": t[:, 0], "scalar": t[0, 0]}[shape]


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_paper_layer_equals_plain_loop_reference(case, with_mask):
    cfg = CASES[case]
    layer = build(cfg)
    x, t = inputs(shape=TIME_SHAPE.get(case, "BT"))
    mask = MASK if with_mask else None
    with torch.no_grad():
        out, att = layer(x, t, mask)
    ref_out, ref_w = nac_by_hand(layer, cfg, x, t, mask)
    torch.testing.assert_close(out, torch.tensor(ref_out, dtype=F64), rtol=1e-10, atol=1e-12)
    for (b, h, i), want in ref_w.items():
        got = layer_weights(att, b, h, i)
        assert got.keys() == want.keys(), (b, h, i)
        for j in want:
            assert got[j] == pytest.approx(want[j], rel=1e-10, abs=1e-13), (b, h, i, j)
    # every selection the layer did not mark valid carries no weight
    assert (att.weights[~att.valid.expand_as(att.weights)] == 0).all()


@pytest.mark.parametrize("case", ["exact_pair_topk", "euler_pair_causal", "exact_step_fc"])
def test_reference_tells_planted_bugs_apart(case):
    """The comparison above is not vacuous: dropping tanh, the NCP masks or dt changes the outputs."""
    cfg = CASES[case]
    layer = build(cfg)
    x, t = inputs()
    good = torch.tensor(nac_by_hand(layer, cfg, x, t, MASK)[0])
    planted = [nac_by_hand(layer, cfg, x, t, MASK, act=lambda a: a)[0], nac_by_hand(layer, cfg, x, t, MASK, dt=1.0)[0]]
    if not cfg.get("dense"):
        planted.append(nac_by_hand(layer, cfg, x, t, MASK, dense_backbone=True)[0])
    for other in planted:
        assert (good - torch.tensor(other)).abs().max() > 1e-4


@pytest.mark.parametrize("case", ["exact_pair_topk", "exact_constant_pairwise"])
def test_last_valid_step_equals_reference(case):
    cfg = CASES[case]
    layer = build(cfg)
    last = build({**cfg, "return_sequences": False})  # same seeds: same weights
    x, t = inputs(seed=8)
    with torch.no_grad():
        out, _ = last(x, t, MASK)
    ref_out, _ = nac_by_hand(layer, cfg, x, t, MASK)
    want = torch.tensor([ref_out[0][5], ref_out[1][3]], dtype=F64)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("units,sparsity", [(None, 0.5), (11, 0.3)])
def test_backbone_layer_sizes_follow_the_wiring(units, sparsity):
    layer = build({"backbone_units": units, "sparsity": sparsity})
    wiring = AutoNCP(units or 18, 2, sparsity_level=sparsity, seed=SEED + 3)  # default: 4 * (2 * depth) + 2
    sizes = (4, *(len(wiring.get_neurons_of_layer(i)) for i in range(3)))
    assert layer.backbone.sizes == sizes
    assert [tuple(lin.weight.shape) for lin in layer.backbone.layers] == list(zip(sizes[:-1], sizes[1:]))


def test_autoncp_units_for_inter_is_the_smallest_size_with_that_inter_layer():
    for n in range(2, 40):
        units = autoncp_units_for_inter(n)
        sizes = {u: len(AutoNCP(u, 0, sparsity_level=0.5).get_neurons_of_layer(0)) for u in range(3, units + 1)}
        assert sizes[units] == n and n not in {sizes[u] for u in range(3, units)}, n
    with pytest.raises(ValueError, match="no AutoNCP size gives exactly 1 inter neurons"):
        autoncp_units_for_inter(1)
