"""The 1-D CNN baseline (baselines/cnn1d.py) against hand-computed numbers and a loop-by-loop reference.

The contract checks (shapes, padding, seeds, gradients) run on it from tests/test_models_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.cnn1d import CNN1D, same_padding


def tiny(**kwargs) -> CNN1D:
    """One linear convolution (kernel [1, 2], bias 0.5) and a dense layer [1, -1] over 2 steps."""
    model = (
        CNN1D(
            1,
            channels=[1],
            kernel_size=[2],
            span=2,
            units=1,
            dropout=0.0,
            activation="identity",
            dense_activation="identity",
            **kwargs,
        )
        .double()
        .eval()
    )
    with torch.no_grad():
        model.convs[0].weight.copy_(torch.tensor([[[1.0, 2.0]]]))
        model.convs[0].bias.fill_(0.5)
        model.dense.weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.dense.bias.zero_()
    return model


def test_same_padding_is_keras_layout():
    assert same_padding(10) == (4, 5) and same_padding(3) == (1, 1) and same_padding(2) == (0, 1)
    assert same_padding(1) == (0, 0)


def test_hand_computed_forward():
    x = torch.tensor([[[1.0], [2.0], [3.0]]], dtype=torch.float64)
    # kernel 2, `same`: 0 left, 1 right; conv = [1+4, 2+6, 3+0] + 0.5 = [5.5, 8.5, 3.5]
    # dense over the last 2 steps: 8.5 - 3.5 = 5
    assert tiny()(x).item() == pytest.approx(5.0)
    # every step: windows [0, 5.5], [5.5, 8.5], [8.5, 3.5] (a zero before the start)
    seq = tiny(return_sequences=True)(x)
    assert seq[0, :, 0].tolist() == pytest.approx([-5.5, -3.0, 5.0])
    # step 3 padded (junk 7): conv over [1, 2, 0] = [5.5, 2.5]; last valid step 2: 5.5 - 2.5 = 3
    junk = torch.tensor([[[1.0], [2.0], [7.0]]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    assert tiny()(junk, None, mask).item() == pytest.approx(3.0)


def reference(model: CNN1D, x: np.ndarray, lengths: list[int]) -> np.ndarray:
    """The network written out with loops (float64): per-feature or mixing convolutions with
    Keras `same` padding and tanh, then tanh(dense(flatten of the last span steps))."""
    convs = [(c.weight.detach().numpy(), c.bias.detach().numpy()) for c in model.convs]
    dense_w, dense_b = model.dense.weight.detach().numpy(), model.dense.bias.detach().numpy()
    out = []
    for sample, n in zip(x, lengths):
        series = [sample[:n, c : c + 1] for c in range(sample.shape[1])] if model.per_feature else [sample[:n]]
        maps = []
        for h in series:  # h: (n, channels in)
            for weight, bias in convs:  # weight (out, in, k)
                k = weight.shape[2]
                left = (k - 1) // 2
                new = np.zeros((n, weight.shape[0]))
                for i in range(n):
                    for j in range(k):
                        src = i - left + j
                        if 0 <= src < n:
                            new[i] += weight[:, :, j] @ h[src]
                h = np.tanh(new + bias)
            maps.append(h)
        maps = np.concatenate(maps, axis=1)  # (n, F): feature-major within a step
        window = np.zeros((model.span, maps.shape[1]))
        take = min(model.span, n)
        window[model.span - take :] = maps[n - take :]
        out.append(np.tanh(dense_w @ window.reshape(-1) + dense_b))
    return np.stack(out)


@pytest.mark.parametrize("per_feature", [True, False])
def test_forward_equals_loop_reference(per_feature):
    torch.manual_seed(0)
    model = (
        CNN1D(3, channels=[4, 4, 2], kernel_size=[10, 5, 3], span=6, units=5, per_feature=per_feature, dropout=0.5)
        .double()
        .eval()
    )
    lengths = [12, 4, 9]
    x = torch.randn(3, 12, 3, dtype=torch.float64)
    mask = torch.arange(12)[None] < torch.tensor(lengths)[:, None]
    got = model(x, None, mask).detach().numpy()
    expected = reference(model, x.numpy(), lengths)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # every step: the window ending at each sample's last valid step gives the same numbers
    model.return_sequences = True
    seq = model(x, None, mask).detach().numpy()
    np.testing.assert_allclose(seq[np.arange(3), np.array(lengths) - 1], expected, rtol=1e-10, atol=1e-12)
    assert model.output_dim == 5 and got.shape == (3, 5)


def test_li_et_al_fd001_shapes_and_parameters():
    """Their FD001 network on a 30 x 14 window: 4 x (10 filters, k10), 1 x (1 filter, k3), dense 100."""
    model = CNN1D(14, span=30, units=100)
    convs = (10 * 1 * 10 + 10) + 3 * (10 * 10 * 10 + 10) + (1 * 10 * 3 + 1)
    dense = 30 * 14 * 100 + 100
    assert sum(p.numel() for p in model.parameters()) == convs + dense
    assert model(torch.randn(2, 30, 14)).shape == (2, 100)


def test_dropout_only_while_training():
    torch.manual_seed(0)
    model = CNN1D(2, channels=[3, 1], kernel_size=3, span=4, units=8, dropout=0.5)
    x = torch.randn(4, 6, 2)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match=r"kernel_size=\[10, 3\] must give one value per layer"):
        CNN1D(2, channels=[10, 10, 1], kernel_size=[10, 3])
    with pytest.raises(ValueError, match=r"activation='sigmoid' is not valid"):
        CNN1D(2, activation="sigmoid")
    with pytest.raises(ValueError, match=r"channels=\[\] must list at least one layer"):
        CNN1D(2, channels=[])


def test_xavier_normal_init_with_zero_biases():
    torch.manual_seed(0)
    model = CNN1D(14, span=30, units=100)
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in (*model.convs, model.dense))
    # Xavier normal: std sqrt(2 / (fan_in + fan_out)); the dense layer has 42,000 weights
    assert float(model.dense.weight.detach().std()) == pytest.approx((2 / (420 + 100)) ** 0.5, rel=0.03)
    assert float(CNN1D(14, init="torch").dense.bias.detach().abs().max()) > 0
