"""One run: seed -> data -> model -> train (selection on validation) -> test -> record.

The record (JSON, written atomically even when the run fails or is interrupted) holds the
metrics, parameter count, time per epoch, batch-1 latency, named peak memory, resolved config,
protocol, seed, package versions, git commit and device.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from nac.data.base import DatasetSplits, collate_sequences
from nac.harness import environment as env
from nac.harness.memory import PeakMemory
from nac.harness.records import RECORD_SCHEMA, config_hash, record_path, write_json_atomic
from nac.harness.tracking import make_tracker
from nac.harness.train import Diverged, evaluate, fit, latency_per_sample
from nac.models.predictor import SequencePredictor, count_parameters

log = logging.getLogger(__name__)

#: config keys that do not change a run's result (left out of its identity hash)
_VOLATILE = ("paths", "device", "hydra", "force", "logger", "threads")


class SetupError(RuntimeError):
    """A run could not start: a bad config value, missing data, a model that cannot be built."""


def resolve_data_root(value: str | None, folder: str | None = None) -> Path:
    """The data root: the configured one, else $NAC_DATA_ROOT, else the first of ./datasets,
    <project>/datasets and the shared dev copy (../shared/data) that holds the dataset's ``folder``
    (e.g. ``cmapss``); without a ``folder``, the first of them that holds any dataset folder.

    Looking for the dataset's own folder means that downloading or generating one dataset into
    ./datasets does not hide the others from a root that has them.
    """
    if value:
        return Path(value).expanduser()
    if os.environ.get("NAC_DATA_ROOT"):
        return Path(os.environ["NAC_DATA_ROOT"]).expanduser()
    candidates = [Path("datasets"), env.PROJECT_ROOT / "datasets", env.PROJECT_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / folder).is_dir() if folder else \
                (candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir())):
            return candidate
    return candidates[0]


def _without(node: DictConfig, *keys: str) -> DictConfig:
    cfg = OmegaConf.to_container(node, resolve=True)
    for key in keys:
        cfg.pop(key, None)
    return OmegaConf.create(cfg)


def build_splits(cfg: DictConfig) -> DatasetSplits:
    builder = instantiate(_without(cfg.dataset.builder))
    return builder(protocol=OmegaConf.to_container(cfg.protocol, resolve=True),
                   data_root=resolve_data_root(cfg.paths.data_root, cfg.dataset.get("data_folder")), seed=cfg.seed,
                   cache_dir=Path(cfg.paths.cache_dir))


def make_sequence_model(model_cfg: DictConfig, input_dim: int, **overrides):
    """Instantiate a ``configs/model/`` node (a ``_partial_`` target) for inputs of width ``input_dim``."""
    model = instantiate(_without(model_cfg, "name"))(input_dim=input_dim, **overrides)
    if not hasattr(model, "output_dim"):
        raise TypeError(f"model {model_cfg.name!r} does not expose output_dim (see nac/models/contract.py)")
    return model


def build_model(cfg: DictConfig, input_dim: int, output_dim: int, per_step: bool = False) -> SequencePredictor:
    """Stem (from the dataset) -> sequence model (``model=``) -> head (from the dataset).

    With per-step labels the sequence model returns every step (``return_sequences=True``).
    """
    stem = instantiate(cfg.dataset.stem)(in_features=input_dim)
    sequence_model = make_sequence_model(cfg.model, stem.output_dim, **({"return_sequences": True} if per_step else {}))
    head = instantiate(cfg.dataset.head)(in_features=sequence_model.output_dim, out_features=output_dim)
    return SequencePredictor(stem, sequence_model, head)


def _loader(dataset, batch_size: int, shuffle: bool, cfg: DictConfig, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_sequences,
                      num_workers=cfg.trainer.num_workers, generator=generator, drop_last=False)


def _hydra_output_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ImportError, ValueError):
        return None


@contextmanager
def _setup_step(group: str, *what: str):
    """Turn a construction error into a :class:`SetupError` naming the config group (and key)."""
    try:
        yield
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, InstantiationException) as err:
        message = str(err).strip()
        if re.match(r"^[A-Za-z_]\w*=", message):  # "mode='fast' is not valid ..." -> "model.mode='fast' ..."
            message = f"{group}.{message}"
        raise SetupError(f"{group} ({', '.join(what)}): {message}") from err


def _group_hash(cfg: DictConfig) -> str:
    """Hash of the config with seed and fold neutralised (values derived from them included):
    runs that differ only in seed or fold share it, so tables average exactly those."""
    neutral = OmegaConf.to_container(cfg, resolve=False)
    neutral["seed"] = 0
    neutral.get("protocol", {}).pop("fold", None)
    resolved = OmegaConf.to_container(OmegaConf.create(neutral), resolve=True)
    return config_hash({k: v for k, v in resolved.items() if k not in _VOLATILE})


def _finished_record(path: Path, commit: str) -> dict | None:
    """The record at ``path`` if this exact config already finished ok with this code, else None.

    A record from another commit is not reused (the code changed); note that uncommitted edits
    only show as ``-dirty``, so rerun with ``force=true`` after editing code without committing.
    """
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok":
        return None
    if record.get("git_commit") != commit:
        log.info("rerunning %s: its record is from commit %s, the code is at %s", path, record.get("git_commit"), commit)
        return None
    return record


def run(cfg: DictConfig) -> float:
    """Train and evaluate one configuration; write its record. Returns the best validation metric."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    identity = {k: v for k, v in resolved.items() if k not in _VOLATILE}
    fold = cfg.protocol.get("fold") if cfg.protocol.name == "paper" else None
    path = record_path(Path(cfg.paths.records_dir), cfg.dataset.name, cfg.protocol.name, cfg.model.name,
                       cfg.seed, fold, config_hash(identity))
    group = _group_hash(cfg)
    hydra_dir = _hydra_output_dir()
    commit = env.git_commit()
    done = _finished_record(path, commit)
    if done is not None and not cfg.get("force", False):
        log.info("skipped: %s already has a finished record %s (force=true reruns it)", cfg.model.name, path)
        if hydra_dir is not None:
            write_json_atomic(hydra_dir / "record.json", done)
        return float(done.get("val", {}).get(done.get("metric"), float("nan")))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    try:
        device = env.resolve_device(cfg.device)
    except ValueError as err:
        raise SetupError(str(err)) from err
    record: dict = {
        "schema": RECORD_SCHEMA, "status": "failed", "model": cfg.model.name, "dataset": cfg.dataset.name,
        "protocol": cfg.protocol.name, "fold": fold, "seed": cfg.seed, "tag": cfg.get("tag", ""),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": env.describe_device(device),
        "git_commit": commit, "versions": env.package_versions(), "config": resolved,
        "config_hash": path.stem.rsplit("-", 1)[-1], "group_hash": group,
    }
    tracker = None
    memory = PeakMemory(device)
    memory.reset()
    wall = time.perf_counter()
    try:
        env.seed_everything(cfg.seed, cfg.trainer.deterministic)
        with _setup_step("dataset", cfg.dataset.name, cfg.protocol.name):
            splits = build_splits(cfg)
            meta = splits.meta
        per_step = meta.label_granularity == "step"
        with _setup_step("model", cfg.model.name):
            model = build_model(cfg, meta.input_dim, meta.output_dim, per_step=per_step).to(device)
        with _setup_step("trainer", "optimizer/scheduler"):
            optimizer_factory = instantiate(cfg.trainer.optimizer)
            scheduler_factory = instantiate(cfg.trainer.scheduler) if cfg.trainer.get("scheduler") else None
        record.update(task=meta.task, metric=meta.metric, metric_mode=meta.metric_mode, dataset_meta=meta.to_dict(),
                      n_train=len(splits.train), n_val=len(splits.val), n_test=len(splits.test))
        record["parameters"] = count_parameters(model)
        record["parameters_sequence_model"] = count_parameters(model.sequence_model)
        train_loader = _loader(splits.train, cfg.trainer.batch_size, True, cfg, cfg.seed)
        val_loader = _loader(splits.val, cfg.trainer.eval_batch_size, False, cfg, cfg.seed)
        test_loader = _loader(splits.test, cfg.trainer.eval_batch_size, False, cfg, cfg.seed)
        tracker = make_tracker(cfg, resolved, name=f"{cfg.model.name}-{meta.name}-{meta.protocol}-seed{cfg.seed}"
                               + ("" if fold is None else f"-fold{fold}"))
        log.info("%s on %s (%s protocol), seed %s: %s parameters, device %s", cfg.model.name, meta.name,
                 meta.protocol, cfg.seed, f"{record['parameters']:,}", record["device"])
        result = fit(
            model, train_loader, val_loader, device=device, task=meta.task, metric=meta.metric,
            mode=meta.metric_mode, epochs=cfg.trainer.epochs,
            optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
            early_stopping_patience=cfg.trainer.early_stopping_patience, grad_clip=cfg.trainer.grad_clip,
            limit_train_batches=cfg.trainer.limit_train_batches, per_step=per_step,
            target_scale=meta.target_scale, progress=cfg.trainer.progress,
            on_epoch_end=lambda entry: tracker.log(entry, step=entry["epoch"]),
        )
        test = evaluate(model, test_loader, device, meta.task, per_step, meta.target_scale)
        if splits.tests:  # the primary test set is often one of them: evaluated once
            record["tests"] = {
                name: test if dataset is splits.test else
                evaluate(model, _loader(dataset, cfg.trainer.eval_batch_size, False, cfg, cfg.seed), device,
                         meta.task, per_step, meta.target_scale)
                for name, dataset in splits.tests.items()}
        if splits.evaluations:
            model.eval()
            record["evaluations"] = {name: evaluation(model, device) for name, evaluation in splits.evaluations.items()}
        record.update(
            best_epoch=result.best_epoch, epochs_run=len(result.epoch_times_s), history=result.history,
            val={**result.best_val}, test=test,
            train_time_per_epoch_s=sum(result.epoch_times_s) / max(1, len(result.epoch_times_s)),
            train_time_total_s=sum(result.epoch_times_s),
            latency_per_sample_s=latency_per_sample(model, splits.test, device, cfg.trainer.latency_samples),
        )
        record["status"] = "ok"
        return float(result.best_val.get(meta.metric, float("nan")))
    except Diverged as err:
        record.update(status="diverged", error=str(err))
        log.error("run diverged: %s", err)
        return float("nan")
    except KeyboardInterrupt:
        record.update(status="interrupted", error="KeyboardInterrupt")
        raise
    except Exception as err:
        record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        raise
    finally:
        record["peak_memory_mb"], record["peak_memory_method"] = memory.read()
        record["wall_time_s"] = time.perf_counter() - wall
        record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json_atomic(path, record)
        if tracker is not None:
            tracker.finish(record)
        if hydra_dir is not None:
            write_json_atomic(hydra_dir / "record.json", record)
        log.info("record: %s", path)
        if record["status"] == "ok":
            metric = record["metric"]
            log.info("%s: val %s %.4f (epoch %d), test %s %.4f, %.2fs/epoch, latency %.2f ms, peak memory %.0f MB (%s)",
                     cfg.model.name, metric, record["val"][metric], record["best_epoch"], metric, record["test"][metric],
                     record["train_time_per_epoch_s"], 1e3 * record["latency_per_sample_s"],
                     record["peak_memory_mb"], record["peak_memory_method"])
