"""The memory probe: how much memory one piece of work adds on top of what was held before it.

The peak comes from :class:`nac.harness.memory.PeakMemory` (CUDA ``max_memory_allocated``; on
Linux CPU the process's peak RSS, reset through ``/proc/self/clear_refs``), the baseline is what was
held right before the work (``memory_allocated``, or VmRSS). A CPU peak is a high-water mark of the
whole process, so measure each point in a fresh process (:mod:`nac.bench.fresh`).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

from nac.harness.memory import PeakMemory, status_kib


@dataclass(frozen=True)
class MemoryIncrement:
    """MiB: the peak during the work, the baseline right before it, and their difference."""

    peak_mib: float
    baseline_mib: float
    method: str

    @property
    def increment_mib(self) -> float:
        return self.peak_mib - self.baseline_mib


def held_mib(device: torch.device) -> float:
    """Memory held now: CUDA ``memory_allocated``, or the process's RSS (0 where unknown)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device) / 2**20
    return (status_kib("VmRSS") or 0) / 1024


class MemoryProbe:
    """``probe.start()`` right before the work, ``probe.stop()`` right after it."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak = PeakMemory(self.device)
        self.baseline_mib = 0.0

    def start(self) -> None:
        gc.collect()
        self.peak.reset()
        self.baseline_mib = held_mib(self.device)

    def stop(self) -> MemoryIncrement:
        peak, method = self.peak.read()
        return MemoryIncrement(peak_mib=peak, baseline_mib=self.baseline_mib, method=method)
