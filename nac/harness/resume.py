"""Resume: skip a run that already finished, or claim it.

A run is finished when its record (at the path its identity names, nac/harness/identity.py) has
status ``ok`` and was written by the same code: the same git commit, uncommitted changes included
(:func:`nac.harness.environment.git_commit`). Any other record (failed, diverged, interrupted, or
from other code) is rerun. ``force=true`` reruns a finished run too.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

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
