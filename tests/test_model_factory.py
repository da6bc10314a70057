"""The one model factory (nac/models/factory.py): what the runner, the efficiency benchmark and the
contract tests build."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from torch import nn

from nac.harness import efficiency, runner
from nac.models.factory import build_predictor, make_sequence_model, model_name
from tests.conftest import CONFIGS

MODEL_STEMS = sorted(p.stem for p in Path(CONFIGS, "model").glob("*.yaml"))


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


def _compose(*overrides: str, hydra: bool = True):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def test_a_model_is_named_by_its_config_file():
    """No model config repeats its file name; the composed config's model= choice is the name."""
    assert len(MODEL_STEMS) > 20
    for stem in MODEL_STEMS:
        cfg = _compose("experiment=none", f"model={stem}")
        assert "name" not in cfg.model and model_name(cfg) == stem, stem


def test_a_config_that_sets_model_name_keeps_it():
    assert model_name(_compose("experiment=none", "model=cfc", "+model.name=my_cfc")) == "my_cfc"
    assert model_name(_compose("experiment=none", "model=cfc", "+model.name=my_cfc", hydra=False)) == "my_cfc"


def test_inside_a_hydra_app_the_name_is_the_apps_model_choice():
    """The CLI's job config has no ``hydra`` node: the name comes from the running app's HydraConfig."""
    app = _compose("experiment=none", "model=lstm")
    job = _compose("experiment=none", "model=lstm", hydra=False)
    try:
        HydraConfig.instance().set_config(app)
        assert model_name(job) == "lstm"
        assert model_name(_compose("experiment=none", "model=gru")) == "gru"  # its own hydra node first
    finally:
        HydraConfig.instance().cfg = None


def test_a_config_without_a_name_or_hydra_choice_is_refused():
    assert not HydraConfig.initialized()
    with pytest.raises(ValueError, match=r"no model.name and no Hydra model choice; compose it with .*return_hydra"):
        model_name(_compose("experiment=none", "model=cfc", hydra=False))
