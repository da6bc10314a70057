"""``interrupt.signals_deferred``: SIGTERM and SIGINT sent during the block (a checkpoint or record write)
reach the run's handlers once the block ends, never inside it, even with other threads alive (torch starts
some; the kernel may hand them a process-directed signal)."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import pytest

from nac.harness import interrupt


class Slotted:
    """Pickling it calls ``copyreg._slotnames`` from C: where a raised handler's exception was lost."""

    __slots__ = ("a",)

    def __init__(self):
        self.a = 1


@pytest.fixture
def other_thread():
    """A live thread that does not block the signals, as torch's threads do not."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


@pytest.fixture
def sigterm_raises():
    previous = signal.signal(signal.SIGTERM, interrupt._raise_terminated)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler (an earlier test in the session may have left another one)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _body(done: list, thread: threading.Thread) -> None:
    # sent to the other thread, as the kernel may pick one that does not block it: Python's C-level handler
    # runs there and the Python handler in the main thread at its next check, inside the block
    signal.pthread_kill(thread.ident, signal.SIGTERM if not done else signal.SIGINT)
    for _ in range(40):  # Python work, pickling included, with pauses that let the other thread run
        time.sleep(0.005)
        for _ in range(50):
            if "__slotnames__" in Slotted.__dict__:
                del Slotted.__slotnames__  # so that every dump calls copyreg._slotnames again
            pickle.dumps(Slotted())
    done.append(True)


def test_sigterm_in_the_block_is_raised_after_it(other_thread, sigterm_raises):
    steps = []
    with pytest.raises(interrupt.Terminated) as err:
        with interrupt.signals_deferred():
            _body(steps, other_thread)
        steps.append("after the block")  # never reached: the signal is raised on leaving it
    assert steps == [True] and err.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is interrupt._raise_terminated  # the handler is back


def test_sigint_in_the_block_is_raised_after_it(other_thread, sigint_raises):
    steps = [False]  # _body sends SIGINT when given a non-empty list
    with pytest.raises(KeyboardInterrupt):
        with interrupt.signals_deferred():
            _body(steps, other_thread)
    assert steps == [False, True] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_no_exception_and_handlers_restored(sigterm_raises):
    with interrupt.signals_deferred():
        assert signal.getsignal(signal.SIGTERM) is not interrupt._raise_terminated
    assert signal.getsignal(signal.SIGTERM) is interrupt._raise_terminated


def test_a_handler_that_goes_on_sees_the_signal_after_the_block():
    """Someone else's handler (submitit's) is called once, after the block, and decides what follows."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with interrupt.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pickle.dumps(Slotted())
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
