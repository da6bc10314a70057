"""Every model config in configs/model/ follows the sequence-model contract (nac/contract.py), each built
by the package's model factory (nac/models/factory.py), as the runner and the efficiency benchmark build it.

New models are picked up automatically: adding a baseline file and its config puts it under these
checks. Each check compares against an independent computation (the same samples run one at a time,
unpadded), never the model against itself on the same input.
"""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nac.models.factory import make_sequence_model
from tests.conftest import CONFIGS

MODELS = sorted(p.stem for p in (Path(CONFIGS) / "model").glob("*.yaml"))
INPUT_DIM = 6
#: parameters whose gradient is exactly zero at initialisation, by design
ZERO_GRAD_AT_INIT = {"nac_official": {"gate_out_w"}}


def build(name: str, seed: int = 0, **overrides):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["experiment=none", f"model={name}", "dataset.width=16", "dataset.heads=4", f"seed={seed}"],
        )
    torch.manual_seed(seed)
    return make_sequence_model(cfg.model, INPUT_DIM, **overrides).double()


def batch(lengths=(7, 4, 9), seed=1):
    g = torch.Generator().manual_seed(seed)
    length = max(lengths)
    x = torch.randn(len(lengths), length, INPUT_DIM, generator=g, dtype=torch.float64)
    t = torch.rand(len(lengths), length, generator=g, dtype=torch.float64) + 0.1
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    return x, t, mask


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_output_dim(name):
    model = build(name).eval()
    x, t, mask = batch()
    out = model(x, t, mask)
    assert out.shape == (3, model.output_dim) and model.input_dim == INPUT_DIM
    seq = build(name, return_sequences=True).eval()(x, t, mask)
    assert seq.shape == (3, 9, model.output_dim)
    assert torch.isfinite(out).all() and torch.isfinite(seq).all()


@pytest.mark.parametrize("name", MODELS)
def test_padded_batch_equals_samples_run_alone(name):
    """Padding does not change valid outputs, and each sample uses its own times."""
    model = build(name).eval()
    seq_model = build(name, return_sequences=True).eval()
    x, t, mask = batch()
    x = torch.where(mask[..., None], x, torch.full_like(x, 7.0))  # junk in the padding
    with torch.no_grad():
        out, seq = model(x, t, mask), seq_model(x, t, mask)
        alone = [
            (model(x[i : i + 1, :n], t[i : i + 1, :n], None), seq_model(x[i : i + 1, :n], t[i : i + 1, :n], None), n)
            for i, n in enumerate(mask.sum(1).tolist())
        ]
    same = all(
        torch.allclose(out[i : i + 1], last, rtol=1e-6, atol=1e-8)
        and torch.allclose(seq[i : i + 1, :n], full, rtol=1e-6, atol=1e-8)
        for i, (last, full, n) in enumerate(alone)
    )
    assert same == model.padding_invariant, (
        f"padding_invariant={model.padding_invariant} but padding "
        f"{'did not change' if same else 'changed'} valid outputs"
    )


@pytest.mark.parametrize("name", MODELS)
def test_time_input_changes_output_exactly_when_model_uses_time(name):
    model = build(name).eval()
    x, t, mask = batch()
    with torch.no_grad():
        a = model(x, t, mask)
        b = model(x, t * 2.5 + 0.3, mask)
    changed = not torch.allclose(a, b, rtol=1e-6, atol=1e-8)
    assert changed == model.uses_time, f"uses_time={model.uses_time} but time {'did' if changed else 'did not'} matter"


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    x, t, mask = batch()
    model(x, t, mask).pow(2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    zero = {n for n, p in model.named_parameters() if p.grad.abs().max() == 0}
    assert zero <= ZERO_GRAD_AT_INIT.get(name, set()), f"zero gradient for {sorted(zero)}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_model(name):
    x, t, mask = batch()
    with torch.no_grad():
        a = build(name, seed=3).eval()(x, t, mask)
        b = build(name, seed=3).eval()(x, t, mask)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_no_time_input_is_accepted(name):
    x, _, mask = batch()
    out = build(name).eval()(x, None, mask)
    assert out.shape == (3, 16) and torch.isfinite(out).all()
