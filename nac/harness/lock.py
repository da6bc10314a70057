"""One process per run: an OS file lock on ``<record stem>.lock`` beside the run's record.

The lock is ``fcntl.flock`` on an open file, so the OS releases it when the holder exits or dies
(kill -9, node crash on a local disk); the file stays behind and is reused. The holder writes its
pid and host into the file so that a second process can say who is running the run.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RunLocked(RuntimeError):
    """Another process holds the lock of this run (it is training the same config right now)."""


def lock_path(record: Path) -> Path:
    """``<record stem>.lock`` beside the record."""
    return Path(record).with_suffix(".lock")


@contextmanager
def run_lock(record: Path) -> Iterator[None]:
    """Hold the run's lock for the duration of the block; raise :class:`RunLocked` at once when
    another process holds it."""
    path = lock_path(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunLocked(
                f"{holder} is already running this run (lock {path}); wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
