"""Losses and metrics for classification and regression, per sequence or per step."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def asymmetric_score(error: torch.Tensor) -> torch.Tensor:
    """PHM 2008 / PRONOSTIA score of errors ``e = prediction - truth``, summed (lower is better).

    ``sum_{e<0} (exp(-e/13) - 1) + sum_{e>=0} (exp(e/10) - 1)``: late predictions (e >= 0, an
    over-estimated RUL or degradation reached too late) cost more than early ones.
    """
    error = error.double()
    return torch.where(error < 0, torch.expm1(-error / 13.0), torch.expm1(error / 10.0)).sum()


def flatten_steps(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, per_step: bool):
    """For per-step labels keep only valid steps: pred (B, L, ...) -> (N, ...), y (B, L) -> (N,)."""
    if not per_step:
        return pred, y
    if mask is None:
        return pred.reshape(-1, *pred.shape[2:]), y.reshape(-1, *y.shape[2:])
    return pred[mask], y[mask]


def loss_fn(task: str, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "classification":
        return F.cross_entropy(pred, y)
    return F.mse_loss(pred.reshape(y.shape), y)


class MetricAccumulator:
    """Accumulates sums over batches; :meth:`result` returns a dict of metrics.

    Regression: ``score`` is summed over every evaluated row (sample, or valid step with per-step
    labels), ``score_per_row`` is that sum divided by the rows, so sets of different length compare."""

    def __init__(self, task: str, target_scale: float = 1.0):
        self.task = task
        self.target_scale = float(target_scale)
        self.n = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.sq_err = 0.0
        self.abs_err = 0.0
        self.score = 0.0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.n += n
        self.loss_sum += float(loss_fn(self.task, pred, y)) * n
        if self.task == "classification":
            self.correct += int((pred.argmax(-1) == y).sum())
        else:
            err = (pred.reshape(y.shape) - y) * self.target_scale
            self.sq_err += float((err**2).sum())
            self.abs_err += float(err.abs().sum())
            self.score += float(asymmetric_score(err))

    def result(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no samples were evaluated (empty split?)")
        out = {"loss": self.loss_sum / self.n}
        if self.task == "classification":
            out["accuracy"] = self.correct / self.n
        else:
            mse = self.sq_err / self.n
            out.update(
                mse=mse,
                rmse=math.sqrt(mse),
                mae=self.abs_err / self.n,
                score=self.score,
                score_per_row=self.score / self.n,
            )
        return out
