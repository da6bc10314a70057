"""One run, as :func:`execute` reads: setup (settings, device, threads) -> seed -> data -> resume
check (skip a finished run, else take its lock) -> model -> fit (selection on validation) -> test
(and named test sets) -> evaluations -> latency -> predictions -> record.

The record (:class:`nac.harness.record_schema.RunRecord`, documented in docs/RECORDS.md; JSON,
written atomically even when the run fails, diverges or is interrupted) holds the metrics, parameter
count, time per epoch, batch-1 latency, named peak memory, resolved config, protocol, seed, package
versions, git commit, device and the fingerprint of the data. Its path is named by the run's identity
(nac/harness/identity.py); an ok record is never replaced by a worse attempt (nac/harness/records.py),
finished runs are skipped and one lock per run keeps two processes from training the same run
(nac/harness/resume.py, nac/harness/lock.py). SIGTERM and SIGINT stop the run with an
``interrupted`` record (nac/harness/interrupt.py); a run that is started again continues from its
last finished epoch (``<record stem>.ckpt.pt``, ``trainer.checkpoint``). Models come from
nac/models/factory.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import time
import traceback
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from nac.data.base import DatasetSplits, SequenceTensorDataset, collate_sequences
from nac.data.sources import fingerprint
from nac.harness import environment as env
from nac.harness import interrupt
from nac.harness.errors import SetupError
from nac.harness.identity import group_hash, run_hash
from nac.harness.lock import RunLocked
from nac.harness.memory import PeakMemory
from nac.harness.predictions import predictions_path, requested, save_predictions
from nac.harness.record_schema import RunRecord
from nac.harness.records import RecordWriter, record_path, write_json_atomic
from nac.harness.resume import checkpoint_path, discard_checkpoint, load_checkpoint, save_checkpoint, skip_or_claim
from nac.harness.settings import validate_settings
from nac.harness.tracking import make_tracker
from nac.harness.train import Diverged, evaluate, fit, latency_per_sample, make_scheduler
from nac.models.factory import build_predictor, make_sequence_model, model_name  # noqa: F401  (importable from here)
from nac.models.predictor import count_parameters

log = logging.getLogger(__name__)

#: the data fingerprint of a run whose data could not be built
_NO_DATA = {"files": {}, "digest": ""}


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
        if (
            (candidate / folder).is_dir()
            if folder
            else (candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()))
        ):
            return candidate
    return candidates[0]


def _without(node: DictConfig, *keys: str) -> DictConfig:
    cfg = OmegaConf.to_container(node, resolve=True)
    for key in keys:
        cfg.pop(key, None)
    return OmegaConf.create(cfg)


def data_root_of(cfg: DictConfig) -> Path:
    """The data root this config reads (see :func:`resolve_data_root`)."""
    return resolve_data_root(cfg.paths.data_root, cfg.dataset.get("data_folder"))


#: the run's model (stem -> sequence model -> head): nac/models/factory.py
build_model = build_predictor


def build_splits(cfg: DictConfig) -> DatasetSplits:
    builder = instantiate(_without(cfg.dataset.builder))
    return builder(
        protocol=OmegaConf.to_container(cfg.protocol, resolve=True),
        data_root=data_root_of(cfg),
        seed=cfg.seed,
        cache_dir=Path(cfg.paths.cache_dir),
    )


class TensorBatches(Dataset):
    """A :class:`SequenceTensorDataset` read one batch at a time: ``view[indices]`` is the batch of those
    items, equal to ``collate_sequences([dataset[i] for i in indices])`` (its items are pre-padded to
    one length, so collating pads nothing and stacking rows equals gathering them).

    Optimisation: one gather per tensor and batch instead of a ``__getitem__`` per item and a
    ``torch.stack`` of them; on the bearings' 35k length-1 rows the per-item path was a fifth of an epoch.
    """

    def __init__(self, dataset: SequenceTensorDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        data = self.dataset
        return {"x": data.x[idx], "t": data.t[idx], "mask": data.mask[idx], "y": data.y[idx]}


def _whole_batch(batch: dict) -> dict:
    """The collate function of :class:`TensorBatches`: its items are already batches."""
    return batch


def _reads_whole_batches(dataset) -> bool:
    """Whether ``dataset`` is a :class:`SequenceTensorDataset` whose items are plain rows of its tensors."""
    return isinstance(dataset, SequenceTensorDataset) and type(dataset).__getitem__ is SequenceTensorDataset.__getitem__


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int) -> DataLoader:
    """Batches of ``dataset`` (shuffled by a generator seeded with ``seed``, last batch kept).

    A :class:`SequenceTensorDataset` is read a batch at a time (:class:`TensorBatches`) through the
    same samplers the plain ``DataLoader(dataset, batch_size, shuffle, generator)`` builds, drawing from
    the generator in the same order: the same batches in the same order, equal to the per-item path.
    """
    generator = torch.Generator().manual_seed(seed)
    if not _reads_whole_batches(dataset):
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=collate_sequences,
            num_workers=num_workers,
            generator=generator,
            drop_last=False,
        )
    view = TensorBatches(dataset)
    order = RandomSampler(view, generator=generator) if shuffle else SequentialSampler(view)
    return DataLoader(
        view,
        batch_size=None,
        sampler=BatchSampler(order, batch_size, drop_last=False),
        collate_fn=_whole_batch,
        num_workers=num_workers,
        generator=generator,
    )


def _loader(dataset, batch_size: int, shuffle: bool, cfg: DictConfig, seed: int) -> DataLoader:
    return make_loader(dataset, batch_size, shuffle, cfg.trainer.num_workers, seed)


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


def best_validation(record: dict) -> float:
    """The record's best validation value of its primary metric (NaN when there is none)."""
    return float((record.get("val") or {}).get(record.get("metric"), float("nan")))


def _is_submitit_stop(err: BaseException) -> bool:
    """submitit's own way out of a job it checkpoints/requeues (SystemExit) or gives up (UncompletedJobError)."""
    return isinstance(err, SystemExit) or type(err).__module__.startswith("submitit")


class _Attempt:
    """One attempt of a run: its record (:class:`RunRecord`) as it grows, and where and when it is saved."""

    def __init__(self, cfg: DictConfig, resolved: dict, device: torch.device, commit: str):
        self.cfg, self.resolved, self.device_type = cfg, resolved, device.type
        self.fold = cfg.protocol.get("fold") if cfg.protocol.name == "paper" else None
        self.hydra_dir = _hydra_output_dir()
        self.history: list[dict] = []
        self.tracker = None  # set once the run trains
        self.writer: RecordWriter | None = None
        self.checkpoint: Path | None = None  # <record stem>.ckpt.pt, once located
        self.closed = False  # no more writes (skipped, locked out, or final record written)
        self.owned = False  # this process holds the run's lock
        self.record = RunRecord(
            model=model_name(cfg),
            dataset=cfg.dataset.name,
            protocol=cfg.protocol.name,
            fold=self.fold,
            seed=cfg.seed,
            tag=cfg.get("tag", ""),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            device=env.describe_device(device),
            git_commit=commit,
            versions=env.package_versions(),
            config=resolved,
        )
        self.memory = PeakMemory(device)
        self.memory.reset()
        self.wall = time.perf_counter()

    def locate(self, data: dict) -> Path:
        """Name the run by its identity (config, data fingerprint, device type); returns its record path."""
        run_id = run_hash(self.resolved, data["digest"], self.device_type)
        self.record.update(
            data=data, config_hash=run_id, group_hash=group_hash(self.cfg, data["digest"], self.device_type)
        )
        path = record_path(
            Path(self.cfg.paths.records_dir),
            self.cfg.dataset.name,
            self.cfg.protocol.name,
            model_name(self.cfg),
            self.cfg.seed,
            self.fold,
            run_id,
        )
        self.writer = RecordWriter(path)
        self.checkpoint = checkpoint_path(path)
        return path

    def skip(self, done: dict) -> dict:
        """This run already finished (``done`` is its record): nothing to write but the Hydra copy."""
        self.closed = True
        log.info(
            "skipped: %s already has a finished record %s (force=true reruns it)",
            model_name(self.cfg),
            self.writer.path,
        )
        if self.hydra_dir is not None:
            write_json_atomic(self.hydra_dir / "record.json", done)
        return done

    def describe(self, splits: DatasetSplits, model: torch.nn.Module) -> None:
        """Record the task, the split sizes and the parameter counts; start the tracker."""
        meta = splits.meta
        self.record.update(
            task=meta.task,
            metric=meta.metric,
            metric_mode=meta.metric_mode,
            dataset_meta=meta.to_dict(),
            n_train=len(splits.train),
            n_val=len(splits.val),
            n_test=len(splits.test),
            parameters=count_parameters(model),
            parameters_sequence_model=count_parameters(model.sequence_model),
        )
        fold_part = "" if self.fold is None else f"-fold{self.fold}"
        name = f"{model_name(self.cfg)}-{meta.name}-{meta.protocol}-seed{self.cfg.seed}{fold_part}"
        self.tracker = make_tracker(self.cfg, self.resolved, name=name)
        log.info(
            "%s on %s (%s protocol), seed %s: %s parameters, device %s",
            model_name(self.cfg),
            meta.name,
            meta.protocol,
            self.cfg.seed,
            f"{self.record.parameters:,}",
            self.record.device,
        )

    def resume_state(self, commit: str, force: bool, enabled: bool) -> dict | None:
        """The training state to continue from (this run's checkpoint, saved by the same code), or None;
        ``force`` deletes the checkpoint. Called once this process holds the run's lock."""
        if force:
            discard_checkpoint(self.checkpoint)
            return None
        state = load_checkpoint(self.checkpoint, commit) if enabled else None
        if state is not None:
            self.history = list(state["history"])
            self.record.update(resumed_from_epoch=int(state["epoch"]))
            log.info("resuming from epoch %d of %s", state["epoch"], self.checkpoint)
        return state

    def epoch_done(self, entry: dict) -> None:
        """After each epoch: keep its entry (for an interrupted record), log it, send it to the tracker."""
        self.history.append(entry)
        self.tracker.log(entry, step=entry["epoch"])
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k.startswith(("train_loss", "val_")))
        log.info("epoch %d/%d: %s", entry["epoch"], self.cfg.trainer.epochs, metrics)

    def stopped(self, status: str, reason: str) -> None:
        """The run ended early (``diverged`` or ``interrupted``): keep the epochs so far."""
        self.record.update(status=status, error=reason, epochs_run=len(self.history), history=self.history)

    def _save(self, record: RunRecord) -> Path:
        peak_mb, method = self.memory.read()
        record.update(
            peak_memory_mb=peak_mb,
            peak_memory_method=method,
            wall_time_s=time.perf_counter() - self.wall,
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        payload = record.to_dict()
        with interrupt.signals_deferred():
            path = self.writer.save(payload)
            if self.hydra_dir is not None:
                write_json_atomic(self.hydra_dir / "record.json", payload)
        return path

    def snapshot(self) -> None:
        """On a SIGTERM that someone else handles (submitit goes on): save an ``interrupted`` record
        with the epochs so far, which the final record replaces if the run still finishes."""
        if not self.owned or self.closed:
            return
        record = dataclasses.replace(
            self.record,
            status="interrupted",
            epochs_run=len(self.history),
            history=list(self.history),
            error="SIGTERM received while training (the job was cancelled, preempted or timed out); no later "
            "record: the process did not finish",
        )
        log.warning("SIGTERM: interrupted record with %d epochs saved to %s", len(self.history), self._save(record))

    @contextmanager
    def recorded(self):
        """Around the run's steps: turn how they end into the record's status and write it (unless
        the run was skipped or another process owns it); a diverged run ends here, quietly."""
        cfg, record = self.cfg, self.record
        try:
            yield
        except RunLocked:
            self.closed = True  # the other process owns the record
            raise
        except Diverged as err:
            self.stopped("diverged", str(err))
            log.error("run diverged: %s", err)
        except KeyboardInterrupt as err:
            self.stopped("interrupted", f"{interrupt.signal_name(err)} received")
            where = self.save()
            raise interrupt.RunInterrupted(
                interrupt.signal_of(err),
                f"{model_name(cfg)} interrupted by {interrupt.signal_name(err)} after "
                f"{len(self.history)} of {cfg.trainer.epochs} epochs; record {where} (status interrupted)",
            ) from None
        except BaseException as err:
            if _is_submitit_stop(err):
                self.stopped(
                    "interrupted",
                    f"stopped by submitit ({type(err).__name__}: {err}); "
                    "it requeues the job after preemption or a timeout where it can",
                )
            else:
                record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
            raise
        finally:
            if not self.closed:
                log.info("record: %s", self.save())
                _log_summary(cfg, record)
            if self.owned and record.status in ("ok", "diverged"):
                discard_checkpoint(self.checkpoint)  # kept for an interrupted or failed run to resume from
            if self.tracker is not None:
                self.tracker.finish(record.to_dict())

    def save(self) -> Path:
        """Write the final record of this attempt."""
        if self.writer is None:  # the data could not be built: named by the config alone
            self.locate(_NO_DATA)
        self.closed = True
        return self._save(self.record)


def execute(cfg: DictConfig) -> dict:
    """Train and evaluate one configuration, write its record and return it (a dict: docs/RECORDS.md).

    A run whose ok record exists for the same identity and code is skipped (its record is returned)
    unless ``force=true`` (nac/harness/resume.py). Raises :class:`SetupError` for bad settings (no
    record), bad data, model or optimizer (a ``failed`` record); :class:`RunLocked` when another process
    is running this run (no record); :class:`interrupt.RunInterrupted` on SIGINT/SIGTERM (an
    ``interrupted`` record). A diverged run returns its ``diverged`` record.
    """
    resolved = OmegaConf.to_container(cfg, resolve=True)
    validate_settings(resolved)
    checkpointing = cfg.trainer.get("checkpoint", True)
    if not isinstance(checkpointing, bool):
        raise SetupError(f"trainer.checkpoint={checkpointing!r} is not valid; use true or false")
    keep_predictions = requested(cfg.trainer)
    device = _setup(cfg)
    commit = env.git_commit()
    attempt = _Attempt(cfg, resolved, device, commit)
    record = attempt.record
    with interrupt.sigterm_stops_run(attempt.snapshot), ExitStack() as held, attempt.recorded():
        env.seed_everything(cfg.seed, cfg.trainer.deterministic)
        splits, data = _data(cfg)
        path = attempt.locate(data)
        done = skip_or_claim(path, commit, cfg.get("force", False), held)
        if done is not None:
            return attempt.skip(done)
        attempt.owned = True
        resume_from = attempt.resume_state(commit, cfg.get("force", False), checkpointing)
        model, optimizer_factory, scheduler_factory = _model(cfg, splits.meta, device)
        attempt.describe(splits, model)
        checkpoint = functools.partial(save_checkpoint, attempt.checkpoint, commit=commit) if checkpointing else None
        _fit(
            cfg,
            model,
            splits,
            device,
            record,
            optimizer_factory,
            scheduler_factory,
            attempt.epoch_done,
            checkpoint,
            resume_from,
        )
        _test(cfg, model, splits, device, record)
        _evaluations(model, splits, device, record)
        record.latency_per_sample_s = latency_per_sample(model, splits.test, device, cfg.trainer.latency_samples)
        if keep_predictions:
            _save_predictions(cfg, model, splits, device, record, predictions_path(path))
        record.status = "ok"
    return record.to_dict()


def run(cfg: DictConfig) -> float:
    """Train and evaluate one configuration; write its record. Returns the best validation metric
    (what an Optuna sweep maximises; NaN for a diverged run). See :func:`execute`."""
    return best_validation(execute(cfg))


def _setup(cfg: DictConfig) -> torch.device:
    """The device and torch's thread count."""
    try:
        device = env.resolve_device(cfg.device)
    except ValueError as err:
        raise SetupError(str(err)) from err
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    return device


def _data(cfg: DictConfig) -> tuple[DatasetSplits, dict]:
    """The splits and the fingerprint of the files they were read from."""
    with _setup_step("dataset", cfg.dataset.name, cfg.protocol.name):
        splits = build_splits(cfg)
        return splits, fingerprint(splits.meta.source_files, root=data_root_of(cfg))


def _model(cfg: DictConfig, meta, device: torch.device):
    """The model on ``device``, and the optimizer and scheduler factories."""
    with _setup_step("model", model_name(cfg)):
        model = build_model(cfg, meta.input_dim, meta.output_dim, per_step=meta.label_granularity == "step").to(device)
    with _setup_step("trainer", "optimizer/scheduler"):
        optimizer_factory, scheduler_factory = _optimizer_factories(cfg, meta.metric_mode)
    return model, optimizer_factory, scheduler_factory


def _optimizer_factories(cfg: DictConfig, mode: str):
    """The optimizer and scheduler factories, each tried once on a dummy parameter so that a bad
    setting (say a negative learning rate or a plateau factor >= 1) stops the run before training."""
    optimizer_factory = instantiate(cfg.trainer.optimizer)
    scheduler_factory = instantiate(cfg.trainer.scheduler) if cfg.trainer.get("scheduler") else None
    optimizer = optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    if scheduler_factory is not None:
        make_scheduler(scheduler_factory, optimizer, mode)
    return optimizer_factory, scheduler_factory


def _eval_loader(cfg: DictConfig, dataset) -> DataLoader:
    return _loader(dataset, cfg.trainer.eval_batch_size, False, cfg, cfg.seed)


def _fit(
    cfg: DictConfig,
    model,
    splits: DatasetSplits,
    device: torch.device,
    record: RunRecord,
    optimizer_factory,
    scheduler_factory,
    on_epoch_end,
    checkpoint=None,
    resume_from: dict | None = None,
) -> None:
    """Train with selection on validation (the best epoch's weights are loaded back); ``checkpoint``
    saves the training state after every epoch, ``resume_from`` continues from one."""
    meta = splits.meta
    result = fit(
        model,
        _loader(splits.train, cfg.trainer.batch_size, True, cfg, cfg.seed),
        _eval_loader(cfg, splits.val),
        device=device,
        task=meta.task,
        metric=meta.metric,
        mode=meta.metric_mode,
        epochs=cfg.trainer.epochs,
        optimizer_factory=optimizer_factory,
        scheduler_factory=scheduler_factory,
        early_stopping_patience=cfg.trainer.early_stopping_patience,
        grad_clip=cfg.trainer.grad_clip,
        limit_train_batches=cfg.trainer.limit_train_batches,
        per_step=meta.label_granularity == "step",
        target_scale=meta.target_scale,
        progress=cfg.trainer.progress,
        on_epoch_end=on_epoch_end,
        save_checkpoint=checkpoint,
        resume_from=resume_from,
    )
    record.update(
        best_epoch=result.best_epoch,
        epochs_run=len(result.epoch_times_s),
        history=result.history,
        val={**result.best_val},
        train_time_per_epoch_s=sum(result.epoch_times_s) / max(1, len(result.epoch_times_s)),
        train_time_total_s=sum(result.epoch_times_s),
    )


def _test(cfg: DictConfig, model, splits: DatasetSplits, device: torch.device, record: RunRecord) -> None:
    """The test set's metrics, and each named test set's (the primary test set, often one of them, once)."""
    meta = splits.meta
    per_step = meta.label_granularity == "step"
    record.test = evaluate(model, _eval_loader(cfg, splits.test), device, meta.task, per_step, meta.target_scale)
    if splits.tests:
        record.tests = {
            name: record.test
            if dataset is splits.test
            else evaluate(model, _eval_loader(cfg, dataset), device, meta.task, per_step, meta.target_scale)
            for name, dataset in splits.tests.items()
        }


def _evaluations(model, splits: DatasetSplits, device: torch.device, record: RunRecord) -> None:
    """The dataset's own evaluations of the trained model (e.g. closed-loop driving)."""
    if splits.evaluations:
        model.eval()
        record.evaluations = {name: evaluation(model, device) for name, evaluation in splits.evaluations.items()}


def _save_predictions(
    cfg: DictConfig, model, splits: DatasetSplits, device: torch.device, record: RunRecord, to: Path
) -> None:
    """The test sets' predictions and targets, beside the record (nac/harness/predictions.py)."""
    meta = splits.meta
    saved = save_predictions(
        to,
        model,
        {"test": splits.test, **(splits.tests or {})},
        lambda data: _eval_loader(cfg, data),
        device,
        meta,
        meta.label_granularity == "step",
        {"dataset": meta.name, "model": model_name(cfg), "seed": cfg.seed, "tag": cfg.get("tag", "")},
    )
    record.predictions_file = saved.name


def _log_summary(cfg: DictConfig, record: RunRecord) -> None:
    if record.status != "ok":
        return
    metric = record.metric
    log.info(
        "%s: val %s %.4f (epoch %d), test %s %.4f, %.2fs/epoch, latency %.2f ms, peak memory %.0f MB (%s)",
        model_name(cfg),
        metric,
        record.val.get(metric, float("nan")),
        record.best_epoch,
        metric,
        record.test.get(metric, float("nan")),
        record.train_time_per_epoch_s,
        1e3 * record.latency_per_sample_s,
        record.peak_memory_mb,
        record.peak_memory_method,
    )
