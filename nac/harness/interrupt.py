"""Stopping runs cleanly on SIGTERM (``kill``, ``timeout``, ``scancel``, preemption) and SIGINT (Ctrl-C).

Python turns SIGINT into ``KeyboardInterrupt``; here SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt`` too, so both unwind a run the same way: the runner writes an ``interrupted``
record and re-raises, and the command exits with 128 + the signal number (130 for SIGINT, 143 for
SIGTERM).

Inside a submitit job (SLURM sweeps) submitit already handles the signals: it logs and ignores
SIGTERM and, on SIGUSR2 (sent before the time limit and on preemption), checkpoints and requeues the
job, then exits. That path is kept as it is; :func:`sigterm_stops_run` only adds a snapshot (the
runner writes an ``interrupted`` record with the epochs so far) before submitit's own SIGTERM
handler, so a job that is then killed (``scancel``: SIGTERM, then SIGKILL) leaves a record.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Python raises ``KeyboardInterrupt`` for SIGINT."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = int(signum)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after writing its ``interrupted`` record; ``message`` says where."""

    def __init__(self, signum: int, message: str):
        super().__init__(signum, message)
        self.signum, self.message = int(signum), message

    def __str__(self) -> str:
        return self.message


def signal_of(exc: BaseException) -> int:
    """The signal number behind an interruption (``KeyboardInterrupt`` without one is SIGINT)."""
    return int(getattr(exc, "signum", signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    return signal.Signals(signal_of(exc)).name


def exit_code(exc: BaseException) -> int:
    """The shell's convention: 128 + signal number (SIGINT 130, SIGTERM 143)."""
    return 128 + signal_of(exc)


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install_sigterm_handler() -> None:
    """Make SIGTERM raise :class:`Terminated` in this process, where SIGTERM has its default handling."""
    if _main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def sigterm_stops_run(snapshot: Callable[[], None]) -> Iterator[None]:
    """Within the block SIGTERM interrupts the run like Ctrl-C, whatever process it runs in.

    Default handling (a plain process, a joblib worker): SIGTERM raises :class:`Terminated`.
    Someone else's handler (submitit's job process): ``snapshot()`` is called, then that handler,
    which decides whether the job goes on. An ignored SIGTERM stays ignored; outside the main thread
    nothing changes. The previous handler is restored on leaving the block.
    """
    previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    if previous is None or previous is signal.SIG_IGN:  # not ours to change (or set outside Python)
        yield
        return
    if previous in (signal.SIG_DFL, _raise_terminated):
        handler = _raise_terminated
    else:

        def handler(signum, frame):
            snapshot()
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (so a second Ctrl-C cannot cut a record write).

    Within the block a handler only notes the signal; on leaving it the handlers in place before see
    the first one noted (the default action where that was ``SIG_DFL``). Blocking the signals with
    ``pthread_sigmask`` is not enough: the kernel hands a process-directed signal to another thread
    (torch starts some), and Python then runs the handler in the main thread inside the block; raised
    within ``torch.save``'s pickling, the exception was lost and the run went on as if never stopped.
    """
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is None or handler is signal.SIG_IGN:  # set outside Python, or ignored: left alone
            continue
        previous[signum] = handler
        signal.signal(signum, lambda received, frame: caught.append(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler) -> None:
    """What ``handler`` (as :func:`signal.getsignal` gives it) does on ``signum``, now."""
    if handler is signal.SIG_DFL:
        signal.raise_signal(signum)  # the default action (SIGTERM, SIGINT: the process ends)
    elif callable(handler):
        handler(signum, None)
