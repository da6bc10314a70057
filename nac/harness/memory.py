"""Peak memory of a run, named by how it was measured.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
* CPU on Linux: the process's peak resident set size (VmHWM), reset at the start of the run by
  writing ``5`` to ``/proc/self/clear_refs``, so runs sharing a process are measured separately.
* elsewhere: ``ru_maxrss``, a process-lifetime high-water mark (earlier runs in the process count).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None where there is none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); True if it took effect."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    hwm, rss = status_kib("VmHWM"), status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024  # within 1 MiB


class PeakMemory:
    """Start with :meth:`reset`, read with :meth:`read` -> (megabytes, method name)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = ""

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda_max_memory_allocated"
            return
        self.method = "cpu_peak_rss_since_run_start" if reset_peak_rss() else "cpu_peak_rss_process_lifetime"

    def read(self) -> tuple[float, str]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20, self.method
        hwm = status_kib("VmHWM")
        if hwm is not None and self.method == "cpu_peak_rss_since_run_start":
            return hwm / 1024, self.method
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS, KiB on Linux
        return peak * scale, "cpu_peak_rss_process_lifetime"
