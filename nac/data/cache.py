"""Caches of preprocessed arrays: a key from what the arrays depend on, and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def cache_key(**fields) -> str:
    """16 hex digits of the SHA-256 of ``fields`` as sorted JSON (sources, settings, a version)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def save_atomic(path: Path | str, data: Mapping[str, np.ndarray] | np.ndarray, compressed: bool = False) -> Path:
    """Write ``data`` to ``path`` (``.npz`` for a mapping of arrays, ``.npy`` for one array) through a
    per-process temporary file and a rename, so concurrent runs never read a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    if isinstance(data, Mapping):
        (np.savez_compressed if compressed else np.savez)(tmp, **data)
    else:
        np.save(tmp, data)
    os.replace(tmp, path)
    return path
