"""Caches of preprocessed arrays: a key from what the arrays depend on, and atomic writes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
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


def cache_path(cache_dir: Path | str | None, folder: str, stem: str, suffix: str = ".npz", **fields) -> Path | None:
    """``cache_dir/folder/<stem>_<cache_key(fields)><suffix>``, or None without a cache folder."""
    if cache_dir is None:
        return None
    return Path(cache_dir) / folder / f"{stem}_{cache_key(**fields)}{suffix}"


def load_npy(path: Path | str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached ``.npy`` memory-mapped read-only; None (and a warning) when it is absent, unreadable or
    not of ``shape``, so the caller rebuilds it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable cache %s (%s: %s)", path, type(err).__name__, err)
        return None
    if array.shape != tuple(shape):
        log.warning("ignoring cache %s of shape %s (expected %s)", path, array.shape, tuple(shape))
        return None
    return array


def cached(
    path: Path | None, keys: Sequence[str], build: Callable[[], Mapping[str, np.ndarray]], compressed: bool = False
) -> tuple[dict[str, np.ndarray], bool]:
    """``(arrays, from_cache)``: the arrays ``keys`` of the ``.npz`` at ``path`` when it is readable, else
    ``build()`` (its ``keys`` then saved there atomically). ``path`` None: always ``build()``, nothing saved."""
    if path is not None:
        arrays = load_npz(path, keys)
        if arrays is not None:
            log.info("loaded from cache %s", path)
            return arrays, True
    arrays = dict(build())
    if path is not None:
        save_atomic(path, {key: arrays[key] for key in keys}, compressed=compressed)
    return arrays, False
