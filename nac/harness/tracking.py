"""Experiment tracking: Weights & Biases as an option (``logger=wandb``), off by default.

Each run opens its own W&B run and always finishes it (in the runner's ``finally``), so every job
of a multirun sweep logs separately. ``mode: offline`` needs no account (sync later with
``wandb sync``); ``disabled`` turns it into a no-op. The same metrics go to W&B as to the record.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


class NullTracker:
    """Tracks nothing (``logger=none``)."""

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def finish(self, record: dict) -> None:
        pass


class WandbTracker:
    """One W&B run per harness run: per-epoch history, then the record's metrics as summary."""

    def __init__(self, logger_cfg: DictConfig, config: dict, name: str):
        import wandb

        self.run = wandb.init(
            project=logger_cfg.project, entity=logger_cfg.get("entity"), mode=logger_cfg.mode,
            group=logger_cfg.get("group"), tags=list(logger_cfg.get("tags") or []), name=name,
            dir=logger_cfg.get("dir"), config=config, reinit="create_new",
        )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def finish(self, record: dict) -> None:
        summary = {"status": record.get("status")}
        for split in ("val", "test"):
            summary.update({f"{split}/{k}": v for k, v in (record.get(split) or {}).items()})
        for key in ("parameters", "train_time_per_epoch_s", "latency_per_sample_s", "peak_memory_mb",
                    "peak_memory_method", "best_epoch", "error"):
            if record.get(key) is not None:
                summary[key] = record[key]
        self.run.summary.update(summary)
        self.run.finish(exit_code=0 if record.get("status") == "ok" else 1)


def make_tracker(cfg: DictConfig, config: dict, name: str) -> NullTracker | WandbTracker:
    """The tracker chosen by ``logger=`` (``none`` or ``wandb``)."""
    logger_cfg = cfg.get("logger")
    if not logger_cfg or logger_cfg.get("name", "none") == "none":
        return NullTracker()
    if logger_cfg.name == "wandb":
        return WandbTracker(logger_cfg, config, name)
    raise ValueError(f"logger={logger_cfg.name!r} is not valid; choose one of ['none', 'wandb']")
