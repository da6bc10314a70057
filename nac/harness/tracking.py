"""Experiment tracking: Weights & Biases as an option (``logger=wandb``), off by default.

The tracker is the ``_target_`` of the ``logger`` config (``configs/logger/``): add a tracker by adding a
class with ``log`` and ``finish`` and a config naming it. Each run opens its own W&B run and always finishes
it (in the runner's ``finally``), so every job of a multirun sweep logs separately. ``mode: offline`` needs no
account (sync later with ``wandb sync``); ``disabled`` turns it into a no-op. The same metrics go to W&B as to
the record.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


class NullTracker:
    """Tracks nothing (``logger=none``)."""

    def __init__(self, run_config: dict | None = None, name: str = ""):
        pass

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def finish(self, record: dict) -> None:
        pass


class WandbTracker:
    """One W&B run per harness run: per-epoch history, then the record's metrics as summary.
    The keyword arguments are those of ``configs/logger/wandb.yaml`` (``wandb.init``'s)."""

    def __init__(
        self,
        run_config: dict,
        name: str,
        project: str = "nac-bench",
        entity: str | None = None,
        mode: str = "offline",
        group: str | None = None,
        tags: list[str] | None = None,
        dir: str | None = None,
    ):
        import wandb

        self.run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            group=group,
            tags=list(tags or []),
            name=name,
            dir=dir,
            config=run_config,
            reinit="create_new",
        )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def finish(self, record: dict) -> None:
        summary = {"status": record.get("status")}
        for split in ("val", "test"):
            summary.update({f"{split}/{k}": v for k, v in (record.get(split) or {}).items()})
        for key in (
            "parameters",
            "train_time_per_epoch_s",
            "latency_per_sample_s",
            "peak_memory_mb",
            "peak_memory_method",
            "best_epoch",
            "error",
        ):
            if record.get(key) is not None:
                summary[key] = record[key]
        self.run.summary.update(summary)
        self.run.finish(exit_code=0 if record.get("status") == "ok" else 1)


def make_tracker(cfg: DictConfig, config: dict, name: str):
    """The tracker that ``logger=`` names by its ``_target_`` (``configs/logger/``: ``none``, ``wandb``,
    or your own class taking ``run_config`` (the resolved config) and ``name`` and offering ``log`` and ``finish``)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    logger_cfg = cfg.get("logger")
    if not logger_cfg or "_target_" not in logger_cfg:
        return NullTracker()
    options = OmegaConf.to_container(logger_cfg, resolve=True)
    # not hydra's instantiate: it would also instantiate every _target_ inside run_config
    return get_class(options.pop("_target_"))(run_config=config, name=name, **options)
