"""Per-frame features of raw PRONOSTIA (FEMTO-ST, IEEE PHM 2012) bearing recordings, in the format of
the NAC authors' feature CSVs (docs/PROTOCOLS.md section 3, ``bearings``).

Raw layout (one folder per bearing, e.g. ``Full_Test_Set/Bearing2_7/``):
  ``acc_XXXXX.csv``: one vibration snapshot, 2,560 rows at 25.6 kHz (0.1 s every 10 s), columns
  ``hour, minute, second, microsecond, horizontal acc., vertical acc.``;
  ``temp_XXXXX.csv``: temperature, 600 rows per file, columns ``hour, minute, second, tenth of a
  second, temperature (deg C)``. Some files use ``;`` instead of ``,`` (all of Bearing2_7's temp files
  do); :func:`read_raw_csv` accepts both. A file with another column count, a row cut short, a
  non-numeric cell or (``acc``) another row count than 2,560 is a DataError naming the file.

What the published features are (checked against ``features/pronostia/Bearing2_7_features.csv`` and
the raw ``Full_Test_Set/Bearing2_7``, see ``tests/test_bearings.py``):

* Frames: the snapshots of a bearing are concatenated (file order) into one signal per channel,
  cut into frames of :data:`FRAME` = 1,000 samples every :data:`HOP` = 500 samples
  (``1 + (N - 1000) // 500`` rows: 1,176 for Bearing2_7's 230 snapshots) -- frames straddle
  snapshot boundaries, i.e. samples 10 s apart are treated as neighbours.
* Per channel and frame, 7 values in this order: energy, dominant frequency, spectral entropy,
  kurtosis (Fisher, biased: ``scipy.stats.kurtosis``), skewness (biased), mean, std (ddof 0).
  **kurtosis, skewness, mean and std match the published values to float precision.**
* ``Time`` = row index * 1000 / 25600 (``0.0390625`` per row, rounded to 5 decimals): the frame
  LENGTH in seconds per row although rows advance by 500 samples, and the 9.9 s between
  snapshots are ignored: it is a row counter in pseudo-seconds, not acquisition time. Reproduced as is.
* ``Degradation``: not stored in the raw data and its code is not published for PRONOSTIA. The
  published PRONOSTIA values are close to ``Time / Time[-1]`` (max deviation 0.0018 on Bearing1_3,
  0.048 on Bearing1_4, 0.025 on Bearing2_7); here exactly ``Time / Time[-1]``. (The authors' XJTU-SY
  label notebook integrates a degradation ODE instead, :func:`degradation_ode`; with their
  constants it stays near 0 for most of a run and rises steeply at the end, so it is not what
  produced the PRONOSTIA labels.)

Known differences (documented, asserted in the tests):

* energy, dominant frequency and spectral entropy: the authors' definition is not published and
  is NOT a plain FFT of the frame. Their dominant frequencies take only 100 values on a geometric grid
  from 550/27 = 20.37 Hz to 5000/27 = 185.19 Hz (ratio exp(0.022296) per step; every PRONOSTIA and
  HUST file), which looks like the scale grid of a wavelet/scalogram transform, and their energy
  is not a fixed multiple of the frame's sum of squares (ratio 120-260 over Bearing2_7's first
  rows). Here: Hann-windowed ``rfft`` of the frame, energy = sum of the power spectrum, dominant
  frequency = frequency (Hz) of the largest non-DC power bin (25.6 Hz resolution), spectral entropy =
  Shannon entropy of the normalised power spectrum / log(number of bins), in [0, 1]. Same names,
  same role, different numbers: do not mix rows extracted here with the published CSVs in one model.
* ``Temperature``: the published values are not raw readings (Bearing2_7's first rows are
  284.3, 269.1, 167.3 deg C, none of which occurs in its temp files) and their alignment is unknown.
  Here each frame gets the temperature linearly interpolated at the wall-clock time of its first
  sample, held constant outside the recorded range (deg C, as in the CSVs; the builder adds 273.15).
  Only the end agrees (Bearing2_7: last published row 85.911 deg C, here 85.91-85.97). A folder
  without temp files is an error unless a fallback temperature is named (``temperature_fallback_c``).
* ``Degradation``: ``Time / Time[-1]`` (above), within 0.025 of the published Bearing2_7 labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from nac.data.errors import DataError, numeric_columns, read_csv

#: sampling rate of PRONOSTIA's accelerometers (Hz)
FS = 25_600
#: rows of one raw vibration snapshot (0.1 s at 25.6 kHz)
SNAPSHOT_ROWS = 2560
#: the columns of the raw files, by kind (file name prefix)
RAW_COLUMNS = {
    "acc": ("hour", "minute", "second", "microsecond", "horizontal acceleration", "vertical acceleration"),
    "temp": ("hour", "minute", "second", "tenth of a second", "temperature"),
}
#: samples per feature frame and between frame starts (the published features' framing)
FRAME = 1000
HOP = 500
#: the 7 per-channel values, in the CSVs' order
CHANNEL_FEATURES = ("energy", "dominant_frequency", "spectral_entropy", "kurtosis", "skewness", "mean", "std")
#: Kelvin = deg C + KELVIN
KELVIN = 273.15
#: PRONOSTIA operating conditions by the first digit of the bearing name: (rpm, radial load N)
PRONOSTIA_CONDITIONS = {"1": (1800.0, 4000.0), "2": (1650.0, 4200.0), "3": (1500.0, 5000.0)}


def _raw_fix(path: Path | str) -> str:
    return (
        f"replace {Path(path).name} with the publisher's copy (FEMTO-ST PRONOSTIA, IEEE PHM 2012 data set; "
        "every acc_*.csv holds 2,560 rows of 6 values)"
    )


def read_raw_csv(path: Path | str, columns: Sequence[str] | None = None) -> np.ndarray:
    """A raw PRONOSTIA ``acc_*.csv`` or ``temp_*.csv`` as a float array; ``,`` or ``;`` separated.

    ``columns`` names the expected columns (default by file name: :data:`RAW_COLUMNS` ``temp`` for
    ``temp_*``, else ``acc``). A wrong column count, a row cut short, a non-numeric cell or an
    unreadable file raises a :class:`DataError` naming the file (and the line)."""
    path = Path(path)
    if columns is None:
        columns = RAW_COLUMNS["temp" if path.name.startswith("temp") else "acc"]
    with open(path, errors="replace") as handle:
        first = handle.readline()
    sep = ";" if ";" in first else ","
    frame = read_csv(path, _raw_fix(path), header=None, sep=sep)
    if frame.shape[1] != len(columns):
        raise DataError(
            path,
            None,
            f"has {frame.shape[1]} {sep!r}-separated columns, expected {len(columns)} ({', '.join(columns)})",
            _raw_fix(path),
        )
    frame.columns = list(columns)
    return numeric_columns(frame, list(columns), path, _raw_fix(path))


def bearing_files(folder: Path | str) -> tuple[list[Path], list[Path]]:
    """Sorted ``acc_*.csv`` and ``temp_*.csv`` files of one bearing folder (raises if no snapshot)."""
    folder = Path(folder)
    acc = sorted(folder.glob("acc_*.csv"))
    if not acc:
        raise FileNotFoundError(
            f"no acc_*.csv snapshots in {folder}: point at one PRONOSTIA bearing folder, "
            f"e.g. .../Full_Test_Set/Bearing2_7"
        )
    return acc, sorted(folder.glob("temp_*.csv"))


def seconds_of_day(hour, minute, second, fraction) -> np.ndarray:
    """Clock columns to seconds, unwrapped across midnight (the recordings can run overnight)."""
    t = np.asarray(hour) * 3600.0 + np.asarray(minute) * 60.0 + np.asarray(second) + np.asarray(fraction)
    jumps = np.concatenate([[0.0], np.cumsum(np.diff(t) < -43_200.0) * 86_400.0])
    return t + jumps


def frame_signal(signal: np.ndarray, frame: int = FRAME, hop: int = HOP) -> np.ndarray:
    """(n_frames, frame) view of a 1-D signal; ``1 + (len - frame) // hop`` frames."""
    if len(signal) < frame:
        raise ValueError(f"signal of {len(signal)} samples is shorter than one frame ({frame})")
    return np.lib.stride_tricks.sliding_window_view(signal, frame)[::hop]


def channel_features(frames: np.ndarray, fs: float = FS) -> np.ndarray:
    """(n, 7) features per frame in :data:`CHANNEL_FEATURES` order (module docstring for the spectral ones)."""
    n = frames.shape[1]
    window = np.hanning(n + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    energy = power.sum(1)
    dominant = freqs[1 + power[:, 1:].argmax(1)]
    p = power / np.where(energy > 0, energy, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(1) / np.log(p.shape[1])
    return np.column_stack(
        [
            energy,
            dominant,
            entropy,
            stats.kurtosis(frames, axis=1),
            stats.skew(frames, axis=1),
            frames.mean(1),
            frames.std(1),
        ]
    )


def frame_times(n_frames: int, frame: int = FRAME, fs: float = FS) -> np.ndarray:
    """The published ``Time`` column: row * frame / fs, rounded to 5 decimals (module docstring)."""
    return np.round(np.arange(n_frames) * frame / fs, 5)


def degradation_ode(time: np.ndarray, temperature_k: np.ndarray | float, rpm: float, load: float) -> np.ndarray:
    """The authors' degradation label: integrate their 6-state ODE over ``time``, min-max normalise.

    Restated from ``labels.ipynb`` of the authors' repository itxwaleedrazzaq/uqpcnn_rul (constants
    and equations as there; the last state D is the degradation). ``temperature_k`` (Kelvin) is a
    scalar or one value per time (linearly interpolated in between, extrapolated at the ends).
    With the notebook's constants the curve is ~0 for most of a run and rises steeply near its end
    (XJTU-SY Bearing1_1: 0.008 at 75 % of the run, 0.34 at 94 %)."""
    from scipy.integrate import odeint

    time = np.asarray(time, np.float64)
    temps = np.broadcast_to(np.asarray(temperature_k, np.float64), time.shape)

    def temp_at(t: float) -> float:  # the notebook's interp1d; np.interp holds the ends instead of extrapolating
        return float(np.interp(t, time, temps))

    k_b = 8.617e-5
    p = dict(
        C_load=12000.0,
        p=3.0,
        q=4.0,
        phi=1e-5,
        beta=1e-6,
        A_v=1e-5,
        H_hard=1.5e9,
        A_a=1e-6,
        gamma_r=1e-3,
        delta_c=1e-5,
        eta=1e6,
        zeta=1e12,
        k_o=1e-4,
        O_max=1.0,
        E_a=0.1,
        nu0=1e-5,
        E_vis=0.1,
        T0=293.15,
        psi=1e-6,
        rho=1e6,
        gamma_w=0.5,
        alpha=1e-5,
        zeta_L=0.5,
        m_cp=3.77e6,
        mu_f=0.005,
        h_A=5.0,
        T_a=293.15,
        xi=100.0,
        Dm=0.025,
    )

    def derivatives(y, t):
        _v_d, v, r, o, c_debris, _d = y
        temp = float(temp_at(t))
        omega = 2.0 * np.pi * rpm / 60.0
        d_o = p["k_o"] * (p["O_max"] - o) * np.exp(-p["E_a"] / (k_b * temp))
        d_temp = (p["mu_f"] * load * omega - p["h_A"] * (temp - p["T_a"]) + p["xi"] * d_o) / p["m_cp"]
        nu = p["nu0"] * np.exp(-p["alpha"] * o - p["E_vis"] / (k_b * temp) + p["E_vis"] / (k_b * p["T0"]))
        ds = np.pi * p["Dm"] * (rpm / 60.0)
        w_mod = 1.0 / (1.0 + p["eta"] * v + p["zeta"] * r**2)
        c_eff = p["C_load"] * (nu / p["nu0"]) * w_mod * np.exp(-p["psi"] * c_debris)
        d_vd = p["phi"] * (load / c_eff) ** p["q"] * rpm
        d_v = (p["A_v"] * load / p["H_hard"]) * ds + p["A_a"] * r
        d_r = p["gamma_r"] * d_v + p["delta_c"] * c_debris
        d_c = p["rho"] * d_v
        kf = (load / c_eff) ** p["p"] * rpm / (60.0 * 1e6)
        d_d = kf + p["beta"] * d_vd + p["gamma_w"] * d_v + p["zeta_L"] * d_temp
        return np.array([d_vd, d_v, d_r, d_o, d_c, d_d])

    d = odeint(derivatives, [0.0, 0.0, 1e-6, 0.0, 0.0, 0.0], time)[:, -1]
    span = d.max() - d.min()
    return (d - d.min()) / span if span > 0 else np.zeros_like(d)


def frame_temperatures(acc_clock: np.ndarray, frame_starts: np.ndarray, temp_files: Iterable[Path]) -> np.ndarray:
    """Temperature (deg C) at the clock time of each frame's first sample (module docstring)."""
    temps = np.concatenate([read_raw_csv(f, RAW_COLUMNS["temp"]) for f in temp_files])
    temp_clock = seconds_of_day(temps[:, 0], temps[:, 1], temps[:, 2], temps[:, 3] / 10.0)
    order = np.argsort(temp_clock, kind="stable")
    return np.interp(acc_clock[frame_starts], temp_clock[order], temps[order, 4])


def linear_label(time: np.ndarray) -> np.ndarray:
    """Degradation as the elapsed fraction of the run, ``Time / Time[-1]`` (zeros for a run of no length)."""
    return time / time[-1] if time[-1] > 0 else np.zeros_like(time)


def conditions_of(bearing: str) -> tuple[float, float]:
    """(rpm, load) of a PRONOSTIA bearing from its name (``Bearing2_7`` -> condition 2)."""
    digit = bearing.replace("Bearing", "")[:1]
    if digit not in PRONOSTIA_CONDITIONS:
        raise ValueError(
            f"cannot tell the PRONOSTIA operating condition of {bearing!r} (expected Bearing1_x .. 3_x); "
            f"pass rpm and load"
        )
    return PRONOSTIA_CONDITIONS[digit]


def read_snapshot(path: Path | str) -> np.ndarray:
    """One ``acc_*.csv``: (2,560, 6); any other row count is a truncated file (DataError)."""
    values = read_raw_csv(path, RAW_COLUMNS["acc"])
    if len(values) != SNAPSHOT_ROWS:
        raise DataError(
            path,
            None,
            f"has {len(values)} rows, expected {SNAPSHOT_ROWS} (0.1 s at 25.6 kHz): the file is truncated",
            _raw_fix(path),
        )
    return values


def extract_bearing(
    folder: Path | str,
    rpm: float | None = None,
    load: float | None = None,
    max_snapshots: int | None = None,
    progress: bool = False,
    temperature_fallback_c: float | None = None,
) -> pd.DataFrame:
    """Features of one raw PRONOSTIA bearing folder as a DataFrame in the authors' CSV format.

    Columns ``Horizontal``, ``Vertical`` (JSON lists of the 7 :data:`CHANNEL_FEATURES`), ``Time``,
    ``Temperature`` (deg C), ``Degradation``, ``RPM``, ``Load``. ``rpm``/``load`` default to the
    operating condition of the folder's name; ``max_snapshots`` reads only the first snapshots. A
    folder without ``temp_*.csv`` files needs ``temperature_fallback_c`` (deg C written on every row),
    else it is a DataError; a damaged raw file is a DataError naming it (:func:`read_raw_csv`)."""
    folder = Path(folder)
    acc_files, temp_files = bearing_files(folder)
    if max_snapshots is not None:
        acc_files = acc_files[:max_snapshots]
    if rpm is None or load is None:
        default_rpm, default_load = conditions_of(folder.name)
        rpm = default_rpm if rpm is None else rpm
        load = default_load if load is None else load
    if not temp_files and temperature_fallback_c is None:
        raise DataError(
            folder,
            None,
            "has no temp_*.csv files",
            "add the bearing's temperature files, or name the "
            "temperature to write instead (--temperature-fallback-c 25, deg C)",
        )
    iterator = acc_files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(acc_files, desc=f"{folder.name} snapshots", unit="file")
    snapshots = np.concatenate([read_snapshot(f) for f in iterator])
    clock = seconds_of_day(snapshots[:, 0], snapshots[:, 1], snapshots[:, 2], snapshots[:, 3] / 1e6)
    horizontal = channel_features(frame_signal(snapshots[:, 4]))
    vertical = channel_features(frame_signal(snapshots[:, 5]))
    n = len(horizontal)
    time = frame_times(n)
    if temp_files:
        temperature = frame_temperatures(clock, np.arange(n) * HOP, temp_files)
    else:
        temperature = np.full(n, float(temperature_fallback_c))
    degradation = linear_label(time)
    return pd.DataFrame(
        {
            "Horizontal": [json.dumps(row.tolist()) for row in horizontal],
            "Vertical": [json.dumps(row.tolist()) for row in vertical],
            "Time": time,
            "Temperature": temperature,
            "Degradation": degradation,
            "RPM": float(rpm),
            "Load": float(load),
        }
    )
