"""Efficiency measurement shared by the benchmark scripts: build a model by config name, time its
forward passes, and say whether the machine was idle meanwhile."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch import nn

from nac.harness.environment import PROJECT_ROOT
from nac.harness.runner import make_sequence_model

CONFIG_DIR = PROJECT_ROOT / "configs"


def model_names() -> list[str]:
    """Every model config in configs/model/."""
    return sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))


def build_sequence_model(name: str, input_dim: int, width: int, heads: int, seed: int = 0,
                         overrides: Sequence[str] = ()) -> nn.Module:
    """The sequence model of ``configs/model/<name>.yaml`` at the given width and head count."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=none", f"model={name}", f"dataset.width={width}",
                                           f"dataset.heads={heads}", f"seed={seed}", *overrides])
    torch.manual_seed(seed)
    return make_sequence_model(cfg.model, input_dim)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_forward(model: nn.Module, x: torch.Tensor, t: torch.Tensor | None, warmup: int = 1,
                 repeats: int = 10) -> list[float]:
    """Seconds of each of ``repeats`` forward passes (eval mode, no gradients) after ``warmup`` ones."""
    model.eval()
    for _ in range(warmup):
        model(x, t, None)
    _sync(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x, t, None)
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


def time_train_step(model: nn.Module, x: torch.Tensor, t: torch.Tensor | None, warmup: int = 1,
                    repeats: int = 10) -> list[float]:
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

    for _ in range(warmup):
        step()
    _sync(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    return statistics.fmean(values), statistics.pstdev(values)


class ForeignLoad:
    """CPU time that other processes used on this machine between start() and stop().

    Busy jiffies from /proc/stat minus this process's (and its waited-for children's) CPU
    time from os.times(). Timings taken while another process is busy are not comparable:
    with torch's default thread count every parallel op waits for a descheduled thread.
    """

    def __init__(self) -> None:
        self.start_busy, self.start_own, self.start_wall = self._busy(), self._own(), time.perf_counter()

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal minus idle and iowait
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def report(self) -> str:
        busy = self._busy()
        wall = time.perf_counter() - self.start_wall
        if busy is None or self.start_busy is None or wall <= 0:
            return "machine load: unknown (no /proc/stat)"
        foreign = max(0.0, (busy - self.start_busy) - (self._own() - self.start_own))
        share = foreign / wall
        text = (f"machine load: other processes used {foreign:.1f} CPU-s in {wall:.1f} s "
                f"({share:.2f} cores on average, of {os.cpu_count()})")
        if share > 0.1:
            text += "  WARNING: the machine was not idle; timings are inflated"
        return text
