"""The trainer's optimizer implementation (foreach by default, fused opt-in) gives the numbers of torch's
plain per-parameter AdamW: bitwise for the default, to round-off for ``fused=true``."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from nac.harness.metrics import loss_fn
from nac.harness.runner import build_model
from nac.harness.train import fit, make_optimizer

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
N_STEPS = 12


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return compose(config_name="config", overrides=["experiment=emnist_clean", "model=nac_official", *overrides])


def _batches(n: int, seed: int = 0) -> list[dict]:
    """E-MNIST-shaped batches (32 images of 28 rows of 28 pixels, 47 classes), random."""
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "x": torch.rand(32, 28, 28, generator=g),
            "t": torch.ones(32, 28),
            "mask": torch.ones(32, 28, dtype=torch.bool),
            "y": torch.randint(0, 47, (32,), generator=g),
        }
        for _ in range(n)
    ]


def _model(cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg, 28, 47)


def _reference(model: torch.nn.Module, batches: list[dict]) -> torch.nn.Module:
    """fit's step with torch's plain for-loop AdamW at the paper's settings (lr 1e-3, weight decay 0.004)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.004, foreach=False)
    model.train()
    for batch in batches:
        loss = loss_fn("classification", model(batch["x"], batch["t"], batch["mask"]), batch["y"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def _fit(model: torch.nn.Module, cfg, batches: list[dict]) -> torch.nn.Module:
    fit(
        model,
        batches,
        batches[:1],
        device=torch.device("cpu"),
        task="classification",
        metric="accuracy",
        mode="max",
        epochs=1,
        optimizer_factory=instantiate(cfg.trainer.optimizer),
        progress=False,
    )
    return model


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_default_trainer_optimizer_is_foreach_and_bitwise_equal_to_the_for_loop() -> None:
    cfg = _cfg()
    model, batches = _model(cfg), _batches(N_STEPS)
    reference = _reference(copy.deepcopy(model), batches)
    assert make_optimizer(instantiate(cfg.trainer.optimizer), model.parameters()).defaults["foreach"] is True
    trained = _fit(model, cfg, batches)
    assert _max_diff(trained, reference) == 0.0
    assert all(torch.equal(p, q) for p, q in zip(trained.parameters(), reference.parameters()))


def test_fused_opt_in_is_fused_and_equal_to_round_off() -> None:
    cfg = _cfg("+trainer.optimizer.fused=true")
    model, batches = _model(cfg), _batches(N_STEPS)
    reference = _reference(copy.deepcopy(model), batches)
    optimizer = make_optimizer(instantiate(cfg.trainer.optimizer), model.parameters())
    assert optimizer.defaults["fused"] is True and not optimizer.defaults["foreach"]
    # round-off (about 1e-7 a step) grows through training; a real difference moves weights by ~lr a step (1e-3)
    assert 0.0 < _max_diff(_fit(model, cfg, batches), reference) < 1e-4


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (torch.optim.Adam, {"lr": 1e-3}),
        (torch.optim.RMSprop, {"lr": 1e-3}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}),
    ],
)
def test_other_torch_optimizers_get_foreach_with_the_same_weights(cls, kwargs) -> None:
    cfg = _cfg()
    model, batches = _model(cfg), _batches(4)
    weights = []
    for optimizer in (
        make_optimizer(functools.partial(cls, **kwargs), model.parameters()),
        cls(copy.deepcopy(model).parameters(), foreach=False, **kwargs),
    ):
        params = optimizer.param_groups[0]["params"]
        g = torch.Generator().manual_seed(1)
        for _ in range(len(batches)):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            optimizer.step()
        weights.append([p.detach().clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_a_config_that_sets_foreach_is_left_as_it_is() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert (
        make_optimizer(functools.partial(torch.optim.AdamW, lr=1e-3, foreach=False), params).defaults["foreach"]
        is False
    )
    assert (
        make_optimizer(functools.partial(torch.optim.LBFGS, lr=1.0), params).defaults["lr"] == 1.0
    )  # takes no foreach
