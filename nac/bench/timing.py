"""The timer: warm-up calls, then each timed call separately, as a torch.utils.benchmark Measurement.

``torch.utils.benchmark.Timer.timeit`` adds two warm-up calls to every measurement and
``blocked_autorange`` picks its own repeat count; the protocols here fix both (e.g. "median of 10
steps after 2 warm-up steps", or a single cold pass at T = 16,384), so the calls are made here, each
read on the library's clock (:func:`torch.utils.benchmark.utils.timer.timer`, which synchronises an
accelerator before reading the time), and the times are summarised by the library's
:class:`~torch.utils.benchmark.Measurement` (median, interquartile range).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.benchmark import Measurement
from torch.utils.benchmark.utils.common import TaskSpec
from torch.utils.benchmark.utils.timer import timer as clock


def measure(
    fn: Callable[[], object], *, warmup: int, repeats: int, label: str = "call", num_threads: int = 1
) -> Measurement:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times, timing each call on its own.

    ``num_threads`` only labels the measurement; set the thread count with ``torch.set_num_threads``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return Measurement(
        number_per_run=1, raw_times=times, task_spec=TaskSpec(stmt=label, setup="", num_threads=num_threads)
    )


@dataclass(frozen=True)
class Summary:
    """Seconds: median, interquartile range, min, max and count of a measurement."""

    median: float
    iqr: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, measurement: Measurement) -> Summary:
        times = measurement.times
        return cls(median=measurement.median, iqr=measurement.iqr, low=min(times), high=max(times), n=len(times))

    @classmethod
    def of_times(cls, times: list[float], label: str = "call") -> Summary:
        """The summary of seconds measured elsewhere (e.g. in a fresh process)."""
        return cls.of(Measurement(number_per_run=1, raw_times=list(times), task_spec=TaskSpec(label, "")))
