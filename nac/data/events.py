"""Event (run-length) encoding of images, as event-based MNIST does it (docs/PROTOCOLS.md, 1)."""

from __future__ import annotations

import numpy as np


def encode_events(binary_image: np.ndarray, max_events: int, total_duration: float) -> tuple[np.ndarray, int]:
    """Run-length encode one flattened binary image into (value, duration) events.

    Run lengths are rescaled so they sum to ``total_duration``; the result is truncated or
    zero-padded to ``max_events`` rows. Returns the (max_events, 2) array and the number of
    real events (before padding, after truncation).
    """
    flat = np.asarray(binary_image).reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    values = flat[starts].astype(np.float32)
    durations = lengths.astype(np.float32) * (total_duration / flat.size)
    n = min(len(values), max_events)
    events = np.zeros((max_events, 2), dtype=np.float32)
    events[:n, 0] = values[:n]
    events[:n, 1] = durations[:n]
    return events, n


def encode_images(images: np.ndarray, threshold: float, max_events: int, total_duration: float):
    """Encode a stack of images: returns x (N, L, 2), t (N, L) elapsed times, mask (N, L).

    A pixel is "on" when ``>= threshold``. Event k is observed when it ends, so its elapsed
    time since the previous observation is its own duration.
    """
    n_images = len(images)
    x = np.zeros((n_images, max_events, 2), dtype=np.float32)
    mask = np.zeros((n_images, max_events), dtype=bool)
    for i, image in enumerate(images):
        x[i], n = encode_events(np.asarray(image) >= threshold, max_events, total_duration)
        mask[i, :n] = True
    t = x[:, :, 1].copy()
    return x, t, mask
