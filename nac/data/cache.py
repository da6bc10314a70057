"""Caches of preprocessed arrays: a key from what the arrays depend on, and atomic writes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


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


def load_npz(path: Path | str, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of a cached ``.npz``; None (and a warning) when it is absent or unreadable
    (torn, or written by other code), so the caller rebuilds it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in keys}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable cache %s (%s: %s)", path, type(err).__name__, err)
        return None
