"""Is the machine quiet? The CPU time other processes used while something was measured."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

#: other processes' average use (cores) above which timings are called inflated
BUSY_CORES = 0.1


@dataclass(frozen=True)
class LoadReading:
    """Other processes' CPU seconds over ``wall_s`` seconds (None where /proc/stat is missing)."""

    foreign_cpu_s: float | None
    wall_s: float

    @property
    def cores(self) -> float | None:
        """Average number of cores the other processes kept busy."""
        if self.foreign_cpu_s is None or self.wall_s <= 0:
            return None
        return self.foreign_cpu_s / self.wall_s

    @property
    def busy(self) -> bool:
        return self.cores is not None and self.cores > BUSY_CORES


class ForeignLoad:
    """CPU time that other processes used on this machine since this object was made.

    Busy jiffies from /proc/stat minus this process's (and its waited-for children's) CPU
    time from os.times(). Timings taken while another process is busy are not comparable:
    with torch's default thread count every parallel op waits for a descheduled thread.
    """

    def __init__(self) -> None:
        self.start_busy, self.start_own, self.start_wall = self._busy(), self._own(), time.perf_counter()

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(fields[:8]) - fields[3] - fields[4]  # user..steal minus idle and iowait
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def reading(self) -> LoadReading:
        """Other processes' CPU time from the start until now."""
        busy = self._busy()
        wall = time.perf_counter() - self.start_wall
        if busy is None or self.start_busy is None:
            return LoadReading(None, wall)
        return LoadReading(max(0.0, (busy - self.start_busy) - (self._own() - self.start_own)), wall)

    def report(self) -> str:
        """One line: ``machine load: ...`` with a warning when the machine was not idle."""
        reading = self.reading()
        if reading.cores is None:
            return "machine load: unknown (no /proc/stat)"
        text = (
            f"machine load: other processes used {reading.foreign_cpu_s:.1f} CPU-s in {reading.wall_s:.1f} s "
            f"({reading.cores:.2f} cores on average, of {os.cpu_count()})"
        )
        if reading.busy:
            text += "  WARNING: the machine was not idle; timings are inflated"
        return text
