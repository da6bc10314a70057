"""Bearing prognostics: PRONOSTIA (FEMTO-ST, PHM 2012), XJTU-SY and HUST, docs/PROTOCOLS.md section 3 (``bearings``).

Data: the NAC authors' per-frame feature CSVs, ``<data_root>/bearings/features/<dataset>/`` with
``pronostia/BearingX_Y_features.csv``, ``xjtu/BearingX_Y_features_with_labels.csv`` and
``hust/BearingN_features.csv`` (each may be gzipped, ``.csv.gz``). Columns ``Horizontal`` and
``Vertical`` hold JSON lists of 7 values (energy, dominant frequency, spectral entropy, kurtosis,
skewness, mean, std), then ``Time``, ``Temperature`` (deg C; XJTU-SY has none), ``Degradation``
(XJTU-SY has ``RUL`` instead), ``RPM``, ``Load``. Raw PRONOSTIA folders become such CSVs with
``scripts/extract_bearing_features.py`` (:mod:`nac.data.bearing_features` documents where its
features equal the published ones and where they differ); put them in ``<data_root>/bearings/extracted/``
(``extracted/<file>`` for PRONOSTIA, or ``extracted/<dataset>/<file>``). A bearing is read from
``features/`` when it is there, else from ``extracted/`` (:func:`find_file`); the dataset meta records
each bearing's source (``extra["bearing_sources"]``: ``published`` | ``extracted``), and a run that mixes
both logs a warning and sets ``extra["mixed_sources"]`` (tables name it; the paper comparison counts it
as a gap). The shared copy holds PRONOSTIA Bearing1_1, 1_5 and 1_6 (which the authors did not publish)
as extracted files only, so the paper's bearings load as published + extracted.

Inputs per row, as the authors' scripts build them (16): per channel (horizontal, then vertical)
``log10(energy + 1e-8)``, dominant frequency, entropy, kurtosis, skewness, mean, std; then ``Time``
and the temperature in Kelvin (``Temperature + 273.15``). ``drop_time=true`` removes ``Time`` (15
inputs). Target: the ``Degradation`` column, in [0, 1].

A file without ``Degradation`` or ``Temperature`` is an error naming the file and the column, unless
the config names the fallback for that dataset: ``label_fallback.<dataset>`` and
``temperature_fallback_c.<dataset>`` (deg C). The shipped config names them for XJTU-SY only, whose
files have neither (the NAC repository's copies hold ``RUL``, ``Time`` only): temperature 25 deg C
(298.15 K) and label ``ramp``, ``linspace(0, 1, rows)``, exactly what the authors' generalisation notebook
(``RUL_exp/rul_generalization.ipynb``) builds for a file without ``Degradation``; on every published
XJTU-SY file it equals ``linear`` (``Time / Time[-1]``; Time starts at 0 in even steps) to 1.1e-16.
``label_fallback.xjtu=ode`` is the only other XJTU-SY label code the authors published (repository
itxwaleedrazzaq/uqpcnn_rul, ``labels.ipynb``, a different paper): a degradation ODE integrated over ``Time``
at 293.15 K with the condition's rpm and load (:data:`XJTU_CONDITIONS`), min-max normalised
(:func:`nac.data.bearing_features.degradation_ode`); it stays near 0 for most of the run (a line on Time
alone, fitted on 2 substituted training bearings, scored S = 19.9 on XJTU-SY Bearing1_1 with ``linear``
labels, 373.5 with ``ode``; paper's NAC: 22.87).

Bad data is one :class:`~nac.data.errors.DataError` line naming the file, the line and column, and
what to do: an empty, truncated or unparsable file, a cell that is missing, not a number or NaN, a
list that is not 7 numbers, a label outside [0, 1]. Parsed bearings are cached under ``cache_dir``
keyed on each file's path, size and mtime and the fallbacks, so a replaced file is read again.

Two protocols:

``paper`` -- the authors' ``rul_kfold.py`` + test scripts, kept to re-run their numbers (it leaks):
  train on PRONOSTIA ``train_bearings`` (default Bearing1_4, 1_5, 1_6, 1_7) pooled, inputs
  standardised with the mean/std of all pooled rows; each row is one sample (a length-1 sequence,
  ``t`` = 1); shuffled 5-fold over rows (sklearn ``KFold``, ``protocol.split_seed`` 42, fold
  ``protocol.fold``); the held-out fold is the validation split the checkpoint is chosen on (the
  authors' ``ModelCheckpoint(monitor="val_loss", mode="min")``: the epoch of least validation MSE, the
  default ``select_on`` of this protocol). Each fold's model is
  then scored on whole held-out bearings, ``test_bearings`` (default PRONOSTIA Bearing1_1, XJTU-SY
  Bearing1_1, HUST Bearing1), **each standardised with its own mean/std** (the authors' test
  scripts fit a new scaler per test bearing). Because ``Time`` is an input and the label is almost
  ``Time / Time_end``, standardising a test bearing on itself hands the model its relative position
  in the run: ``scripts/bearing_time_reference.py`` measures what ``Time`` alone achieves.
  Report mean +- std of the score over the 5 folds.

``clean`` -- leave-bearings-out: ``train_bearings`` for fitting, ``val_bearings`` (default: the last
  training bearing, then removed from training) for model selection (on the score S by default),
  ``test_bearings`` never seen; no bearing may appear in two roles. One scaler, fitted on the training
  bearings' rows only, for every split. Samples are windows of ``window`` consecutive rows (training:
  every ``stride`` rows; validation/test: consecutive non-overlapping windows covering every row once, the last one
  right-padded and masked), labelled per row (``y`` (window,)), so a test bearing's score is
  summed over each of its rows exactly once, like ``paper``. ``t`` is the elapsed ``Time`` between
  rows (constant: it carries no absolute time). Use ``drop_time=true`` to remove the leaking feature.

Every test set's metrics include ``score`` (S, summed over the bearing's rows) and ``score_per_row``
(S / rows), so that bearings of different length compare.

Missing files raise ``FileNotFoundError`` naming every missing file and how to get it. Substitute
bearings with e.g. ``dataset.builder.train_bearings=[Bearing1_4,Bearing1_7]
dataset.builder.test_bearings.pronostia=Bearing1_2``. A bearing is named ``BearingX_Y`` (train/val lists:
PRONOSTIA) or ``<dataset>/BearingX_Y``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.data.bearing_features import KELVIN, degradation_ode, linear_label
from nac.data.cache import cache_path, cached
from nac.data.errors import DataError, numeric_columns, read_csv
from nac.data.protocols import Protocol
from nac.data.sources import stat_key
from nac.data.splits import paper_fold
from nac.data.windows import tiling_starts, window_starts, windows_dataset

log = logging.getLogger(__name__)

FEATURE_FOLDER = Path("bearings") / "features"
#: feature files computed by this project's extractor (scripts/extract_bearing_features.py), searched after
#: FEATURE_FOLDER: ``extracted/<dataset>/<file>`` or, for PRONOSTIA, ``extracted/<file>``
EXTRACTED_FOLDER = Path("bearings") / "extracted"
#: where a bearing's file came from: the authors' published files, or this project's extractor
SOURCES = ("published", "extracted")
DATASETS = ("pronostia", "xjtu", "hust")
#: file name after the bearing name, per dataset (``.gz`` accepted too)
SUFFIX = {"pronostia": "_features.csv", "xjtu": "_features_with_labels.csv", "hust": "_features.csv"}
#: the paper's training bearings (PRONOSTIA) and held-out test bearings (test name -> bearing)
PAPER_TRAIN = ("Bearing1_4", "Bearing1_5", "Bearing1_6", "Bearing1_7")
PAPER_TESTS = {"pronostia": "Bearing1_1", "xjtu": "Bearing1_1", "hust": "Bearing1"}
#: XJTU-SY operating conditions by the bearing's first digit: (rpm, load N), as in the authors' label notebook
XJTU_CONDITIONS = {"1": (2100.0, 12000.0), "2": (2250.0, 11000.0), "3": (2400.0, 10000.0)}
CHANNEL_INPUTS = ("log10 energy", "dominant frequency", "entropy", "kurtosis", "skewness", "mean", "std")
FEATURE_NAMES = [f"{ch} {name}" for ch in ("horizontal", "vertical") for name in CHANNEL_INPUTS] + [
    "time",
    "temperature K",
]
TIME_INDEX = FEATURE_NAMES.index("time")
#: labels a dataset's files may fall back on when they have no Degradation column (default: linear only)
LABEL_FALLBACKS = {"xjtu": ("ramp", "linear", "ode")}
#: validation metrics that may choose the epoch (``select_on``); None: the protocol's (:data:`SELECT_ON`)
SELECTABLE = {"mse": "min", "rmse": "min", "mae": "min", "score": "min", "loss": "min"}
#: the protocol's selection metric: the authors' checkpoint keeps the best val_loss (MSE) epoch
SELECT_ON = {"paper": "mse", "clean": "score"}
#: bump when what a cached bearing holds changes
CACHE_VERSION = 2


@dataclass(frozen=True)
class BearingRef:
    dataset: str
    bearing: str

    def __str__(self) -> str:
        return f"{self.dataset}/{self.bearing}"


@dataclass
class Bearing:
    """One bearing's rows: inputs (n, 16) un-standardised, label (n,); Time is the inputs' Time column."""

    ref: BearingRef
    features: np.ndarray
    label: np.ndarray
    path: Path

    @property
    def time(self) -> np.ndarray:
        return self.features[:, TIME_INDEX]


def parse_ref(spec: str, default_dataset: str = "pronostia") -> BearingRef:
    """``"Bearing1_4"`` (``default_dataset``) or ``"xjtu/Bearing1_1"`` -> :class:`BearingRef`."""
    spec = str(spec).strip()
    dataset, _, bearing = spec.rpartition("/")
    dataset = dataset or default_dataset
    if dataset not in DATASETS:
        raise ValueError(f"unknown bearing dataset {dataset!r} in {spec!r}; choose one of {list(DATASETS)}")
    if not bearing.startswith("Bearing"):
        raise ValueError(f"bearing {spec!r} must be named BearingX_Y (PRONOSTIA, XJTU-SY) or BearingN (HUST)")
    return BearingRef(dataset, bearing)


def candidate_files(data_root: Path | str, ref: BearingRef) -> list[Path]:
    """Where ``ref``'s CSV may be, in the order searched: the published ``features/<dataset>/``, then this
    project's ``extracted/<dataset>/`` and (PRONOSTIA) ``extracted/``; each as ``.csv``, then ``.csv.gz``."""
    name = f"{ref.bearing}{SUFFIX[ref.dataset]}"
    root = Path(data_root)
    folders = [root / FEATURE_FOLDER / ref.dataset, root / EXTRACTED_FOLDER / ref.dataset]
    if ref.dataset == "pronostia":
        folders.append(root / EXTRACTED_FOLDER)
    return [folder / file for folder in folders for file in (name, name + ".gz")]


def feature_file(data_root: Path | str, ref: BearingRef) -> Path:
    """The published location of ``ref``'s CSV, ``features/<dataset>/`` (``.csv`` or ``.csv.gz``); the
    ``.csv`` path when neither exists. :func:`find_file` also looks in ``extracted/``."""
    plain = Path(data_root) / FEATURE_FOLDER / ref.dataset / f"{ref.bearing}{SUFFIX[ref.dataset]}"
    gz = plain.with_name(plain.name + ".gz")
    return gz if gz.is_file() and not plain.is_file() else plain


def find_file(data_root: Path | str, ref: BearingRef) -> Path:
    """The first existing CSV of :func:`candidate_files` (published before extracted); the published
    ``.csv`` path when none exists."""
    candidates = candidate_files(data_root, ref)
    return next((path for path in candidates if path.is_file()), candidates[0])


def source_of(path: Path | str) -> str:
    """``extracted`` when ``path`` (symlinks followed) lies in an ``extracted`` folder of the data root's
    ``bearings/``, else ``published``."""
    parts = Path(path).resolve().parts
    return "extracted" if "extracted" in parts[-3:-1] else "published"


def check_files(data_root: Path | str, refs: Sequence[BearingRef]) -> dict[BearingRef, Path]:
    """Paths of every ref's CSV; raises FileNotFoundError naming ALL missing ones and how to get them."""
    paths = {ref: find_file(data_root, ref) for ref in refs}
    missing = [path for path in paths.values() if not path.is_file()]
    if missing:
        listed = "\n  ".join(
            f"{p} (or {p.name}.gz, or the same under {Path(data_root) / EXTRACTED_FOLDER})" for p in missing
        )
        raise FileNotFoundError(
            f"bearing feature files missing ({len(missing)}):\n  {listed}\n"
            "Get them either (a) from the NAC authors' repository (itxwaleedrazzaq/neuronal_attention_circuit, "
            "RUL_exp/data/tf_features_<dataset>/, copied to <data_root>/bearings/features/<dataset>/; it publishes "
            "PRONOSTIA 1_2-1_4, 1_7, 2_1-2_7, 3_1-3_3, XJTU-SY and HUST, but not PRONOSTIA 1_1, 1_5, 1_6), or (b) for "
            "PRONOSTIA by downloading the FEMTO-ST / IEEE PHM 2012 data set from its publisher and running "
            "`python scripts/extract_bearing_features.py <raw>/Full_Test_Set/BearingX_Y --gzip "
            f"--out {Path(data_root) / EXTRACTED_FOLDER}` (Bearing1_1, 1_2: <raw>/Learning_set/). "
            "Or substitute bearings you have: dataset.builder.train_bearings=[...], "
            "dataset.builder.val_bearings=[...], dataset.builder.test_bearings.<name>=<bearing>."
        )
    return paths


def describe_sources(sources: Mapping[str, str]) -> str:
    """``published: a, b; extracted: c`` from {bearing: source}."""
    by_source = {source: [b for b, s in sources.items() if s == source] for source in SOURCES}
    return "; ".join(f"{source}: {', '.join(names)}" for source, names in by_source.items() if names)


def check_select_on(select_on: str | None, protocol_name: str) -> str:
    """The validation metric that chooses the epoch: ``select_on``, or the protocol's default (:data:`SELECT_ON`)."""
    if select_on is None:
        return SELECT_ON[protocol_name]
    if select_on not in SELECTABLE:
        raise ValueError(
            f"dataset.builder.select_on={select_on!r} is not valid; choose one of {list(SELECTABLE)} "
            f"or null (the protocol's: {SELECT_ON})"
        )
    return str(select_on)


def _fix(path: Path | str) -> str:
    """What to do about a damaged feature file."""
    return (
        f"replace {Path(path).name} with a fresh copy (the NAC authors' RUL_exp/data/, or for PRONOSTIA "
        "re-extract it with scripts/extract_bearing_features.py)"
    )


def check_fallbacks(label_fallback: Mapping | None, temperature_fallback_c: Mapping | None) -> tuple[dict, dict]:
    """``({dataset: label fallback}, {dataset: deg C})`` for every dataset (None where the config names none).

    A label fallback is ``linear`` (Time / Time at the end), or for XJTU-SY also ``ramp`` (0 to 1 evenly
    over the rows) or ``ode``; it is used only for files without a ``Degradation`` column, the
    temperature only for files without ``Temperature``."""
    labels = {dataset: None for dataset in DATASETS}
    temperatures = {dataset: None for dataset in DATASETS}
    for option, given, out in (
        ("label_fallback", label_fallback, labels),
        ("temperature_fallback_c", temperature_fallback_c, temperatures),
    ):
        for dataset, value in dict(given or {}).items():
            if dataset not in DATASETS:
                raise ValueError(
                    f"dataset.builder.{option} has an unknown bearing dataset {dataset!r}; its keys are "
                    f"{list(DATASETS)}"
                )
            out[dataset] = value
    for dataset, value in labels.items():
        if value is not None and value not in LABEL_FALLBACKS.get(dataset, ("linear",)):
            raise ValueError(
                f"dataset.builder.label_fallback.{dataset}={value!r} is not valid; choose one of "
                f"{list(LABEL_FALLBACKS.get(dataset, ('linear',)))} or null (files must have Degradation)"
            )
    for dataset, value in temperatures.items():
        if value is not None:
            try:
                temperatures[dataset] = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"dataset.builder.temperature_fallback_c.{dataset}={value!r} must be a temperature "
                    f"in deg C or null (files must have Temperature)"
                ) from None
    return labels, temperatures


def _parse_lists(column: pd.Series, path: Path | str, name: str) -> np.ndarray:
    """A column of JSON lists of the 7 channel values as (rows, 7); a bad cell names its line."""
    rows = []
    for i, cell in enumerate(column):
        where = f"line {i + 2}, column {name}"
        try:
            row = json.loads(cell)
        except (TypeError, json.JSONDecodeError):
            raise DataError(
                path,
                where,
                f"{str(cell)[:40]!r} is not a JSON list of 7 numbers (a truncated or damaged row)",
                _fix(path),
            ) from None
        if not (
            isinstance(row, list)
            and len(row) == 7
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
        ):
            raise DataError(
                path, where, f"{str(cell)[:60]!r} is not a list of 7 numbers ({', '.join(CHANNEL_INPUTS)})", _fix(path)
            )
        rows.append(row)
    values = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            path,
            f"line {row + 2}, column {name}",
            f"value {col + 1} ({CHANNEL_INPUTS[col]}) is {values[row, col]}",
            _fix(path),
        )
    return values


def _column(frame: pd.DataFrame, name: str, path: Path | str) -> np.ndarray:
    return numeric_columns(frame, [name], path, _fix(path), first_line=2)[:, 0]


def bearing_label(frame: pd.DataFrame, ref: BearingRef, path: Path | str, fallback: str | None) -> np.ndarray:
    """``Degradation`` (checked: a number in [0, 1] on every row) when present; else the ``fallback`` label:
    ``ramp`` (``linspace(0, 1, rows)``, the authors' generalisation notebook), ``linear``
    (``Time / Time[-1]``) or ``ode`` (the XJTU-SY ODE label of the authors' other repository); None: a DataError."""
    if "Degradation" in frame.columns:
        label = _column(frame, "Degradation", path)
        outside = np.flatnonzero((label < 0) | (label > 1))
        if len(outside):
            raise DataError(
                path,
                f"line {outside[0] + 2}, column Degradation",
                f"{label[outside[0]]:g} is outside [0, 1]",
                _fix(path),
            )
        return label
    if fallback is None:
        choices = " or ".join(f"={c}" for c in LABEL_FALLBACKS.get(ref.dataset, ("linear",)))
        raise DataError(
            path,
            "column Degradation",
            f"missing (the file has {list(frame.columns)})",
            f"use a file with labels, or name the label to use instead: "
            f"dataset.builder.label_fallback.{ref.dataset}{choices} (linear: Time / Time at the end)",
        )
    if fallback == "ramp":
        return np.linspace(0.0, 1.0, len(frame))
    time = _column(frame, "Time", path)
    if fallback == "linear":
        return linear_label(time)
    digit = ref.bearing.replace("Bearing", "")[:1]
    if digit not in XJTU_CONDITIONS:
        raise ValueError(
            f"{ref}: no Degradation column and no known operating condition for an ODE label; "
            f"use dataset.builder.label_fallback.{ref.dataset}=linear"
        )
    rpm, load = XJTU_CONDITIONS[digit]
    return degradation_ode(time, KELVIN + 20.0, rpm, load)  # the notebook's constant 293.15 K


def read_bearing(
    path: Path | str, ref: BearingRef, label_fallback: str | None = None, temperature_fallback_c: float | None = None
) -> Bearing:
    """Parse one feature CSV into the 16 un-standardised inputs and the label.

    A file without ``Degradation`` / ``Temperature`` needs ``label_fallback`` / ``temperature_fallback_c``
    (else a DataError naming the file and column); an empty, truncated or damaged file, a missing or
    non-numeric cell or a NaN raises a DataError naming the file and line."""
    frame = read_csv(path, _fix(path))
    needed = {"Horizontal", "Vertical", "Time"}
    if not needed <= set(frame.columns):
        missing = sorted(needed - set(frame.columns))
        raise DataError(
            path, f"column {', '.join(missing)}", f"missing (the file has {list(frame.columns)})", _fix(path)
        )
    channels = []
    for column in ("Horizontal", "Vertical"):
        values = _parse_lists(frame[column], path, column)
        values[:, 0] = np.log10(values[:, 0] + 1e-8)
        channels.append(values)
    time = _column(frame, "Time", path)
    if "Temperature" in frame.columns:
        celsius = _column(frame, "Temperature", path)
    elif temperature_fallback_c is None:
        raise DataError(
            path,
            "column Temperature",
            f"missing (the file has {list(frame.columns)})",
            f"use a file with temperatures, or name the temperature to assume: "
            f"dataset.builder.temperature_fallback_c.{ref.dataset}=25 (deg C, the authors' default)",
        )
    else:
        celsius = np.full(len(frame), float(temperature_fallback_c))
    features = np.concatenate([*channels, time[:, None], (celsius + KELVIN)[:, None]], axis=1)
    return Bearing(ref, features, bearing_label(frame, ref, path, label_fallback), Path(path))


def load_bearing(
    path: Path,
    ref: BearingRef,
    label_fallback: str | None,
    temperature_fallback_c: float | None,
    cache_dir: Path | None,
) -> Bearing:
    """:func:`read_bearing`, cached as .npz under ``cache_dir/bearings``, keyed on the file's path, size and
    mtime (:func:`nac.data.sources.stat_key`) and the fallbacks; an unreadable cache is rebuilt."""
    cache = cache_path(
        cache_dir,
        "bearings",
        f"{ref.dataset}_{ref.bearing}",
        v=CACHE_VERSION,
        sources=stat_key([path]),
        ref=str(ref),
        label_fallback=label_fallback,
        temperature_fallback_c=temperature_fallback_c,
    )

    def read() -> dict:
        bearing = read_bearing(path, ref, label_fallback, temperature_fallback_c)
        return {"features": bearing.features, "label": bearing.label}

    arrays, _ = cached(cache, ("features", "label"), read)
    return Bearing(ref, arrays["features"], arrays["label"], path)


def thin(bearing: Bearing, limit: int | None) -> Bearing:
    """At most ``limit`` rows, evenly spaced over the run (first and last kept): quick tests."""
    if limit is None or len(bearing.label) <= int(limit):
        return bearing
    idx = np.unique(np.linspace(0, len(bearing.label) - 1, int(limit)).round().astype(int))
    return Bearing(bearing.ref, bearing.features[idx], bearing.label[idx], bearing.path)


def input_columns(drop_time: bool) -> list[int]:
    return [i for i in range(len(FEATURE_NAMES)) if not (drop_time and i == TIME_INDEX)]


def fit_scaler(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (ddof 0, sklearn's StandardScaler); a constant column's std (0 up to rounding,
    e.g. HUST's 298.15 K) becomes 1, as sklearn does, so the column is 0 after scaling."""
    mean, std = features.mean(0), features.std(0)
    return mean, np.where(std > 1e-10 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def row_dataset(features: np.ndarray, label: np.ndarray) -> SequenceTensorDataset:
    """One row per sample: x (n, 1, C), t = 1, mask true, y (n,)."""
    n = len(label)
    return SequenceTensorDataset(
        features[:, None, :].astype(np.float32),
        np.ones((n, 1), np.float32),
        np.ones((n, 1), bool),
        label.astype(np.float32),
    )


def resolve_roles(protocol_name: str, train_bearings, val_bearings, test_bearings):
    """(train refs, val refs, {test name: ref}) with the protocol's defaults; checks disjointness."""
    train = [parse_ref(s) for s in (PAPER_TRAIN if train_bearings is None else list(train_bearings))]
    tests_spec = dict(PAPER_TESTS if test_bearings is None else dict(test_bearings))
    tests = {
        str(name): parse_ref(spec, default_dataset=str(name) if str(name) in DATASETS else "pronostia")
        for name, spec in tests_spec.items()
    }
    if not train or not tests:
        raise ValueError("bearings: train_bearings and test_bearings must each name at least one bearing")
    val: list[BearingRef] = []
    if protocol_name == "clean":
        if val_bearings is None:
            if len(train) < 2:
                raise ValueError(
                    "the clean protocol needs a validation bearing: give dataset.builder.val_bearings=[...] "
                    "or at least two train_bearings (the last one becomes validation)"
                )
            val, train = [train[-1]], train[:-1]
        else:
            val = [parse_ref(s) for s in val_bearings]
            train = [ref for ref in train if ref not in val]
        if not val or not train:
            raise ValueError("the clean protocol needs at least one training and one validation bearing")
    roles = [("train", train), ("val", val), ("test", list(tests.values()))]
    seen: dict[BearingRef, str] = {}
    for role, refs in roles:
        for ref in refs:
            if ref in seen and (seen[ref] != role or role != "test"):
                raise ValueError(f"bearing {ref} is both {seen[ref]} and {role}: splits must be disjoint")
            seen[ref] = role
    return train, val, tests


def _build_paper(protocol: Protocol, bearings: dict, train, tests, columns) -> tuple:
    pooled_x = np.concatenate([bearings[ref].features[:, columns] for ref in train])
    pooled_y = np.concatenate([bearings[ref].label for ref in train])
    mean, std = fit_scaler(pooled_x)  # all pooled rows, both sides of every fold (the authors' scaler)
    full = row_dataset((pooled_x - mean) / std, pooled_y)
    train_idx, held_out = paper_fold(protocol, len(pooled_y))
    test_sets, test_scalers = {}, {}
    for name, ref in tests.items():
        x = bearings[ref].features[:, columns]
        t_mean, t_std = fit_scaler(x)  # each test bearing on its own statistics (the authors' test scripts)
        test_sets[name] = row_dataset((x - t_mean) / t_std, bearings[ref].label)
        test_scalers[name] = {"mean": t_mean.tolist(), "std": t_std.tolist()}
    extra = {
        "scaler_fitted_on": "all pooled training-bearing rows (both sides of each fold)",
        "scaler_mean": mean.tolist(),
        "scaler_std": std.tolist(),
        "test_scalers": test_scalers,
        "test_scaling": "each test bearing standardised on its own rows",
        "n_rows": int(len(pooled_y)),
    }
    return (full.subset(train_idx), full.subset(held_out)), test_sets, extra


def window_dataset(
    bearing_list: list[Bearing], columns, mean, std, window: int, stride: int | None, limit: int | None
) -> SequenceTensorDataset:
    """Windows of consecutive rows, labels per row; ``t`` the elapsed Time between rows (the typical
    step for the first row and for a non-positive step). ``stride`` None: non-overlapping windows
    covering every row once (the last right-padded, padding masked). ``.windows``: (bearing, first row)."""

    def groups():
        for bearing in bearing_list:
            step = np.diff(bearing.time)
            typical = float(np.median(step)) if len(step) else 1.0
            elapsed = np.concatenate([[typical], np.where(step > 0, step, typical)]).astype(np.float32)
            x = ((bearing.features[:, columns] - mean) / std).astype(np.float32)
            yield str(bearing.ref), x, elapsed, bearing.label.astype(np.float32)

    def starts(n: int) -> np.ndarray:
        return tiling_starts(n, window) if stride is None else window_starts(n, window, stride)

    return windows_dataset(groups(), window, starts, limit=limit, what="bearings")


def _build_clean(bearings: dict, train, val, tests, columns, window: int, stride: int, limit: int | None):
    if window < 1 or stride < 1:
        raise ValueError(f"window={window} and stride={stride} must be positive")
    mean, std = fit_scaler(np.concatenate([bearings[ref].features[:, columns] for ref in train]))
    train_set = window_dataset([bearings[r] for r in train], columns, mean, std, window, stride, limit)
    val_set = window_dataset([bearings[r] for r in val], columns, mean, std, window, None, limit)
    test_sets = {
        name: window_dataset([bearings[ref]], columns, mean, std, window, None, limit) for name, ref in tests.items()
    }
    extra = {
        "scaler_fitted_on": "training bearings only",
        "scaler_mean": mean.tolist(),
        "scaler_std": std.tolist(),
        "window": window,
        "stride": stride,
    }
    return (train_set, val_set), test_sets, extra


def build(
    protocol: Mapping,
    data_root: Path | str,
    seed: int = 0,
    cache_dir: Path | None = None,
    train_bearings: Sequence[str] | None = None,
    val_bearings: Sequence[str] | None = None,
    test_bearings: Mapping[str, str] | None = None,
    drop_time: bool = False,
    window: int = 32,
    stride: int = 16,
    label_fallback: Mapping[str, str | None] | None = None,
    temperature_fallback_c: Mapping[str, float | None] | None = None,
    limit: int | None = None,
    select_on: str | None = None,
) -> DatasetSplits:
    """Bearing splits for ``protocol.name`` ``paper`` or ``clean`` (module docstring).

    ``train_bearings``/``val_bearings``: lists of bearing names (null: the protocol's defaults);
    ``test_bearings``: {test name: bearing} (null: PRONOSTIA Bearing1_1, XJTU-SY Bearing1_1, HUST
    Bearing1, named pronostia/xjtu/hust); ``drop_time``: remove the Time input; ``window``,
    ``stride``: clean-protocol windows; ``label_fallback``: {dataset: linear | ode | None}, the label of
    files without ``Degradation``; ``temperature_fallback_c``: {dataset: deg C | None}, the temperature of
    files without ``Temperature`` (None, the default: such a file is an error naming it); ``limit``: quick
    tests (paper: at most ``limit`` evenly spaced rows per bearing; clean: also at most ``limit`` windows
    per split); ``select_on``: the validation metric that chooses the epoch (:data:`SELECTABLE`; None: the
    protocol's, :data:`SELECT_ON`). ``seed`` does not change the data.

    Each file is looked up in the published ``features/`` first, then in ``extracted/``
    (:func:`find_file`); ``meta.extra["bearing_sources"]`` says which per bearing, and a run whose
    bearings come from both logs a warning and sets ``meta.extra["mixed_sources"]``."""
    protocol = Protocol.parse("bearings", protocol)
    name = protocol.name
    metric = check_select_on(select_on, name)
    labels, temperatures = check_fallbacks(label_fallback, temperature_fallback_c)
    train, val, tests = resolve_roles(name, train_bearings, val_bearings, test_bearings)
    refs = list(dict.fromkeys([*train, *val, *tests.values()]))
    paths = check_files(data_root, refs)
    sources = {str(ref): source_of(path) for ref, path in paths.items()}
    mixed = len(set(sources.values())) > 1
    if mixed:
        log.warning(
            "bearings from different sources in one run: %s. Extracted features (this project's extractor) "
            "differ from the authors' in energy, dominant frequency, entropy and temperature; the "
            "record and the tables say so",
            describe_sources(sources),
        )
    bearings = {
        ref: thin(load_bearing(paths[ref], ref, labels[ref.dataset], temperatures[ref.dataset], cache_dir), limit)
        for ref in refs
    }
    columns = input_columns(bool(drop_time))
    if protocol.is_paper:
        (train_set, val_set), test_sets, extra = _build_paper(protocol, bearings, train, tests, columns)
        granularity = "sequence"
    else:
        (train_set, val_set), test_sets, extra = _build_clean(
            bearings, train, val, tests, columns, int(window), int(stride), limit
        )
        granularity = "step"
    substituted = name == "paper" and (
        [str(r) for r in train] != [f"pronostia/{b}" for b in PAPER_TRAIN]
        or {k: str(v) for k, v in tests.items()} != {k: f"{k}/{b}" for k, b in PAPER_TESTS.items()}
    )
    extra.update(
        bearings={
            "train": [str(r) for r in train],
            "val": [str(r) for r in val],
            "test": {k: str(v) for k, v in tests.items()},
        },
        rows={str(ref): int(len(b.label)) for ref, b in bearings.items()},
        files={str(ref): str(path) for ref, path in paths.items()},
        features=[FEATURE_NAMES[i] for i in columns],
        drop_time=bool(drop_time),
        label_fallback=labels,
        temperature_fallback_c=temperatures,
        substituted_bearings=bool(substituted),
        bearing_sources=sources,
        mixed_sources=mixed,
        select_on=metric,
    )
    meta = DatasetMeta(
        name="bearings",
        input_dim=len(columns),
        output_dim=1,
        task="regression",
        metric=metric,
        metric_mode=SELECTABLE[metric],
        protocol=name,
        time_unit="authors' Time (row * 1000 / 25600)",
        label_granularity=granularity,
        fold=protocol.record_fold,
        source_files=[str(paths[ref].resolve()) for ref in refs],
        extra=extra,
    )
    first = next(iter(test_sets))
    return DatasetSplits(train_set, val_set, test_sets[first], meta=meta, tests=test_sets)
