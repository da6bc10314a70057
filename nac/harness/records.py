"""Run records: one JSON file per run, written atomically, at a path that names the run.

A run's record lives at ``<stem>.json`` (:func:`record_path`). Once that file holds an ``ok``
record, a later attempt of the same run that ends worse (failed, diverged, interrupted) is written
beside it as ``<stem>.attempt-<UTC time>-<pid>.json`` instead (:class:`RecordWriter`), so a
finished result is never lost. :func:`load_records` counts each run once.

The record's fields are :class:`nac.harness.record_schema.RunRecord`'s; docs/RECORDS.md describes
them, the files beside a record and the statuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RECORD_SCHEMA = 1
#: ``<stem>.attempt-<stamp>.json``: a later, not-ok attempt kept beside an ok record
_ATTEMPT = re.compile(r"^(?P<stem>.+)\.attempt-(?P<stamp>[^.]+)$")


def config_hash(config: dict) -> str:
    """Short stable hash of a resolved config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def record_path(
    records_dir: Path, dataset: str, protocol: str, model: str, seed: int, fold: int | None, cfg_hash: str
) -> Path:
    """``records/<dataset>/<protocol>/<model>/seed<S>[-fold<F>]-<hash>.json``: distinct runs never share a path."""
    fold_part = "" if fold is None else f"-fold{fold}"
    return Path(records_dir) / dataset / protocol / model / f"seed{seed}{fold_part}-{cfg_hash}.json"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``.

    The file gets the permissions a plain ``open`` would give (0666 minus the umask, so usually
    0644: readable by others on a shared cluster), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class RecordWriter:
    """Writes one attempt of a run: at ``path``, unless ``path`` holds an ``ok`` record and this
    attempt is not ok; then at ``<stem>.attempt-<UTC time>-<pid>.json`` beside it.

    Call :meth:`save` as often as the attempt's record changes; it returns where it wrote. An ok
    attempt replaces the record at ``path`` (and removes this attempt's earlier side file).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.attempt_path = self.path.with_name(f"{self.path.stem}.attempt-{stamp}-{os.getpid()}.json")

    def save(self, record: dict) -> Path:
        existing = read_record(self.path)
        if record.get("status") != "ok" and existing is not None and existing.get("status") == "ok":
            write_json_atomic(self.attempt_path, record)
            return self.attempt_path
        write_json_atomic(self.path, record)
        self.attempt_path.unlink(missing_ok=True)
        return self.path


def _run_key(file: Path) -> tuple[str, str]:
    """(run stem, attempt stamp) of a record file; the stamp is '' for the run's own record."""
    match = _ATTEMPT.match(file.stem)
    return (str(file.with_name(match["stem"])), match["stamp"]) if match else (str(file.with_suffix("")), "")


def run_files(paths) -> list[Path]:
    """The record file that stands for each run under the given folders/files, one per run.

    A run's own record ``<stem>.json`` wins over the attempts kept beside it
    (``<stem>.attempt-*.json``, written only while ``<stem>.json`` holds an ok record); an attempt
    whose own record is gone stands for the run, the latest such attempt if there are several.
    Files given explicitly are taken as they are.
    """
    chosen: dict[str, tuple[str, Path]] = {}  # in the order given (a sweep's job order), then by name
    for root in [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]:
        if root.is_file():
            chosen[f"file:{root}"] = ("", root)
            continue
        for file in sorted(root.rglob("*.json")):
            stem, stamp = _run_key(file)
            best = chosen.get(stem)
            # the run's own record (stamp '') beats any attempt; among attempts the latest wins
            if best is None or (best[0] != "" and (stamp == "" or stamp > best[0])):
                chosen[stem] = (stamp, file)
    return [file for _, file in chosen.values()]


def load_records(paths) -> list[dict]:
    """Load every ``*.json`` record under the given folders/files (skipping unreadable ones), one
    per run as :func:`run_files` chooses it (an ok record wins over later attempts kept beside it)."""
    files = run_files(paths)
    records = []
    for file in files:
        data = read_record(file)
        if data is not None and data.get("schema") == RECORD_SCHEMA:
            data["_path"] = str(file)
            records.append(data)
    return records
