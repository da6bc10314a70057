"""Resume: skip a run that already finished, or claim it.

A run is finished when its record (at the path its identity names, nac/harness/identity.py) has
status ``ok`` and was written by the same code: the same git commit, uncommitted changes included
(:func:`nac.harness.environment.git_commit`). Any other record (failed, diverged, interrupted, or
from other code) is rerun. ``force=true`` reruns a finished run too.

A run that is rerun continues from its checkpoint (``<record stem>.ckpt.pt``, written after every
epoch by :func:`nac.harness.train.fit`) when the checkpoint was saved by the same code; the runner
deletes it once the run ends ``ok`` or ``diverged``, and ``force=true`` deletes it before training.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import torch

from nac.harness import interrupt
from nac.harness.lock import run_lock
from nac.harness.records import read_record

log = logging.getLogger(__name__)


def finished_record(path: Path, commit: str) -> dict | None:
    """The record at ``path`` if this exact run (config, data, device type) already finished ok
    with this code (the same commit, and the same uncommitted changes), else None."""
    record = read_record(path)
    if record is None or record.get("status") != "ok":
        return None
    if record.get("git_commit") != commit:
        log.info(
            "rerunning %s: its record is from commit %s, the code is at %s", path, record.get("git_commit"), commit
        )
        return None
    return record


def skip_or_claim(path: Path, commit: str, force: bool, held: ExitStack) -> dict | None:
    """The finished record to return instead of training (skip), or None once this process holds
    the run's lock (nac/harness/lock.py; released when ``held`` closes) and should train it.

    The record is checked again under the lock: another process may have finished the run while
    this one waited for the data. Raises :class:`nac.harness.lock.RunLocked` when another process
    is training the run now.
    """
    if not force and (done := finished_record(path, commit)) is not None:
        return done
    held.enter_context(run_lock(path))
    return None if force else finished_record(path, commit)


#: layout of the checkpoint dictionary; a checkpoint of another layout is not used
CHECKPOINT_FORMAT = 1


def checkpoint_path(record: Path) -> Path:
    """``<record stem>.ckpt.pt`` beside the run's record."""
    return Path(record).with_suffix(".ckpt.pt")


def save_checkpoint(path: Path, state: dict, commit: str) -> None:
    """Write ``state`` (:func:`nac.harness.train.fit`'s training state) with the code id ``commit``
    atomically: a temporary file in the same folder, then a rename; SIGINT/SIGTERM wait until it is done."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with interrupt.signals_deferred():
        try:
            torch.save({"format": CHECKPOINT_FORMAT, "git_commit": commit, **state}, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, commit: str) -> dict | None:
    """The training state saved at ``path`` by this code (``commit``), else None (the run starts from
    epoch 1; the log says why when a checkpoint exists but is not used)."""
    path = Path(path)
    if not path.exists():
        return None
    if commit == "unknown":
        log.info(
            "not resuming from %s: the code is not in git, so its version cannot be checked; training from epoch 1",
            path,
        )
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file or one torch cannot read: train from the start
        log.warning(
            "not resuming from %s: it cannot be read (%s: %s); training from epoch 1", path, type(err).__name__, err
        )
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        log.warning(
            "not resuming from %s: checkpoint format %s, expected %s; training from epoch 1",
            path,
            state.get("format") if isinstance(state, dict) else None,
            CHECKPOINT_FORMAT,
        )
        return None
    if state.get("git_commit") != commit:
        log.info(
            "not resuming from %s: it was saved by commit %s, the code is at %s; training from epoch 1",
            path,
            state.get("git_commit"),
            commit,
        )
        return None
    return state


def discard_checkpoint(path: Path) -> None:
    """Delete the checkpoint at ``path`` (if any)."""
    Path(path).unlink(missing_ok=True)
