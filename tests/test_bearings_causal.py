"""experiment=bearings_clean_causal: no model's prediction for row i reads a later row.

The clean bearings protocol labels every row of a window (per-step labels), so a model that reads row
i + 1 to predict row i sees the future. The check builds every campaign model as the runner does (stem,
sequence model, head) and changes the rows after a cut.
"""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from nac.harness.runner import build_model
from tests.conftest import ROOT

CAMPAIGN = ("nac", "nac_official", "ltc", "cfc", "lstm", "transformer")
INPUTS = 16  # the bearings' feature columns with Time kept


def predictor(experiment: str, model: str, *overrides: str) -> torch.nn.Module:
    """The full model a run of ``experiment`` builds, in float64, eval mode."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", f"model={model}", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, input_dim=INPUTS, output_dim=1, per_step=True).double().eval()


def outputs_before_and_after(model: torch.nn.Module, cut: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (B, L, 1) for a random window and for the same window with every row after ``cut`` changed."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, INPUTS, generator=g, dtype=torch.float64)
    later = x.clone()
    later[:, cut + 1 :] += 2.0 * torch.randn(3, 20 - cut - 1, INPUTS, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 20, dtype=torch.bool)
    with torch.no_grad():
        return model(x, None, mask), model(later, None, mask)


def test_the_experiment_is_bearings_clean_with_causal_models_and_stem():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        causal = compose("config", overrides=["experiment=bearings_clean_causal"], return_hydra_config=True)
        plain = compose("config", overrides=["experiment=bearings_clean"], return_hydra_config=True)
    assert causal.tag == "causal" and causal.dataset.causal is True and causal.model.causal is True
    assert causal.dataset.stem.padding == "causal" and plain.dataset.causal is False
    assert dict(causal.hydra.sweeper.params) == dict(plain.hydra.sweeper.params)
    assert causal.trainer == plain.trainer and causal.protocol == plain.protocol


@pytest.mark.parametrize("model", CAMPAIGN)
def test_every_campaign_model_ignores_later_rows(model):
    net = predictor("bearings_clean_causal", model)
    for cut in (0, 4, 13):
        before, after = outputs_before_and_after(net, cut)
        assert before.shape == (3, 20, 1)
        moved = (before[:, : cut + 1] - after[:, : cut + 1]).abs().max().item()
        assert moved < 1e-12, f"{model}: rows <= {cut} moved by {moved:.3g} when later rows changed"
        assert (before[:, cut + 1 :] - after[:, cut + 1 :]).abs().max().item() > 1e-6


@pytest.mark.parametrize("model", CAMPAIGN)
def test_the_default_clean_experiment_reads_later_rows(model):
    """The check above can fail: under bearings_clean every model reads row i + 1 (the centred stem),
    and the attention models the whole window."""
    before, after = outputs_before_and_after(predictor("bearings_clean", model), 4)
    assert (before[:, :5] - after[:, :5]).abs().max().item() > 1e-9
