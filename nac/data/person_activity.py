"""UCI "Localization Data for Person Activity" (ConfLongDemo_JSI), docs/PROTOCOLS.md section 1 (``par``).

The file has no header and 8 comma-separated columns ``sequence, tag, ticks, date, x, y, z,
activity``: 5 people (A-E), each with ~5 recordings (``A01`` ...), 4 body tags interleaved in one
stream, .NET ticks (100 ns) as the timestamp, 11 activities. The shared development copy holds
person A only (``ConfLongDemo_JSI_personA.txt``); the publisher's full file is ``ConfLongDemo_JSI.txt``.

Two protocols:

``paper`` -- what the NAC authors' code does, kept to re-run their number (it leaks):
  one person (``person``, default B, the authors' choice); tag, date and the real timestamp are
  dropped; a synthetic clock ``time = row index * 0.211 s`` (index of the row among the kept
  person's rows, in file order); per activity the first ``n`` rows are kept, ``n`` = the rarest
  activity's count, ordered as the authors' balanced CSV (by their activity id, then file order:
  this order decides StratifiedKFold's folds); features ``[x, y, z, time]`` standardised with the
  mean/std of ALL kept rows (train and held-out fold together -- the authors' leak, reproduced on
  purpose); each sample is ONE row (sequence length 1, ``t`` = 1.0: the paper passes no time
  input); shuffled stratified 5-fold over rows (``protocol.split_seed`` 42), the held-out fold is
  both validation and test (checkpoint chosen on the reported fold, as the authors do). Rows of
  the same recording a few tens of milliseconds apart land in train and test, so the figure
  measures interpolation.

``clean`` -- the irregular-sequence formulation of the ODE-LSTM / latent-ODE line of work:
  every recording in the file (``person`` is ignored: all people present are used), rows sorted
  by ticks (a stable sort: a few rows are out of order in the file); per step the one-hot of the
  4 tags (:data:`TAGS`) followed by ``x, y, z``; the time input ``t`` is the real elapsed time
  since the previous row of the recording, ``(ticks[i] - ticks[i-1]) / 1e7`` seconds (0 for a
  recording's first row; a window's first step keeps the gap to the row before it, so ``t`` does
  not depend on where windows start); windows of ``window`` steps every ``stride`` rows (a
  recording's tail shorter than a window is dropped), labelled per step (``y`` (window,)).
  Split by recording, never by row: recordings sorted by id, shuffled with
  ``protocol.split_seed``; the first ``max(1, round(test_fraction * R))`` are test, the next
  ``max(1, round(val_fraction * R))`` validation, the rest (at least one) training. With the
  person-A copy (A01-A03) that is one recording per split (split seed 0: train A02, validation
  A01, test A03; each recording is one pass through the same scripted scenario, so each split
  holds all 11 activities); with the full file (~25 recordings) about 5 test / 5 validation / 15
  training. ``x, y, z`` are standardised with the mean/std of
  the training recordings' rows only (tags are one-hot, left as they are).

A damaged file (a row with too few or too many fields, an empty or non-numeric cell, an unknown tag or
activity) is one DataError line naming the file and the line.

Labels use a fixed vocabulary (:data:`ACTIVITIES`, the 11 names sorted), so ``output_dim`` is 11
even when a person lacks an activity.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.data.errors import DataError, numeric_columns, read_csv
from nac.data.protocols import Protocol
from nac.data.splits import group_split, paper_splits
from nac.data.windows import window_starts, windows_dataset

FOLDER = "person_activity"
FILENAME = "ConfLongDemo_JSI.txt"
COLUMNS = ["sequence", "tag", "ticks", "date", "x", "y", "z", "activity"]
#: the 11 activities, sorted: label i is ACTIVITIES[i]
ACTIVITIES = sorted(
    [
        "falling",
        "lying",
        "lying down",
        "on all fours",
        "sitting",
        "sitting down",
        "sitting on the ground",
        "standing up from lying",
        "standing up from sitting",
        "standing up from sitting on the ground",
        "walking",
    ]
)
#: the 4 body tags, sorted: ankle left, ankle right, chest, belt (UCI dataset description)
TAGS = ["010-000-024-033", "010-000-030-096", "020-000-032-221", "020-000-033-111"]
#: the activity order of the authors' ``PAR_balancer.py`` (their ``activity_id``): their balanced CSV holds
#: the kept rows grouped by it, and that row order fixes which rows StratifiedKFold puts in each fold
AUTHORS_ACTIVITY_ORDER = [
    "walking",
    "falling",
    "lying down",
    "lying",
    "sitting down",
    "sitting",
    "standing up from lying",
    "on all fours",
    "sitting on the ground",
    "standing up from sitting",
    "standing up from sitting on the ground",
]
#: the synthetic clock step of the authors' code (seconds per row)
PAPER_TIME_STEP = 0.211
TICKS_PER_SECOND = 10_000_000  # one .NET tick = 100 ns


def find_file(data_root: Path | str) -> Path:
    """``data_root/person_activity/ConfLongDemo_JSI.txt``, else any ``ConfLongDemo_JSI*.txt`` there."""
    folder = Path(data_root) / FOLDER
    full = folder / FILENAME
    if full.is_file():
        return full
    others = sorted(folder.glob("ConfLongDemo_JSI*.txt")) if folder.is_dir() else []
    if others:
        return others[0]
    raise FileNotFoundError(
        f"Person Activity data not found: expected {FILENAME} (or another ConfLongDemo_JSI*.txt) in {folder}. "
        f"Get it with: python scripts/download_data.py person_activity --root {data_root}"
    )


def _fix(path: Path) -> str:
    return (
        f"replace it with a fresh copy (python scripts/download_data.py person_activity --root "
        f"{path.resolve().parent.parent})"
    )


def read_raw(path: Path | str) -> pd.DataFrame:
    """The file as a DataFrame with :data:`COLUMNS` (file order kept).

    A row with too few or too many fields, an empty or non-numeric cell, or an unknown tag or
    activity raises a :class:`DataError` naming the file and the line."""
    path = Path(path)
    frame = read_csv(path, _fix(path), header=None, dtype={0: str, 1: str, 2: str, 3: str, 7: str})
    if frame.shape[1] != len(COLUMNS):
        raise DataError(
            path,
            None,
            f"has {frame.shape[1]} comma-separated columns, expected {len(COLUMNS)} ({', '.join(COLUMNS)})",
            _fix(path),
        )
    frame.columns = COLUMNS
    missing = frame.isna().to_numpy()
    if missing.any():
        row, col = np.argwhere(missing)[0]
        raise DataError(
            path,
            f"line {row + 1}",
            f"column {COLUMNS[col]} is empty (the row ends early or a value is missing: a truncated or damaged file)",
            _fix(path),
        )
    frame[["x", "y", "z"]] = numeric_columns(frame, ["x", "y", "z"], path, _fix(path))
    bad_ticks = np.flatnonzero(~frame["ticks"].str.fullmatch(r"\d{1,18}").to_numpy(bool))
    if len(bad_ticks):
        row = bad_ticks[0]
        raise DataError(
            path,
            f"line {row + 1}",
            f"column ticks holds {frame['ticks'].iat[row][:30]!r}, not a .NET tick count",
            _fix(path),
        )
    frame["ticks"] = frame["ticks"].astype(np.int64)
    for column, known in (("activity", ACTIVITIES), ("tag", TAGS)):
        unknown = np.flatnonzero(~frame[column].isin(known).to_numpy())
        if len(unknown):
            row = unknown[0]
            raise DataError(
                path,
                f"line {row + 1}",
                f"unknown {column} {frame[column].iat[row]!r}",
                f"the UCI dataset has {known}; {_fix(path)}",
            )
    return frame


def labels_of(activities) -> np.ndarray:
    index = {name: i for i, name in enumerate(ACTIVITIES)}
    return np.array([index[a] for a in activities], dtype=np.int64)


def paper_rows(
    frame: pd.DataFrame,
    person: str,
    limit: int | None = None,
    data_root: Path | str = "<data_root>",
    source: str = FILENAME,
) -> pd.DataFrame:
    """The authors' preprocessing before scaling: one person, synthetic time, balanced per activity.

    Returns the kept rows in the order of the authors' balanced CSV (grouped by activity in
    :data:`AUTHORS_ACTIVITY_ORDER`, file order within an activity: the order that makes the 5 folds
    theirs) with columns x, y, z, time (seconds, un-standardised), activity and ``row`` (index
    among the person's rows). ``limit`` caps the per-activity count at ``limit // (number of
    activities present)`` (quick tests)."""
    people = sorted({s[:1] for s in frame["sequence"]})
    rows = frame[frame["sequence"].str.startswith(person)].reset_index(drop=True)
    if rows.empty:
        raise ValueError(
            f"person {person!r} is not in the Person Activity file {source}; people present: {people}. "
            f"The shared development copy holds person A only; get the full file ({FILENAME}, persons A-E) with "
            f"`python scripts/download_data.py person_activity --root {data_root}`, or run the same code on "
            f"person A with dataset.builder.person=A"
        )
    rows = rows[["x", "y", "z", "activity"]].copy()
    rows["row"] = np.arange(len(rows))
    rows["time"] = rows["row"] * PAPER_TIME_STEP
    counts = rows["activity"].value_counts()
    n = int(counts.min())
    if limit is not None:
        n = max(1, min(n, int(limit) // len(counts)))
    kept = rows.groupby("activity", sort=False).head(n).copy()  # first n rows of each activity
    kept["authors_id"] = kept["activity"].map(AUTHORS_ACTIVITY_ORDER.index)
    return kept.sort_values(["authors_id", "row"]).drop(columns="authors_id").reset_index(drop=True)


def _standardise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (values - mean) / np.where(std > 0, std, 1.0)


def _build_paper(frame: pd.DataFrame, protocol: Protocol, person: str, limit: int | None, data_root, source):
    rows = paper_rows(frame, person, limit, data_root, source)
    features = rows[["x", "y", "z", "time"]].to_numpy(np.float64)
    mean, std = features.mean(0), features.std(0)  # on ALL rows: the authors' leak, kept on purpose
    x = _standardise(features, mean, std).astype(np.float32)[:, None, :]  # (N, 1, 4)
    labels = labels_of(rows["activity"])
    n = len(rows)
    full = SequenceTensorDataset(x, np.ones((n, 1), np.float32), np.ones((n, 1), bool), labels)
    extra = {
        "person": person,
        "rows_per_activity": int(np.bincount(labels).max()),
        "n_rows": n,
        "activities_present": sorted(set(rows["activity"])),
        "scaler_mean": mean.tolist(),
        "scaler_std": std.tolist(),
        "scaler_fitted_on": "all rows (paper protocol leak)",
        "labels": ACTIVITIES,
    }
    return paper_splits(full, protocol, labels), extra


def split_recordings(recordings, val_fraction: float, test_fraction: float, seed: int):
    """Recording ids (train, val, test): sorted, shuffled with ``seed``; test first, then val, rest train."""
    return group_split(recordings, val_fraction, test_fraction, seed, kind="recording")


def recording_arrays(frame: pd.DataFrame, recording: str):
    """One recording sorted by ticks: features (n, 7) = one-hot tag + raw x, y, z; elapsed seconds (n,);
    labels (n,); and the original file row numbers (n,)."""
    rows = frame[frame["sequence"] == recording].sort_values("ticks", kind="stable")
    onehot = (rows["tag"].to_numpy()[:, None] == np.array(TAGS)[None, :]).astype(np.float64)
    features = np.concatenate([onehot, rows[["x", "y", "z"]].to_numpy(np.float64)], axis=1)
    ticks = rows["ticks"].to_numpy(np.int64)
    elapsed = np.concatenate([[0.0], np.diff(ticks) / TICKS_PER_SECOND])
    return features, elapsed, labels_of(rows["activity"]), rows.index.to_numpy()


def _build_clean(frame: pd.DataFrame, protocol: Protocol, window: int, stride: int, limit: int | None):
    if window < 1 or stride < 1:
        raise ValueError(f"window={window} and stride={stride} must be positive")
    recordings = sorted(set(frame["sequence"]))
    train_ids, val_ids, test_ids = split_recordings(
        recordings, protocol.val_fraction, protocol.test_fraction, protocol.split_seed
    )
    arrays = {rec: recording_arrays(frame, rec) for rec in recordings}
    train_xyz = np.concatenate([arrays[rec][0][:, 4:] for rec in train_ids])
    mean, std = train_xyz.mean(0), train_xyz.std(0)  # training recordings only

    def windows(ids):
        """Windows of the recordings ``ids``; ``.windows``: (recording, start row in its tick-sorted order)."""

        def groups():
            for rec in ids:
                features, elapsed, labels, _ = arrays[rec]
                features = features.copy()
                features[:, 4:] = _standardise(features[:, 4:], mean, std)
                yield rec, features, elapsed, labels

        return windows_dataset(
            groups(), window, lambda n: window_starts(n, window, stride), limit=limit, what="recordings"
        )

    splits = (windows(train_ids), windows(val_ids), windows(test_ids))
    extra = {
        "recordings": {"train": train_ids, "val": val_ids, "test": test_ids},
        "window": window,
        "stride": stride,
        "tags": TAGS,
        "labels": ACTIVITIES,
        "scaler_mean": mean.tolist(),
        "scaler_std": std.tolist(),
        "scaler_fitted_on": "training recordings",
        "features": [f"tag {tag}" for tag in TAGS] + ["x", "y", "z"],
    }
    return splits, extra


def build(
    protocol: Mapping,
    data_root: Path | str,
    seed: int = 0,
    cache_dir: Path | None = None,
    person: str = "B",
    window: int = 32,
    stride: int = 16,
    limit: int | None = None,
) -> DatasetSplits:
    """Person Activity splits for ``protocol.name`` ``paper`` or ``clean`` (module docstring).

    ``person``: the one person of the ``paper`` protocol (ignored by ``clean``); ``window``,
    ``stride``: the ``clean`` windows; ``limit``: quick tests (``paper``: at most ``limit`` rows in
    all; ``clean``: the first ``limit`` windows of each split). ``seed`` does not change the data
    (splits follow ``protocol.split_seed``). Parsing takes under a second, so nothing is cached."""
    protocol = Protocol.parse("par", protocol)
    path = find_file(data_root)
    frame = read_raw(path)
    if protocol.is_paper:
        splits, extra = _build_paper(frame, protocol, str(person), limit, data_root, str(path))
        input_dim, granularity = 4, "sequence"
    else:
        splits, extra = _build_clean(frame, protocol, int(window), int(stride), limit)
        input_dim, granularity = 7, "step"
    extra["file"] = str(path)
    meta = DatasetMeta(
        name="par",
        input_dim=input_dim,
        output_dim=len(ACTIVITIES),
        task="classification",
        metric="accuracy",
        metric_mode="max",
        protocol=protocol.name,
        time_unit="second",
        label_granularity=granularity,
        fold=protocol.record_fold,
        source_files=[str(Path(path).resolve())],
        extra=extra,
    )
    return DatasetSplits(*splits, meta=meta)
