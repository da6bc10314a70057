"""What a dataset was built from: the files a builder read, and a fingerprint of their content.

A builder lists every source file it read in ``DatasetMeta.source_files`` (absolute paths). The
runner fingerprints them (:func:`fingerprint`) into the record and into the run's identity, so a
run on other or changed data is never mistaken for one that already finished. Caches key on
:func:`stat_key` of the same files, so a replaced file is never served from a stale cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20
#: (path, size, mtime_ns) -> sha256, so one process hashes a file once
_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    key = (str(path), size, mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def stat_key(paths: Iterable[Path | str]) -> list[list]:
    """``[[name, size, mtime_ns], ...]`` of each file, sorted: cheap, for cache keys."""
    rows = []
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        rows.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return rows


def fingerprint(paths: Iterable[Path | str], root: Path | str | None = None) -> dict:
    """``{"files": {name: {"size", "sha256"}}, "digest": sha256 of them all}``.

    Names are relative to ``root`` when a file lies under it (so byte-identical copies of a data
    root share a fingerprint), else absolute. The digest depends on names, sizes and content only.
    """
    root = Path(root).resolve() if root is not None else None
    files = {}
    for path in sorted({Path(p).resolve() for p in paths}):
        stat = path.stat()
        name = str(path)
        if root is not None:
            try:
                name = str(path.relative_to(root))
            except ValueError:
                pass
        files[name.replace(os.sep, "/")] = {
            "size": stat.st_size,
            "sha256": _sha256(path, stat.st_size, stat.st_mtime_ns),
        }
    overall = hashlib.sha256()
    for name, info in sorted(files.items()):
        overall.update(f"{name}\0{info['size']}\0{info['sha256']}\n".encode())
    return {"files": files, "digest": overall.hexdigest()[:16]}
