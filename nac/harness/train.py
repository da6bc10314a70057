"""Training with model selection on the validation split, and evaluation."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from nac.harness.metrics import MetricAccumulator, flatten_steps, loss_fn


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int
    best_val: dict[str, float]
    epoch_times_s: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: nn.Module, batch: dict, use_time: bool = True) -> torch.Tensor:
    return model(batch["x"], batch["t"] if use_time else None, batch["mask"])


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, task: str, per_step: bool, target_scale: float = 1.0
) -> dict:
    """Metrics of ``model`` over a loader (eval mode, no gradients); regression errors in target units
    times ``target_scale``."""
    model.eval()
    acc = MetricAccumulator(task, target_scale)
    for batch in loader:
        batch = _to_device(batch, device)
        pred, y = flatten_steps(_forward(model, batch), batch["y"], batch["mask"], per_step)
        acc.update(pred, y)
    return acc.result()


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def make_scheduler(scheduler_factory: Callable, optimizer: torch.optim.Optimizer, mode: str):
    """The scheduler for ``optimizer``; ReduceLROnPlateau gets ``mode`` (max/min) from the dataset's metric."""
    is_plateau = (
        isinstance(scheduler_factory, functools.partial)
        and scheduler_factory.func is torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    return scheduler_factory(optimizer, mode=mode) if is_plateau else scheduler_factory(optimizer)


def make_optimizer(optimizer_factory: Callable, params) -> torch.optim.Optimizer:
    """The optimizer of ``params``; a torch optimizer whose config sets neither ``foreach`` nor ``fused`` gets
    ``foreach=True``.

    Optimisation: on CPU torch defaults to its per-parameter Python loop; the foreach implementation does the
    same arithmetic in a few multi-tensor calls (bitwise the same weights, tests/test_optimizer_impl.py) and
    its step was 1.3-1.5x faster on the E-MNIST official model. ``fused=true`` (opt-in) is faster still
    but rounds differently.
    """
    func = optimizer_factory.func if isinstance(optimizer_factory, functools.partial) else optimizer_factory
    keywords = optimizer_factory.keywords if isinstance(optimizer_factory, functools.partial) else {}
    takes_foreach = (
        isinstance(func, type)
        and issubclass(func, torch.optim.Optimizer)
        and "foreach" in inspect.signature(func).parameters
    )
    if takes_foreach and not {"foreach", "fused"} & keywords.keys():
        return optimizer_factory(params, foreach=True)
    return optimizer_factory(params)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    device: torch.device,
    task: str,
    metric: str,
    mode: str,
    epochs: int,
    optimizer_factory: Callable,
    scheduler_factory: Callable | None = None,
    early_stopping_patience: int | None = None,
    grad_clip: float | None = None,
    limit_train_batches: int | None = None,
    per_step: bool = False,
    target_scale: float = 1.0,
    progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train for ``epochs``, keep the weights of the best validation epoch, load them back.

    Raises :class:`Diverged` when the loss is not finite.
    """
    optimizer = make_optimizer(optimizer_factory, model.parameters())
    scheduler = make_scheduler(scheduler_factory, optimizer, mode) if scheduler_factory is not None else None
    best_state, best_val, best_epoch, best_score, stale = None, {}, -1, None, 0
    result = FitResult(best_epoch=-1, best_val={})
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=None if progress else True,
            dynamic_ncols=True,
        )
        for step, batch in enumerate(bar):
            if limit_train_batches is not None and step >= limit_train_batches:
                break
            batch = _to_device(batch, device)
            pred, y = flatten_steps(_forward(model, batch), batch["y"], batch["mask"], per_step)
            loss = loss_fn(task, pred, y)
            if not torch.isfinite(loss):
                raise Diverged(
                    f"training loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}; "
                    "lower trainer.optimizer.lr or set trainer.grad_clip"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            # refresh=False: drawn at the bar's next throttled update, not redrawn on every step (28 -> 3 us a step)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.epoch_times_s.append(time.perf_counter() - start)
        val = evaluate(model, val_loader, device, task, per_step, target_scale)
        entry = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            **{f"val_{k}": v for k, v in val.items()},
            "epoch_time_s": result.epoch_times_s[-1],
        }
        result.history.append(entry)
        if on_epoch_end is not None:
            on_epoch_end(entry)
        score = val[metric]
        if math.isfinite(score) and _improved(score, best_score, mode):
            best_score, best_val, best_epoch, stale = score, val, epoch + 1, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            stale += 1
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            else:
                scheduler.step()
        if early_stopping_patience is not None and stale > early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.best_epoch, result.best_val = best_epoch, best_val
    return result


@torch.no_grad()
def latency_per_sample(model: nn.Module, dataset, device: torch.device, n_samples: int = 32, warmup: int = 2) -> float:
    """Mean seconds for one forward pass at batch size 1 over up to ``n_samples`` samples."""
    model.eval()
    n = min(n_samples, len(dataset))
    if n == 0:
        return float("nan")
    items = [dataset[i] for i in range(n)]
    batches = [{k: torch.as_tensor(v)[None].to(device) for k, v in item.items()} for item in items]
    for batch in batches[:warmup]:
        _forward(model, batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        _forward(model, batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / n
