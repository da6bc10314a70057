"""NASA C-MAPSS turbofan engine degradation, remaining useful life (RUL), docs/PROTOCOLS.md section 3 (``cmapss``).

Files (NASA Prognostics Center of Excellence data repository, "Turbofan Engine Degradation
Simulation", Saxena et al. 2008), under ``data_root/cmapss/``: ``train_FD00x.txt``,
``test_FD00x.txt``, ``RUL_FD00x.txt`` for the subsets FD001-FD004. The train/test files hold 26
space-separated columns per row: unit (engine) number, cycle, 3 operational settings, 21
sensors; one row per operating cycle. Training engines run to failure; test engines stop some
cycles before failure, and ``RUL_FD00x.txt`` gives, per test engine (in unit order), the true
RUL after its last cycle.

Only the ``clean`` protocol exists (C-MAPSS is not in the NAC paper); it is the standard RUL
protocol of the literature:

* inputs: the 14 informative sensors 2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21
  (:data:`SENSORS`; the other 7 are constant or nearly so in FD001/FD003). The same 14 are used
  for FD002/FD004, where per-condition scaling removes the operating-condition offsets (the usual
  choice; the settings themselves are not inputs);
* operating conditions: rows grouped by ``(round(setting 1), round(setting 3))`` (altitude in
  thousands of feet, throttle resolver angle): FD002/FD004 have the 6 C-MAPSS conditions (altitude
  alone tells them apart), FD001/FD003 one. Test rows must fall in a condition seen in training;
* scaling: per condition and sensor, min-max to [-1, 1] (``scaler="minmax"``, Li et al. 2018) or
  z-score (``scaler="zscore"``), fitted on the rows of the TRAINING engines only (validation
  engines and the test file never touch it); a sensor constant within a condition maps to 0
  (its offset is removed and its scale is 1);
* target: piecewise-linear RUL, ``min(last cycle - cycle, rul_cap)`` (``rul_cap`` 125), trained
  as ``RUL / rul_cap`` with ``DatasetMeta(target_scale=rul_cap)``, so RMSE, MAE and the NASA
  ``score`` are reported in cycles;
* samples: windows of ``window`` consecutive cycles (30 by default; ``configs/dataset/cmapss.yaml``
  sets 30/20/30/15 on FD001/FD002/FD003/FD004 as Li, Ding & Sun 2018, each at most the subset's
  shortest test engine: 31/21/38/19 cycles); the label is the RUL at the window's last cycle.
  Training windows end at every ``stride``-th cycle counted back from each engine's last cycle (so
  the last window of every engine is always present); validation windows likewise with
  ``val_stride`` (default 1: every window). ``t`` is 1.0 per cycle;
* engines shorter than ``window`` give one window, RIGHT-padded (zeros, ``mask`` False, ``t`` 0
  on the padding): the harness contract, every model reads its last valid step. Only test engines
  can be that short (the shortest training engine has 128 cycles); ``meta.extra`` lists them
  (``test_padded_engines``) beside the shortest test engine's length (``test_min_cycles``);
* validation: a held-out fraction ``protocol.val_fraction`` of the TRAINING ENGINES (unit ids
  shuffled with ``protocol.split_seed``; at least one engine each side), never windows of one
  engine on both sides;
* test: the last window of each test engine against ``RUL_FD00x.txt``. By default the true RUL
  is capped at ``rul_cap`` too (``cap_test_rul=True``, what most of the literature reports: a
  model trained on a capped target cannot predict beyond it); ``cap_test_rul=False`` scores
  against the raw RUL file.

Metrics: ``rmse`` (primary, mode ``min``) and the NASA/PHM08 ``score`` (sum over test engines of
``exp(-e/13) - 1`` for early and ``exp(e/10) - 1`` for late predictions, ``e = pred - true``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.data.errors import DataError, numeric_columns, read_csv
from nac.data.protocols import Protocol
from nac.data.splits import group_split
from nac.data.windows import starts_of_ends, window_ends, windows_dataset

FOLDER = "cmapss"
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
SETTINGS = ["setting1", "setting2", "setting3"]
COLUMNS = ["unit", "cycle", *SETTINGS, *[f"s{i}" for i in range(1, 22)]]
#: the 14 informative sensors of the literature (1-based sensor numbers)
SENSORS = [2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21]
FEATURES = [f"s{i}" for i in SENSORS]
NASA_URL = (
    "https://www.nasa.gov/intelligent-systems-division/discovery-and-systems-health/pcoe/pcoe-data-set-repository/"
)
MIRROR_URL = "https://phm-datasets.s3.amazonaws.com/NASA/6.+Turbofan+Engine+Degradation+Simulation+Data+Set.zip"


def check_subset(subset: str) -> str:
    """The subset name (``FD001``...), or a ValueError listing the four."""
    name = str(subset).upper()
    if name not in SUBSETS:
        raise ValueError(
            f"subset={subset!r} is not a C-MAPSS subset; choose dataset.builder.subset= one of {list(SUBSETS)}"
        )
    return name


def find_files(data_root: Path | str, subset: str) -> dict[str, Path]:
    """``{"train", "test", "rul"}`` paths of a subset, or a FileNotFoundError naming the missing files."""
    folder = Path(data_root) / FOLDER
    paths = {kind: folder / f"{kind}_{subset}.txt" for kind in ("train", "test")}
    paths["rul"] = folder / f"RUL_{subset}.txt"
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"C-MAPSS {subset} data not found: missing {missing} in {folder}. The files come from NASA's "
            f"Prognostics Center of Excellence data repository ('Turbofan Engine Degradation Simulation', "
            f"{NASA_URL}; mirror {MIRROR_URL}). Get them with: python scripts/download_data.py cmapss "
            f"--root {data_root}"
        )
    return paths


def _fix(path: Path | str) -> str:
    """What to do about a damaged C-MAPSS file: fetch a fresh copy."""
    return (
        f"replace it with a fresh copy (python scripts/download_data.py cmapss --root "
        f"{Path(path).resolve().parent.parent}, or NASA's archive {MIRROR_URL})"
    )


def read_table(path: Path | str) -> pd.DataFrame:
    """A train/test file as a DataFrame with :data:`COLUMNS` (file order kept; unit/cycle as int).

    A row with too few or too many values, a non-numeric cell or an empty file raises a
    :class:`DataError` naming the file and the line."""
    frame = read_csv(path, _fix(path), sep=r"\s+", header=None)
    if frame.shape[1] != len(COLUMNS):
        raise DataError(
            path,
            None,
            f"expected {len(COLUMNS)} space-separated columns (unit, cycle, 3 settings, "
            f"21 sensors), found {frame.shape[1]} in its first row",
            _fix(path),
        )
    frame.columns = COLUMNS
    frame = pd.DataFrame(numeric_columns(frame, COLUMNS, path, _fix(path)), columns=COLUMNS)
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype(np.int64)
    return frame


def read_rul(path: Path | str) -> np.ndarray:
    """The true RUL of each test engine, in unit order (one integer per line)."""
    frame = read_csv(path, _fix(path), sep=r"\s+", header=None)
    if frame.shape[1] != 1:
        raise DataError(path, None, f"expected one value per line, found {frame.shape[1]} columns", _fix(path))
    values = numeric_columns(frame, [0], path, _fix(path))[:, 0]
    negative = np.flatnonzero(values < 0)
    if len(negative):
        raise DataError(path, f"line {negative[0] + 1}", f"RUL {values[negative[0]]:g} is negative", _fix(path))
    return values.astype(np.int64)


def rul_targets(frame: pd.DataFrame, cap: float | None) -> np.ndarray:
    """Piecewise-linear RUL of each row of a run-to-failure file: ``min(last cycle - cycle, cap)``."""
    last = frame.groupby("unit")["cycle"].transform("max").to_numpy()
    rul = (last - frame["cycle"].to_numpy()).astype(np.float64)
    return rul if cap is None else np.minimum(rul, float(cap))


def condition_keys(frame: pd.DataFrame) -> np.ndarray:
    """Operating-condition key per row, (n, 2) int: ``round(setting1), round(setting3)``."""
    return np.round(frame[["setting1", "setting3"]].to_numpy(np.float64)).astype(np.int64)


def _conditions(keys: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in key) for key in np.unique(keys, axis=0)]


def _rows_of(keys: np.ndarray, condition: tuple[int, int]) -> np.ndarray:
    return np.all(keys == np.asarray(condition), axis=1)


class ConditionScaler:
    """Per operating condition and feature scaling (min-max to [-1, 1] or z-score), fitted once."""

    def __init__(self, kind: str = "minmax"):
        if kind not in ("minmax", "zscore"):
            raise ValueError(f"scaler={kind!r} is not valid; choose 'minmax' or 'zscore'")
        self.kind = kind
        self.offset: dict[tuple, np.ndarray] = {}
        self.scale: dict[tuple, np.ndarray] = {}

    def fit(self, values: np.ndarray, keys: np.ndarray) -> ConditionScaler:
        for key in _conditions(keys):
            rows = values[_rows_of(keys, key)]
            if self.kind == "minmax":
                low, high = rows.min(0), rows.max(0)
                centre, half = (high + low) / 2.0, (high - low) / 2.0
            else:
                centre, half = rows.mean(0), rows.std(0)
            self.offset[key], self.scale[key] = centre, np.where(half > 0, half, 1.0)
        return self

    def transform(self, values: np.ndarray, keys: np.ndarray, source: str = "data") -> np.ndarray:
        unknown = sorted(set(_conditions(keys)) - set(self.offset))
        if unknown:
            raise ValueError(
                f"{source}: operating conditions {unknown} (round(setting1), round(setting3)) do not "
                f"occur in the training engines {sorted(self.offset)}"
            )
        out = np.empty_like(values, dtype=np.float64)
        for key in _conditions(keys):
            rows = _rows_of(keys, key)
            out[rows] = (values[rows] - self.offset[key]) / self.scale[key]
        return out

    def to_dict(self) -> dict:
        return {
            str(key): {"offset": self.offset[key].tolist(), "scale": self.scale[key].tolist()}
            for key in sorted(self.offset)
        }


def engine_arrays(frame: pd.DataFrame, scaled: np.ndarray, targets: np.ndarray):
    """Per unit (ascending): its scaled features and targets in cycle order."""
    out = {}
    order = np.lexsort((frame["cycle"].to_numpy(), frame["unit"].to_numpy()))
    units = frame["unit"].to_numpy()[order]
    bounds = np.flatnonzero(np.diff(units)) + 1
    for rows in np.split(order, bounds):
        out[int(frame["unit"].iat[rows[0]])] = (scaled[rows], targets[rows])
    return out


def engine_windows(
    engines: Mapping, units, window: int, stride: int, scale: float, limit: int | None = None, last_only: bool = False
) -> SequenceTensorDataset:
    """Windows of the given engines ending every ``stride`` cycles counted back from each engine's last
    cycle (:func:`~nac.data.windows.window_ends`; ``last_only``: the last window only), labelled with the
    RUL at their last cycle divided by ``scale``; ``.windows`` lists ``(unit, last row index)``."""

    def starts(n: int) -> np.ndarray:
        return starts_of_ends(np.array([n - 1]) if last_only else window_ends(n, window, stride), window)

    groups = (
        (int(unit), engines[unit][0], np.ones(len(engines[unit][0])), engines[unit][1].astype(np.float32) / scale)
        for unit in units
    )
    return windows_dataset(groups, window, starts, label="last", origin="end", limit=limit, what="engines")


def build(
    protocol: Mapping,
    data_root: Path | str,
    seed: int = 0,
    cache_dir: Path | None = None,
    subset: str = "FD001",
    window: int | None = 30,
    stride: int = 1,
    val_stride: int = 1,
    rul_cap: float = 125,
    cap_test_rul: bool = True,
    scaler: str = "minmax",
    limit: int | None = None,
) -> DatasetSplits:
    """C-MAPSS splits of ``subset`` under the ``clean`` protocol (module docstring).

    ``window``: cycles per sample; ``stride``/``val_stride``: cycles between training/validation
    window ends; ``rul_cap``: the RUL cap and target scale; ``cap_test_rul``: cap the test truth
    too; ``scaler``: ``minmax`` or ``zscore``; ``limit``: quick tests (the first ``limit`` windows of
    train and validation, the first ``limit`` test engines). ``seed`` does not change the data (the
    engine split follows ``protocol.split_seed``). Parsing takes about a second: nothing is cached."""
    protocol = Protocol.parse("cmapss", protocol, ("clean",))
    name = check_subset(subset)
    if window is None:
        raise ValueError(
            f"no window length for subset {subset!r} (window is null: dataset.windows has no entry "
            f"{subset!r}); name the subset as dataset.windows does ({name!r}) or set "
            f"dataset.builder.window"
        )
    subset = name
    if window < 1 or stride < 1 or val_stride < 1:
        raise ValueError(f"window={window}, stride={stride} and val_stride={val_stride} must be positive")
    if rul_cap is None or rul_cap <= 0:
        raise ValueError(f"rul_cap={rul_cap} must be a positive number of cycles (it is also the target scale)")
    paths = find_files(data_root, subset)
    train_frame, test_frame = read_table(paths["train"]), read_table(paths["test"])
    true_rul = read_rul(paths["rul"])
    test_units = sorted(set(test_frame["unit"]))
    if len(true_rul) != len(test_units):
        raise DataError(
            paths["rul"],
            None,
            f"has {len(true_rul)} values but {paths['test']} has {len(test_units)} engines; they must match one to one",
            _fix(paths["rul"]),
        )

    # validation by engine: a fraction of the training engines, never windows of one engine on both sides
    train_ids, val_ids, _ = group_split(
        [int(u) for u in set(train_frame["unit"])],
        protocol.val_fraction,
        None,
        protocol.split_seed,
        kind="training engine",
    )
    train_keys, test_keys = condition_keys(train_frame), condition_keys(test_frame)
    train_values = train_frame[FEATURES].to_numpy(np.float64)
    fit_rows = train_frame["unit"].isin(train_ids).to_numpy()
    fitted = ConditionScaler(scaler).fit(train_values[fit_rows], train_keys[fit_rows])
    train_scaled = fitted.transform(train_values, train_keys, str(paths["train"]))
    test_scaled = fitted.transform(test_frame[FEATURES].to_numpy(np.float64), test_keys, str(paths["test"]))

    train_engines = engine_arrays(train_frame, train_scaled, rul_targets(train_frame, rul_cap))
    # test targets: the RUL file's value after the last cycle, + (last - cycle) for earlier rows
    per_unit = dict(zip(test_units, true_rul.astype(np.float64)))
    test_rul = rul_targets(test_frame, None) + test_frame["unit"].map(per_unit).to_numpy()
    if cap_test_rul:
        test_rul = np.minimum(test_rul, float(rul_cap))
    test_engines = engine_arrays(test_frame, test_scaled, test_rul)

    scale = float(rul_cap)
    train = engine_windows(train_engines, train_ids, window, stride, scale, limit)
    val = engine_windows(train_engines, val_ids, window, val_stride, scale, limit)
    test = engine_windows(test_engines, test_units[:limit] if limit else test_units, window, 1, scale, last_only=True)
    conditions = sorted(fitted.offset)
    test_lengths = {unit: len(test_engines[unit][0]) for unit in test_units}
    extra = {
        "subset": subset,
        "files": {k: str(v) for k, v in paths.items()},
        "features": FEATURES,
        "sensors": SENSORS,
        "window": window,
        "stride": stride,
        "val_stride": val_stride,
        "rul_cap": scale,
        "cap_test_rul": bool(cap_test_rul),
        "scaler": scaler,
        "scaler_fitted_on": "rows of the training engines (validation engines and test file excluded)",
        "conditions": [list(map(int, c)) for c in conditions],
        "n_conditions": len(conditions),
        "scaler_params": fitted.to_dict(),
        "engines": {"train": train_ids, "val": val_ids, "test": test_units},
        "padding": "right padding with mask False (engines shorter than the window)",
        "test_min_cycles": min(test_lengths.values()),
        "test_padded_engines": [unit for unit, length in test_lengths.items() if length < window],
    }
    meta = DatasetMeta(
        name="cmapss",
        input_dim=len(FEATURES),
        output_dim=1,
        task="regression",
        metric="rmse",
        metric_mode="min",
        protocol="clean",
        time_unit="cycle",
        target_scale=scale,
        source_files=[str(p.resolve()) for p in paths.values()],
        extra=extra,
    )
    return DatasetSplits(train, val, test, meta=meta)
