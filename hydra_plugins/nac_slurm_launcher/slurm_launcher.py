"""``hydra/launcher=slurm``: Hydra's submitit SLURM launcher, made to end a sweep whose jobs end without a result.

The upstream launcher (hydra-submitit-launcher 1.2) collects ``job.results()`` job after job: the
first job that ended without a result (cancelled with ``scancel``, killed at its time limit, by a
node failure or by the out-of-memory killer) raises, the sweep stops there while later jobs still
run, and a job cancelled before it started leaves nothing in the sweep's table. This launcher
submits the same way (same parameters, same submitit signal handling: SIGUSR2 before the time
limit and on preemption checkpoints the job and requeues it; after a timeout at most
``max_num_timeout`` times), then waits for every job and turns each one that ended without a
result into:

- a ``record.json`` in that job's output folder, unless the run left one there (the runner writes
  one when it gets SIGTERM while training; a job cancelled while pending never ran): status
  ``interrupted`` for CANCELLED, TIMEOUT, PREEMPTED or DEADLINE, ``failed`` otherwise, with the
  job's model, dataset, protocol, seed, fold and config plus ``slurm_job_id`` and ``slurm_state``,
  so that the sweep's table counts it as a run that is not ok;
- a failed Hydra job return whose error names the SLURM job, its state and its overrides: the basic
  sweeper stops with that error once every job has ended (exit code 1; the command line writes the
  partial table), the Optuna sweeper marks the trial failed and goes on.

submitit learns that a job ended from ``sacct``: the cluster needs job accounting (slurmdbd), or a
cancelled job stays UNKNOWN and the sweep waits for ever (scripts/slurm_local_cluster.sh sets it up).

Hydra only loads launchers from the ``hydra_plugins`` namespace package, hence this file's place.
Hydra imports it at every start: the imports stay light, and without the ``sweep`` extra
(hydra-submitit-launcher) the module defines nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import DictConfig, OmegaConf, open_dict

try:
    from hydra_plugins.hydra_submitit_launcher import config as _queue_config
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _upstream
except ImportError:  # no `pip install -e ".[sweep]"`: hydra/launcher=slurm is then unavailable
    _upstream = None

log = logging.getLogger(__name__)

#: SLURM states of a job stopped from outside (its record says ``interrupted``); any other state
#: without a result (FAILED, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, ...) gives ``failed``
INTERRUPTED_STATES = ("CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE")
#: how long a job SLURM says COMPLETED may take to show its result file (slow shared filesystems)
RESULT_GRACE_S = 15


class JobEndedWithoutResult(RuntimeError):
    """A SLURM job of the sweep ended (per ``sacct``) without returning the run's result."""


def marked_record(cfg: DictConfig, job_id: str, state: str, reason: str) -> dict:
    """The record of a run whose SLURM job ended without leaving one: enough for tables to count it."""
    from nac.harness.records import RECORD_SCHEMA
    from nac.models.factory import model_name

    status = "interrupted" if (state.split() or ["UNKNOWN"])[0].upper() in INTERRUPTED_STATES else "failed"
    task = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    try:
        config: Any = OmegaConf.to_container(task, resolve=True)
    except Exception:  # an interpolation only the job itself can resolve: keep it as written
        config = OmegaConf.to_container(task, resolve=False)
    protocol = config.get("protocol") or {}
    return {
        "schema": RECORD_SCHEMA,
        "status": status,
        "model": model_name(cfg),
        "dataset": (config.get("dataset") or {}).get("name"),
        "protocol": protocol.get("name"),
        "fold": protocol.get("fold") if protocol.get("name") == "paper" else None,
        "seed": config.get("seed"),
        "tag": config.get("tag", ""),
        "config": config,
        "slurm_job_id": job_id,
        "slurm_state": state,
        "error": reason,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _warn_without_accounting(job_id: str) -> None:
    """One warning when ``sacct`` cannot report on the sweep's jobs (no job accounting)."""
    try:
        answer = subprocess.run(["sacct", "-n", "-X", "-j", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        problem = str(err)
    else:
        problem = "" if answer.returncode == 0 else (answer.stderr.strip().splitlines() or ["no output"])[0]
    if problem:
        log.warning(
            f"sacct does not answer ({problem}): without job accounting submitit never sees a job "
            "that ends without a result (scancel, node failure) end, and the sweep waits for it; "
            "ask for accounting (slurmdbd), or cancel the sweep itself with Ctrl-C"
        )


if _upstream is not None:

    class SlurmLauncher(_upstream.SlurmLauncher):
        """``hydra/launcher=slurm`` (configs/hydra/launcher/slurm.yaml): see the module docstring."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            """Submit as hydra-submitit-launcher 1.2.0 does (``BaseSubmititLauncher.launch``), then
            wait for every job in order; none stops the others."""
            import submitit
            from hydra.core.singleton import Singleton

            assert self.config is not None and len(job_overrides) > 0
            params = dict(self.params)
            init = {"folder": params.pop("submitit_folder")}
            if "max_num_timeout" in params:
                init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
            base = set(OmegaConf.structured(_queue_config.BaseQueueConf).keys())
            executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
            log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            numbered = list(enumerate((list(o) for o in job_overrides), start=initial_job_idx))
            for idx, overrides in numbered:
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params = [
                (overrides, "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
                for idx, overrides in numbered
            ]
            jobs = executor.map_array(self, *zip(*job_params))
            _warn_without_accounting(jobs[0].job_id.split("_")[0])
            return self._collect(jobs, numbered)

        def _collect(self, jobs: list, numbered: list[tuple[int, list[str]]]) -> list[JobReturn]:
            """Wait until every job ended, then take each one's result or mark it.

            submitit's own ``job.results()`` waits up to 15 s for every job without a result file
            (for slow shared filesystems): cancelling a 100-job array would cost 25 minutes. Here
            that grace is shared, and only for jobs that SLURM says COMPLETED.
            """
            while not all(job.done() for job in jobs):
                time.sleep(1)
            deadline = time.monotonic() + RESULT_GRACE_S
            while time.monotonic() < deadline and any(
                not job.paths.result_pickle.exists() and job.state.upper().startswith("COMPLETED") for job in jobs
            ):
                time.sleep(1)
            return [self._result(job, overrides, idx) for job, (idx, overrides) in zip(jobs, numbered)]

        def _job_config(self, overrides: list[str], idx: int) -> DictConfig:
            """The job's config as the job composes it (``hydra.job.num`` included)."""
            assert self.hydra_context is not None and self.config is not None
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = idx
            return cfg

        def _result(self, job, overrides: list[str], idx: int) -> JobReturn:
            from submitit.core.utils import UncompletedJobError

            from nac.harness.records import write_json_atomic

            if job.paths.result_pickle.exists():
                try:
                    return job.results()[0]
                except UncompletedJobError:  # the job's Python failed outside the run (its traceback is logged)
                    pass
            state = job.state
            cfg = self._job_config(overrides, idx)
            out_dir = Path(
                str(OmegaConf.select(cfg, "hydra.sweep.dir")), str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
            )
            record_file = out_dir / "record.json"
            reason = f"SLURM job {job.job_id} ended {state} without a result (submitit logs: {job.paths.folder})"
            if not record_file.exists():  # never started, or killed before the run could write one
                write_json_atomic(record_file, marked_record(cfg, job.job_id, state, reason))
            message = f"{reason}; job #{idx}: {' '.join(filter_overrides(overrides))}; record: {record_file}"
            log.error(message)
            return JobReturn(
                overrides=overrides,
                cfg=cfg,
                working_dir=str(out_dir),
                task_name=str(OmegaConf.select(cfg, "hydra.job.name")),
                status=JobStatus.FAILED,
                _return_value=JobEndedWithoutResult(message),
            )
