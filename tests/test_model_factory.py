"""The one model factory (nac/models/factory.py): what the runner, the efficiency benchmark and the
contract tests build."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from nac.harness import efficiency, runner
from nac.models.factory import build_predictor, make_sequence_model
from tests.conftest import CONFIGS


class NoOutputDim(nn.Module):
    """Breaks the contract: no ``output_dim``."""

    def __init__(self, input_dim: int):
        super().__init__()
        self.input_dim = input_dim


def _cfg(model: str = "lstm"):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("config", overrides=[f"model={model}", "dataset.width=8", "dataset.heads=2"])


def test_model_without_output_dim_is_refused():
    node = OmegaConf.create({"_target_": f"{__name__}.NoOutputDim", "_partial_": True, "name": "broken"})
    with pytest.raises(TypeError, match="'broken' does not expose output_dim"):
        make_sequence_model(node, 3)


def test_predictor_returns_every_step_only_with_per_step_labels():
    cfg = _cfg()
    x = torch.randn(2, 7, 3)
    torch.manual_seed(0)
    last = build_predictor(cfg, input_dim=3, output_dim=5).eval()
    torch.manual_seed(0)
    every = build_predictor(cfg, input_dim=3, output_dim=5, per_step=True).eval()
    with torch.no_grad():
        out, seq = last(x), every(x)
    assert out.shape == (2, 5) and seq.shape == (2, 4, 5)  # the digits stem pools 7 steps to 4
    torch.testing.assert_close(seq[:, -1], out, rtol=1e-5, atol=1e-6)  # same weights: last step = output


def test_runner_and_efficiency_build_with_the_factory():
    assert runner.build_model is build_predictor and runner.make_sequence_model is make_sequence_model
    assert efficiency.make_sequence_model is make_sequence_model
    torch.manual_seed(0)
    direct = make_sequence_model(_cfg("cfc").model, 4)
    bench = efficiency.build_sequence_model("cfc", input_dim=4, width=8, heads=2)
    assert [p.shape for p in direct.parameters()] == [p.shape for p in bench.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(direct.parameters(), bench.parameters()))
