"""Training with model selection on the validation split, and evaluation."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
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


def _generators(loader: DataLoader) -> list[torch.Generator]:
    """The distinct random generators of ``loader`` and its samplers (the data order), in a fixed order."""
    found: dict[int, torch.Generator] = {}
    sampler, batch_sampler = loader.sampler, loader.batch_sampler
    for owner in (
        loader,
        sampler,
        getattr(sampler, "sampler", None),
        batch_sampler,
        getattr(batch_sampler, "sampler", None),
    ):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            found.setdefault(id(generator), generator)
    return list(found.values())


def rng_states(loaders: list[DataLoader], device: torch.device) -> dict:
    """Every random state the rest of a run draws from: torch (CPU, and CUDA on CUDA), NumPy's and
    Python's global generators, and the generators of ``loaders`` (their data order)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "python": random.getstate(),
        "loaders": [[g.get_state() for g in _generators(loader)] for loader in loaders],
    }


def set_rng_states(states: dict, loaders: list[DataLoader], device: torch.device) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    random.setstate(states["python"])
    for loader, saved in zip(loaders, states["loaders"], strict=True):
        for generator, state in zip(_generators(loader), saved, strict=True):
            generator.set_state(state)


@dataclass
class _Best:
    """The selection so far: the best epoch's weights, metrics and score, and epochs since it improved."""

    state: dict | None = None
    val: dict = field(default_factory=dict)
    epoch: int = -1
    score: float | None = None
    stale: int = 0


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
    save_checkpoint: Callable[[dict], None] | None = None,
    resume_from: dict | None = None,
) -> FitResult:
    """Train for ``epochs``, keep the weights of the best validation epoch, load them back.

    After every epoch, ``save_checkpoint`` (if given) receives the training state (:func:`training_state`)
    and then ``on_epoch_end`` the epoch's history entry. ``resume_from``, such a state, continues the run
    from the epoch after it: the same numbers as a run that was never stopped.
    Raises :class:`Diverged` when the loss is not finite.
    """
    optimizer = make_optimizer(optimizer_factory, model.parameters())
    scheduler = make_scheduler(scheduler_factory, optimizer, mode) if scheduler_factory is not None else None
    loaders = [train_loader, val_loader]
    best = _Best()
    result = FitResult(best_epoch=-1, best_val={})
    first = 0
    if resume_from is not None:
        first = _restore(resume_from, model, optimizer, scheduler, result, best, loaders, device)
    for epoch in range(first, epochs):
        if early_stopping_patience is not None and best.stale > early_stopping_patience:
            break
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
        score = val[metric]
        if math.isfinite(score) and _improved(score, best.score, mode):
            best.score, best.val, best.epoch, best.stale = score, val, epoch + 1, 0
            best.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            best.stale += 1
        if scheduler is not None:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            else:
                scheduler.step()
        if save_checkpoint is not None:
            save_checkpoint(training_state(epoch + 1, model, optimizer, scheduler, result, best, loaders, device))
        if on_epoch_end is not None:
            on_epoch_end(entry)
    if best.state is not None:
        model.load_state_dict(best.state)
    result.best_epoch, result.best_val = best.epoch, best.val
    return result


def training_state(
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    result: FitResult,
    best: _Best,
    loaders: list[DataLoader],
    device: torch.device,
) -> dict:
    """Everything :func:`fit` needs to continue after ``epoch`` (finished epochs, from 1) as if it had not stopped."""
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": result.history,
        "epoch_times_s": result.epoch_times_s,
        "best": {"state": best.state, "val": best.val, "epoch": best.epoch, "score": best.score, "stale": best.stale},
        "rng": rng_states(loaders, device),
    }


def _restore(
    state: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    result: FitResult,
    best: _Best,
    loaders: list[DataLoader],
    device: torch.device,
) -> int:
    """Load a :func:`training_state` into the run; returns the number of epochs it had finished."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if (scheduler is None) != (state["scheduler"] is None):
        raise ValueError("the checkpoint's scheduler does not match the run's; delete the checkpoint or use force=true")
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    result.history, result.epoch_times_s = list(state["history"]), list(state["epoch_times_s"])
    saved = state["best"]
    best.state, best.val, best.epoch, best.score, best.stale = (
        saved["state"],
        dict(saved["val"]),
        saved["epoch"],
        saved["score"],
        saved["stale"],
    )
    set_rng_states(state["rng"], loaders, device)
    return int(state["epoch"])


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
