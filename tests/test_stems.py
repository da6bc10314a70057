"""Stems keep the contract: time and mask resampled correctly, padding never changes valid outputs."""

import torch

from nac.models.stems import ConvStem, LinearStem


def test_conv_stem_resamples_time_and_mask_per_stride_block():
    stem = ConvStem(1, [3, 3], kernel_size=3, stride=[2, 1])
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, True, False]])
    x, t_out, m_out = stem(torch.randn(1, 6, 1), t, mask)
    assert x.shape == (1, 3, 3)
    assert t_out.tolist() == [[3.0, 7.0, 5.0]]  # elapsed time summed per block: observed at block end
    assert m_out.tolist() == [[True, True, True]]
    assert x[0].abs().sum() > 0


def test_conv_stem_padding_does_not_change_valid_outputs():
    torch.manual_seed(0)
    stem = ConvStem(2, [4, 4], kernel_size=5, stride=[2, 1])
    x, t = torch.randn(1, 29, 2), torch.rand(1, 29)
    ref, t_ref, _ = stem(x, t, torch.ones(1, 29, dtype=torch.bool))
    x_pad = torch.cat([x, torch.randn(1, 7, 2)], 1)  # junk in the padding
    t_pad = torch.cat([t, torch.rand(1, 7)], 1)
    mask = torch.arange(36)[None] < 29
    out, t_out, m_out = stem(x_pad, t_pad, mask)
    n = ref.shape[1]
    torch.testing.assert_close(out[:, :n], ref)
    torch.testing.assert_close(t_out[:, :n], t_ref)
    assert m_out.sum() == n and out[:, n:].abs().sum() == 0


def test_linear_stem_keeps_grid():
    stem = LinearStem(3, 5)
    t, mask = torch.rand(2, 4), torch.ones(2, 4, dtype=torch.bool)
    x, t_out, m_out = stem(torch.randn(2, 4, 3), t, mask)
    assert x.shape == (2, 4, 5) and t_out is t and m_out is mask


def test_conv_stem_with_stride_equal_to_kernel_equals_torch_conv1d():
    """The reshape + linear path of non-overlapping windows (the paper's E-MNIST stem: kernel 5, stride
    5) against torch's own Conv1d on the same padded input: outputs and gradients, float64."""
    torch.manual_seed(0)
    stem = ConvStem(2, [6, 4], kernel_size=5, stride=5).double()
    x = torch.randn(3, 61, 2, dtype=torch.float64, requires_grad=True)  # 61: right padding in both layers
    mask = torch.arange(61)[None] < torch.tensor([[61], [40], [13]])

    def reference(inputs):
        h = (inputs * mask[..., None]).transpose(1, 2)
        m = mask
        for conv in stem.convs:
            length = h.shape[-1]
            _, m, out_len = ConvStem._resample(None, m, length, 5)
            h = (
                torch.relu(
                    torch.nn.functional.conv1d(
                        torch.nn.functional.pad(h, (2, max(0, (out_len - 1) * 5 + 5 - length - 2))),
                        conv.weight,
                        conv.bias,
                        stride=5,
                    )
                )
                * m[:, None, :]
            )
        return h.transpose(1, 2)

    out, _, _ = stem(x, None, mask)
    expected = reference(x)
    assert out.shape == expected.shape == (3, 3, 4)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), [x, *stem.parameters()])
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *stem.parameters()])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_causal_stem_output_ignores_later_inputs_and_matches_a_plain_causal_convolution():
    """padding=causal: changing inputs after step i leaves outputs 0..i unchanged (the left-padded
    stem changes output i - 1 too), and the output equals conv1d over a (k - 1)-step left pad."""
    torch.manual_seed(0)
    stem = ConvStem(3, [5, 4], kernel_size=3, stride=1, padding="causal").double()
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    later = x.clone()
    later[:, 7:] = torch.randn(2, 5, 3, dtype=torch.float64)
    out, later_out = stem(x)[0], stem(later)[0]
    assert out.shape == (2, 12, 4)
    torch.testing.assert_close(later_out[:, :7], out[:, :7], rtol=0, atol=0)
    assert (later_out[:, 7:] - out[:, 7:]).abs().amax() > 0

    h = x.transpose(1, 2)
    for conv in stem.convs:
        h = torch.relu(torch.nn.functional.conv1d(torch.nn.functional.pad(h, (2, 0)), conv.weight, conv.bias))
    torch.testing.assert_close(out, h.transpose(1, 2))

    centred = ConvStem(3, [5, 4], kernel_size=3, stride=1)
    centred.load_state_dict(stem.float().state_dict())
    assert (centred(later.float())[0][:, 6] - centred(x.float())[0][:, 6]).abs().amax() > 0


def test_causal_stem_refuses_a_stride():
    import pytest

    with pytest.raises(ValueError, match="padding=causal needs stride 1"):
        ConvStem(2, [4, 4], kernel_size=3, stride=[1, 2], padding="causal")
