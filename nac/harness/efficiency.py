"""The efficiency protocol's pieces (scripts/bench_efficiency.py): build a model by config name, time
its forward passes or training steps, and measure one point in this (fresh) process.

Timing, memory and the machine-load check are the package's single implementations
(:mod:`nac.bench.timing`, :mod:`nac.bench.probe`, :mod:`nac.bench.load`); ``ForeignLoad`` is
re-exported here for older imports."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir
from torch import nn

from nac.bench.load import ForeignLoad  # noqa: F401  (re-exported)
from nac.bench.probe import MemoryProbe
from nac.bench.timing import measure
from nac.harness.environment import PROJECT_ROOT
from nac.models.factory import make_sequence_model

CONFIG_DIR = PROJECT_ROOT / "configs"


def model_names() -> list[str]:
    """Every model config in configs/model/."""
    return sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


def build_sequence_model(
    name: str, input_dim: int, width: int, heads: int, seed: int = 0, overrides: Sequence[str] = ()
) -> nn.Module:
    """The sequence model of ``configs/model/<name>.yaml`` at the given width and head count."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "experiment=none",
                f"model={name}",
                f"dataset.width={width}",
                f"dataset.heads={heads}",
                f"seed={seed}",
                *overrides,
            ],
        )
    torch.manual_seed(seed)
    return make_sequence_model(cfg.model, input_dim)


@torch.no_grad()
def time_forward(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor | None, warmup: int = 1, repeats: int = 10
) -> list[float]:
    """Seconds of each of ``repeats`` forward passes (eval mode, no gradients) after ``warmup`` ones."""
    model.eval()
    return list(measure(lambda: model(x, t, None), warmup=warmup, repeats=repeats, label="forward").times)


def time_train_step(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor | None, warmup: int = 1, repeats: int = 10
) -> list[float]:
    """Seconds of each training step: forward, a linear head, MSE loss, backward, Adam step."""
    model.train()
    head = nn.Linear(model.output_dim, 1).to(x.device)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-4)
    target = torch.zeros(x.shape[0], 1, device=x.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(head(model(x, t, None)), target)
        loss.backward()
        optimizer.step()

    return list(measure(step, warmup=warmup, repeats=repeats, label="training step").times)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    return statistics.fmean(values), statistics.pstdev(values)


def measure_point(
    model: str,
    mode: str,
    length: int,
    batch: int,
    features: int,
    width: int,
    heads: int,
    warmup: int,
    repeats: int,
    device: str,
) -> dict:
    """One model at one (length, batch), in this process (run it in a fresh one: nac.bench.fresh):
    build, then time ``repeats`` forward passes or training steps after ``warmup``, with the memory
    increment over those passes. JSON-able."""
    from nac.models.predictor import count_parameters

    torch_device = torch.device(device)
    torch.manual_seed(0)
    net = build_sequence_model(model, features, width, heads).to(torch_device)
    x = torch.randn(batch, length, features, device=torch_device)
    t = torch.ones(batch, length, device=torch_device)
    row = {"model": model, "mode": mode, "length": length, "batch": batch, "params": count_parameters(net)}
    probe = MemoryProbe(torch_device)
    probe.start()
    timer = time_train_step if mode == "train" else time_forward
    times = timer(net, x, t, warmup=warmup, repeats=repeats)
    memory = probe.stop()
    mean, std = mean_std(times)
    row.update(
        mean_s=mean,
        std_s=std,
        seq_per_s=batch / mean,
        steps_per_s=batch * length / mean,
        peak_mb=memory.peak_mib,
        increment_mb=memory.increment_mib,
        memory_method=memory.method,
        status="ok",
    )
    return row
