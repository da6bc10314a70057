"""Fixed-length windows over groups of rows (recordings, engines, bearings): one function for all.

Each window covers rows ``start .. start + window`` of one group; a window that runs past the
group's end is right-padded with zeros (``mask`` False, ``t`` 0). Labels are per step (padded with
0) or the label of the window's last valid row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np

from nac.data.base import SequenceTensorDataset


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows of ``window`` steps every ``stride`` steps that fit in ``length``."""
    return np.arange(0, length - window + 1, stride) if length >= window else np.zeros(0, dtype=np.int64)


def tiling_starts(length: int, window: int) -> np.ndarray:
    """Starts of non-overlapping windows covering every row once (the last one may run past the end)."""
    return np.arange(0, length, window)


def window_ends(length: int, window: int, stride: int) -> np.ndarray:
    """Last-row indices of windows counted back from the last row every ``stride`` rows (the last row
    always ends one); a group shorter than ``window`` gives one window ending at its last row."""
    if length < window:
        return np.array([length - 1])
    return np.arange(length - 1, window - 2, -stride)[::-1]


def starts_of_ends(ends: np.ndarray, window: int) -> np.ndarray:
    """Start rows of the windows ending at ``ends`` (0 for a window longer than the rows before it)."""
    return np.maximum(0, np.asarray(ends) - window + 1)


def windows_dataset(
    groups: Iterable[tuple],
    window: int,
    starts: Callable[[int], np.ndarray],
    label: Literal["step", "last"] = "step",
    origin: Literal["start", "end"] = "start",
    limit: int | None = None,
    what: str = "groups",
) -> SequenceTensorDataset:
    """Windows of ``groups``, ``(key, x (n, C), t (n,), y (n, ...))`` each, as one dataset.

    ``starts(n)``: the start rows of a group of ``n`` rows; ``label``: ``step`` (y per step) or
    ``last`` (y of the last valid row); ``origin``: each window's ``(key, start)`` or ``(key, last
    valid row)`` goes to ``dataset.windows``; ``limit``: the first ``limit`` windows over all groups.
    x and t are float32. A ValueError when no group gives a window."""
    xs, ts, masks, ys, where, keys = [], [], [], [], [], []
    for key, x, t, y in groups:
        keys.append(key)
        n = len(x)
        for start in starts(n):
            start = int(start)
            stop = min(start + window, n)
            pad = window - (stop - start)
            xs.append(np.pad(x[start:stop], ((0, pad), (0, 0))))
            ts.append(np.pad(t[start:stop], (0, pad)))
            masks.append(np.arange(window) < stop - start)
            ys.append(np.pad(y[start:stop], [(0, pad)] + [(0, 0)] * (y.ndim - 1)) if label == "step" else y[stop - 1])
            where.append((key, start if origin == "start" else stop - 1))
    if limit is not None:
        xs, ts, masks, ys, where = xs[:limit], ts[:limit], masks[:limit], ys[:limit], where[:limit]
    if not xs:
        raise ValueError(f"{what} {keys} are all shorter than window={window}: lower dataset.builder.window")
    return SequenceTensorDataset(
        np.stack(xs).astype(np.float32), np.stack(ts).astype(np.float32), np.stack(masks), np.stack(ys), windows=where
    )
