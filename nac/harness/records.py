"""Run records: one JSON file per run, written atomically, at a path that names the run."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

RECORD_SCHEMA = 1


def config_hash(config: dict) -> str:
    """Short stable hash of a resolved config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def record_path(records_dir: Path, dataset: str, protocol: str, model: str, seed: int, fold: int | None,
                cfg_hash: str) -> Path:
    """``records/<dataset>/<protocol>/<model>/seed<S>[-fold<F>]-<hash>.json``: distinct runs never share a path."""
    fold_part = "" if fold is None else f"-fold{fold}"
    return Path(records_dir) / dataset / protocol / model / f"seed{seed}{fold_part}-{cfg_hash}.json"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_records(paths) -> list[dict]:
    """Load every ``*.json`` record under the given folders/files (skipping unreadable ones)."""
    records = []
    for root in [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]:
        files = [root] if root.is_file() else sorted(root.rglob("*.json"))
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and data.get("schema") == RECORD_SCHEMA:
                data["_path"] = str(file)
                records.append(data)
    return records
