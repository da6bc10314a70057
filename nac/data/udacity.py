"""Udacity self-driving-car simulator recordings: steering regression (docs/PROTOCOLS.md section 2, ``udacity``).

Data: one or more recordings under ``<data_root>/udacity``. A recording is a folder holding a
``driving_log.csv`` and an ``IMG/`` folder: ``udacity/`` itself and/or any of its (non-hidden)
subfolders, at any depth, e.g. ``udacity/track1_lap1/driving_log.csv`` with ``udacity/track1_lap1/IMG/``.
Recordings are taken in the order of their folder names (``udacity/`` itself first); rows keep their
order inside a recording (recording order, about 14 frames per second). The log has one row per frame:
center, left and right image paths, steering, throttle, brake, speed. The simulator writes it without
a header and with absolute paths of the recording machine (Windows or Unix); the course's sample
recording has a header and relative paths. Both are read: a first row without a number in any of its
four numeric fields is a header, blank lines are skipped, and only the base name of each image path is
used, looked up in the ``IMG/`` folder next to that log (so two recordings may use the same names).

Bad data stops the build with one line (:class:`~nac.data.errors.DataError`) and the data root is
never written to: a row without exactly 7 fields, with an empty image path or with a steering,
throttle, brake or speed that is not a finite number names the log and its line; a missing image
names the log line that refers to it; an image that cannot be decoded as a 320x160 picture (truncated,
empty, not an image, other size) names the image file and the log line.

Preprocessing (every frame, every camera): crop raw rows 60 to 135 (``image[60:-25]`` of the 160x320
frame), resize to 200x66 with bilinear sampling at half-pixel centres (OpenCV ``INTER_LINEAR``
geometry -- the common ``cv2.resize(img, (200, 66), cv2.INTER_AREA)`` passes INTER_AREA as ``dst``, so
it is INTER_LINEAR), RGB -> YUV exactly as OpenCV's 8-bit ``COLOR_RGB2YUV`` (BT.601:
``Y = 0.299 R + 0.587 G + 0.114 B``, ``U = 0.492 (B - Y) + 128``, ``V = 0.877 (R - Y) + 128`` in
14-bit fixed point, rounded, saturated to uint8), then ``x / 127.5 - 1``. An item's ``x`` is
(1, 3, 66, 200) (one frame, channels YUV), ``t`` = [1.0], ``mask`` = [True], ``y`` = steering (float).

Training augmentation (the usual Udacity pipeline the paper uses), applied to a training item with
probability ``augment_probability`` (0.6), else the centre frame as it is: random camera (left
+0.2 steering, right -0.2, centre; 1/3 each), horizontal flip with probability 0.5 (steering
negated), random translation ``tx = 100 (u - 0.5)``, ``ty = 10 (u - 0.5)`` raw pixels (steering
+= 0.002 per pixel of ``tx``; uncovered pixels black), a random shadow (a line from a random point
of the top edge to one of the bottom edge of the raw frame; one side, chosen at random, darkened by
a factor U(0.2, 0.5) -- applied to RGB, which equals scaling HLS lightness for pixels of lightness
<= 0.5), brightness: HSV value times U(0.8, 1.2), saturated at 255. The usual implementation
augments the raw 320x160 frame before cropping; here the same geometry is applied to the resized
frame: each camera image is cached as a *band* of the resized image ``margin_rows`` (6) rows taller
at the top and bottom than the 66-row crop (sampled from the raw rows around the crop), shifted by
``tx * 200/320`` and ``ty * 66/75`` resized pixels (bilinear), then cut to the 66 crop rows. This
equals translate-then-crop up to interpolation rounding, and the cache is 3.3x smaller than raw frames.
Random numbers come from a generator seeded by ``(seed, row, n-th draw of that item)`` (and the
DataLoader worker seed when ``num_workers > 0``): the same seed gives the same augmented batches.

Cache: the uint8 RGB bands of all cameras of all recordings (N, 3, 78, 200, 3) are written once to
``<cache_dir>/udacity/bands_<key>.npy`` (memory-mapped on reading), keyed by path, size and
modification time of every log and image read (:func:`nac.data.sources.stat_key`), the row limit, the
band margin and :data:`PREPROCESS_VERSION`: a replaced image is decoded again. ``meta.source_files``
lists the same files (logs and images, absolute paths).

Protocols (every item is one frame, so no item spans two recordings):
``paper`` -- shuffled 5-fold over rows (``protocol.n_folds``, ``fold``, ``split_seed`` 42), the rows
  of all recordings pooled in order; the held-out fold is both validation and test (the checkpoint is
  chosen on the reported fold), the other folds train (with augmentation). Neighbouring frames 70 ms
  apart land in train and test, so this measures interpolation along one drive.
``clean`` -- with at least ``recording_split_min`` (3) recordings, by whole recordings: test and
  validation get ``round(fraction * n)`` recordings each (at least one; ``protocol.test_fraction``,
  ``protocol.val_fraction``), picked by a permutation seeded with ``protocol.split_seed``; the others
  train. With fewer recordings, contiguous blocks inside each recording: training (the first
  ``1 - val - test`` share), then validation, then test (the end of the drive), with ``margin`` frames
  dropped before the validation and before the test block, so every test frame is more than
  ``margin`` rows from any training or validation frame of its recording (``split_seed`` is not used).
  ``meta.extra["recordings"]`` gives each recording's name, log, rows, share (``train`` / ``val`` /
  ``test``, ``blocks`` or ``folds``) and its rows in each split; ``meta.extra["split_by"]`` says
  ``recording``, ``blocks`` or ``rows``. ``limit`` keeps the first N rows of each recording.
Metric: MSE of steering (``mode`` min); ``meta.extra`` also gives the test MSE of two trivial
predictors: the training mean steering and 0.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from nac.data.base import DatasetMeta, DatasetSplits
from nac.data.cache import cache_path, load_npy, save_atomic
from nac.data.errors import DataError
from nac.data.images import linear_sampling, load_rgb, rgb_to_yuv, translate
from nac.data.protocols import Protocol
from nac.data.sources import stat_key
from nac.data.splits import group_split, paper_fold

log = logging.getLogger(__name__)

FOLDER = "udacity"
LOG_NAME = "driving_log.csv"
COLUMNS = ["center", "left", "right", "steering", "throttle", "brake", "speed"]
CAMERAS = ("center", "left", "right")
#: bump when preprocessing changes, so old caches are not reused
PREPROCESS_VERSION = 1

RAW_HEIGHT, RAW_WIDTH = 160, 320
CROP_TOP, CROP_BOTTOM = 60, 135  # image[60:-25]
HEIGHT, WIDTH = 66, 200
#: extra resized rows cached above and below the crop, for vertical translation (6 rows = 6.8 raw rows)
MARGIN_ROWS = 6
Y_SCALE = (CROP_BOTTOM - CROP_TOP) / HEIGHT  # raw rows per resized row
X_SCALE = RAW_WIDTH / WIDTH

#: steering offset of the side cameras (left +, right -)
CAMERA_OFFSET = 0.2
TRANSLATE_RANGE = (100.0, 10.0)  # raw pixels (x, y)
STEERING_PER_PIXEL = 0.002
BRIGHTNESS_RANGE = (0.8, 1.2)
SHADOW_RANGE = (0.2, 0.5)

#: the Udacity course's public sample recording (track 1, about 8,000 rows; header, relative paths)
SAMPLE_URL = "https://d17h27t6h515a5.cloudfront.net/topher/2016/December/584f6edd_data/data.zip"
DOWNLOAD_HINT = (
    "Udacity recordings come from the Udacity self-driving-car simulator: record your own (Training "
    "mode writes driving_log.csv and IMG/) or unpack a published sample recording (e.g. the course's "
    "track-1 sample " + SAMPLE_URL + ", whose data/ folder holds both) so that {folder}/driving_log.csv "
    "and {folder}/IMG/ exist"
)


# ----------------------------------------------------------------------------------------- reading


@dataclass
class Recording:
    """One drive: its ``driving_log.csv`` rows (with the log ``line`` of each) and their image paths."""

    name: str  # folder relative to <data_root>/udacity ("." for that folder itself)
    log: Path
    frame: pd.DataFrame  # COLUMNS + "line" (1-based line of the row in the log)
    paths: list[list[Path]]  # [[center, left, right], ...] per row

    def origin(self, row: int) -> str:
        """Where row ``row`` comes from, for messages: ``<log> line <n>``."""
        return f"{self.log} line {int(self.frame['line'].iloc[row])}"


def find_logs(data_root: Path | str) -> list[Path]:
    """Every ``driving_log.csv`` under ``<data_root>/udacity`` (that folder and its non-hidden subfolders),
    sorted by folder; a FileNotFoundError saying how to get one when there is none."""
    folder = Path(data_root) / FOLDER
    logs = []
    if folder.is_dir():
        logs = sorted(
            (
                p
                for p in folder.rglob(LOG_NAME)
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            ),
            key=lambda p: p.parent.relative_to(folder).parts,
        )
    if not logs:
        raise FileNotFoundError(
            f"Udacity data not found: expected {folder / LOG_NAME} and {folder / 'IMG'}/ "
            f"(or one such pair per recording in subfolders of {folder}). " + DOWNLOAD_HINT.format(folder=folder)
        )
    return logs


def _base_name(path: str) -> str:
    """The file name of a Windows or Unix path (``C:\\a\\IMG\\x.jpg`` -> ``x.jpg``)."""
    return re.split(r"[\\/]", str(path).strip())[-1]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def read_log(path: Path | str) -> pd.DataFrame:
    """The log as a DataFrame with :data:`COLUMNS` plus ``line`` (its 1-based line in the file).

    Image columns hold base names, numbers are floats. A first row without a number in any of the
    steering, throttle, brake and speed fields is a header (the course's sample recording has one)
    and is skipped; blank lines are skipped. Any other row must have 7 fields, three image paths and
    four finite numbers, else a :class:`DataError` names the line.
    """
    path = Path(path)
    fix = (
        f"fix or delete that line of {path.name} (the simulator writes {', '.join(COLUMNS)}; quote a path with a comma)"
    )
    rows, lines = [], []
    first = True
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        try:
            for fields in reader:
                line = reader.line_num
                if not any(field.strip() for field in fields):
                    continue
                if len(fields) != len(COLUMNS):
                    raise DataError(
                        path, f"line {line}", f"has {len(fields)} comma-separated fields, expected {len(COLUMNS)}", fix
                    )
                numbers = [_number(field) for field in fields[3:]]
                header, first = first and all(value is None for value in numbers), False
                if header:
                    continue
                for column, field, value in zip(COLUMNS[3:], fields[3:], numbers):
                    if value is None:
                        raise DataError(
                            path, f"line {line}", f"{column} is {field.strip()!r}, not a finite number", fix
                        )
                for column, field in zip(CAMERAS, fields[:3]):
                    if not _base_name(field):
                        raise DataError(path, f"line {line}", f"the {column} image path is empty", fix)
                rows.append([_base_name(field) for field in fields[:3]] + numbers)
                lines.append(line)
        except csv.Error as err:
            raise DataError(path, f"line {reader.line_num}", f"is not valid CSV ({err})", fix) from err
    if not rows:
        raise DataError(path, None, "holds no frames", "record a drive into it, or remove the file (and its folder)")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["line"] = lines
    return frame


def image_paths(frame: pd.DataFrame, image_dir: Path) -> list[list[Path]]:
    """``[[center, left, right], ...]`` paths in ``image_dir``; a DataError naming the log line of the first
    missing image (the log is ``image_dir/../driving_log.csv``)."""
    paths = [[image_dir / frame[c].iloc[i] for c in CAMERAS] for i in range(len(frame))]
    missing = [(i, p) for i, row in enumerate(paths) for p in row if not p.is_file()]
    if missing:
        row, first = missing[0]
        line = int(frame["line"].iloc[row]) if "line" in frame else row + 1
        raise DataError(
            image_dir.parent / LOG_NAME,
            f"line {line}",
            f"image {first.name} not found in {image_dir} ({len(missing)} of {3 * len(paths)} images "
            f"referenced by this log are missing)",
            "copy the recording's IMG/ folder next to its driving_log.csv, or delete the rows whose images are gone",
        )
    return paths


def read_recordings(data_root: Path | str, limit: int | None = None) -> list[Recording]:
    """Every recording under ``<data_root>/udacity`` (see the module docstring), each cut to its first
    ``limit`` rows when given; images are looked up in the ``IMG/`` folder next to each log."""
    folder = Path(data_root) / FOLDER
    recordings = []
    for log_path in find_logs(data_root):
        frame = read_log(log_path)
        if limit is not None:
            frame = frame.iloc[: int(limit)].reset_index(drop=True)
        name = log_path.parent.relative_to(folder).as_posix()
        recordings.append(Recording(name, log_path, frame, image_paths(frame, log_path.parent / "IMG")))
    return recordings


def source_files(recordings: Sequence[Recording]) -> list[str]:
    """Absolute paths of every file the recordings are read from: each log, then its images."""
    files = []
    for recording in recordings:
        files.append(str(recording.log.resolve()))
        files.extend(str(path.resolve()) for row in recording.paths for path in row)
    return files


# ----------------------------------------------------------------------------------- preprocessing


def _band_sampling(margin_rows: int):
    rows = np.arange(-margin_rows, HEIGHT + margin_rows, dtype=np.float64)
    # inside the crop clamp to the crop (as resizing the cropped array does); the margin reads raw rows
    inside = (rows >= 0) & (rows < HEIGHT)
    low = np.where(inside, CROP_TOP, 0)
    high = np.where(inside, CROP_BOTTOM - 1, RAW_HEIGHT - 1)
    src = np.clip((rows + 0.5) * Y_SCALE - 0.5 + CROP_TOP, low, high)
    y0 = np.floor(src).astype(np.int64)
    y1 = np.minimum(y0 + 1, high).astype(np.int64)
    wy = (src - y0).astype(np.float32)
    x0, x1, wx = linear_sampling(np.arange(WIDTH, dtype=np.float64), X_SCALE, 0.0, 0.0, RAW_WIDTH - 1)
    return y0, y1, wy, x0, x1, wx


def resize_band(rgb: np.ndarray, margin_rows: int = MARGIN_ROWS) -> np.ndarray:
    """A raw (160, 320, 3) uint8 frame -> its resized crop with ``margin_rows`` extra rows above and below:
    (66 + 2 margin, 200, 3) uint8. Rows ``margin_rows : margin_rows + 66`` are the preprocessed crop."""
    if rgb.shape != (RAW_HEIGHT, RAW_WIDTH, 3):
        raise ValueError(f"expected a {RAW_WIDTH}x{RAW_HEIGHT} RGB frame (the simulator's size), got shape {rgb.shape}")
    y0, y1, wy, x0, x1, wx = _band_sampling(margin_rows)
    img = rgb.astype(np.float32)
    rows = img[y0] * (1 - wy)[:, None, None] + img[y1] * wy[:, None, None]
    out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def crop_resize(rgb: np.ndarray) -> np.ndarray:
    """The paper's crop (rows 60:-25) and resize to 200x66: (66, 200, 3) uint8 RGB."""
    return resize_band(rgb, 0)


def to_input(rgb: np.ndarray) -> torch.Tensor:
    """A (66, 200, 3) uint8 RGB crop -> the model input (3, 66, 200) float: YUV / 127.5 - 1."""
    yuv = rgb_to_yuv(rgb).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(yuv.transpose(2, 0, 1)) / 127.5 - 1.0)


def preprocess(rgb: np.ndarray) -> torch.Tensor:
    """A raw (160, 320, 3) uint8 RGB frame -> (3, 66, 200) float: crop, resize, YUV, scale."""
    return to_input(crop_resize(rgb))


# ------------------------------------------------------------------------------------ augmentation


def _raw_coordinates(height: int, margin_rows: int):
    """Raw-frame (x, y) of each band pixel centre."""
    rows = np.arange(height, dtype=np.float32) - margin_rows
    y = (rows + 0.5) * Y_SCALE - 0.5 + CROP_TOP
    x = (np.arange(WIDTH, dtype=np.float32) + 0.5) * X_SCALE - 0.5
    return x[None, :], y[:, None]


def augment(bands: np.ndarray, steering: float, rng: np.random.Generator, margin_rows: int = MARGIN_ROWS):
    """One augmented training sample from a row's three camera bands (3, 66 + 2m, 200, 3) uint8.

    Returns ``(crop (66, 200, 3) uint8 RGB, steering)``; the steps and ranges are in the module docstring.
    """
    camera = int(rng.integers(3))  # 0 centre, 1 left, 2 right
    steering = float(steering) + (0.0, CAMERA_OFFSET, -CAMERA_OFFSET)[camera]
    band = bands[camera].astype(np.float32)
    if rng.random() < 0.5:
        band = band[:, ::-1]
        steering = -steering
    tx = TRANSLATE_RANGE[0] * (rng.random() - 0.5)
    ty = TRANSLATE_RANGE[1] * (rng.random() - 0.5)
    steering += STEERING_PER_PIXEL * tx
    band = translate(band, tx / X_SCALE, ty / Y_SCALE)
    # shadow: line from (x1, 0) to (x2, 160) in raw coordinates, one side darkened
    x1, x2 = RAW_WIDTH * rng.random(), RAW_WIDTH * rng.random()
    side = int(rng.integers(2))
    darkness = rng.uniform(*SHADOW_RANGE)
    xs, ys = _raw_coordinates(band.shape[0], margin_rows)
    above = (ys * (x2 - x1) - RAW_HEIGHT * (xs - x1)) > 0
    band = np.where((above == bool(side))[..., None], band * darkness, band)
    # brightness: HSV value times r, saturated at 255 (= scaling RGB by min(r, 255 / max channel))
    ratio = rng.uniform(*BRIGHTNESS_RANGE)
    value = band.max(axis=-1, keepdims=True)
    band = band * np.minimum(ratio, 255.0 / np.maximum(value, 1e-6))
    crop = band[margin_rows : margin_rows + HEIGHT]
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8), steering


# --------------------------------------------------------------------------------------- the cache


def decode_band(path: Path, margin_rows: int = MARGIN_ROWS, origin: str | None = None) -> np.ndarray:
    """The band (66 + 2m, 200, 3) uint8 of one camera image; a DataError naming the file (and ``origin``,
    the log line that refers to it) when it is not a readable 320x160 image."""
    try:
        return resize_band(load_rgb(path), margin_rows)
    except (OSError, ValueError, SyntaxError) as err:  # PIL: UnidentifiedImageError, truncated file; bad size
        problem = str(err).split("\n")[0] or type(err).__name__
        raise DataError(
            path,
            f"referenced by {origin}" if origin else None,
            f"cannot be read as a {RAW_WIDTH}x{RAW_HEIGHT} image ({problem})",
            "restore the file from the original recording, or delete that row of the driving log",
        ) from err


def decode_bands(
    paths: Sequence[Sequence[Path]], margin_rows: int = MARGIN_ROWS, origins: Sequence[str] | None = None
) -> np.ndarray:
    """(N, 3 cameras, 66 + 2m, 200, 3) uint8 RGB bands of the given ``[[center, left, right], ...]``;
    ``origins[i]`` names the log line of row ``i`` in error messages."""
    out = np.empty((len(paths), 3, HEIGHT + 2 * margin_rows, WIDTH, 3), np.uint8)
    for i, row in enumerate(paths):
        for c, path in enumerate(row):
            out[i, c] = decode_band(path, margin_rows, origins[i] if origins is not None else None)
    return out


def load_bands(
    recordings: Sequence[Recording], cache_dir: Path | None, limit: int | None, margin_rows: int = MARGIN_ROWS
) -> tuple[np.ndarray, Path | None, bool]:
    """The bands of every row of every recording (in order), from the cache when present:
    ``(bands, cache_file, from_cache)``. The cache is keyed on :func:`~nac.data.sources.stat_key` (path,
    size, modification time) of every log and image, the row limit, the margin and the preprocessing
    version, so a replaced image is decoded again."""
    paths = [row for recording in recordings for row in recording.paths]
    cache_file = cache_path(
        cache_dir,
        FOLDER,
        "bands",
        ".npy",
        v=PREPROCESS_VERSION,
        sources=stat_key(source_files(recordings)),
        limit=limit,
        margin_rows=margin_rows,
    )
    if cache_file is not None:
        bands = load_npy(cache_file, (len(paths), 3, HEIGHT + 2 * margin_rows, WIDTH, 3))  # memory-mapped
        if bands is not None:
            log.info("Udacity frames loaded from cache %s", cache_file)
            return bands, cache_file, True
    log.info("decoding %d Udacity images", 3 * len(paths))
    origins = [recording.origin(i) for recording in recordings for i in range(len(recording.frame))]
    bands = decode_bands(paths, margin_rows, origins)
    if cache_file is not None:
        save_atomic(cache_file, bands)
    return bands, cache_file, False


# ------------------------------------------------------------------------------------- the dataset


class UdacityFrames(Dataset):
    """Rows of a recording as single-frame items; training items may be augmented.

    ``bands`` (N, 3, 66 + 2m, 200, 3) uint8 for all rows of the recording (shared, possibly
    memory-mapped), ``steering`` (N,), ``rows`` the rows of this split.
    """

    def __init__(
        self,
        bands: np.ndarray,
        steering: np.ndarray,
        rows: Sequence[int],
        augment: bool = False,
        probability: float = 0.6,
        seed: int = 0,
        margin_rows: int = MARGIN_ROWS,
    ):
        self.bands, self.steering = bands, np.asarray(steering, np.float32)
        self.rows = np.asarray(rows, np.int64)
        self.augment, self.probability, self.seed = bool(augment), float(probability), int(seed)
        self.margin_rows = int(margin_rows)
        self._draws = np.zeros(len(self.rows), np.int64)  # how often each item was drawn (epoch counter)

    def __len__(self) -> int:
        return len(self.rows)

    def _generator(self, i: int) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        draw = int(self._draws[i])
        self._draws[i] += 1
        # in a worker the counters restart every epoch; the worker seed (drawn from the loader's seeded
        # generator each epoch) tells the epochs apart
        worker_seed = 0 if worker is None else int(worker.seed % (2**63))
        return np.random.default_rng([self.seed, int(self.rows[i]), draw, worker_seed])

    def frame(self, i: int) -> tuple[np.ndarray, float]:
        """Item ``i`` as ``(crop (66, 200, 3) uint8 RGB, steering)``, augmented where enabled."""
        row = int(self.rows[i])
        steering = float(self.steering[row])
        if self.augment:
            rng = self._generator(i)
            if rng.random() < self.probability:
                return augment(self.bands[row], steering, rng, self.margin_rows)
        m = self.margin_rows
        return np.asarray(self.bands[row, 0, m : m + HEIGHT]), steering

    def __getitem__(self, i: int) -> dict:
        crop, steering = self.frame(i)
        return {
            "x": to_input(crop)[None],
            "t": torch.ones(1),
            "mask": torch.ones(1, dtype=torch.bool),
            "y": torch.tensor(steering, dtype=torch.float32),
        }


# ---------------------------------------------------------------------------------------- protocols


def contiguous_blocks(n: int, val_fraction: float, test_fraction: float, margin: int):
    """Rows (train, val, test) as contiguous blocks ``train | margin | val | margin | test``."""
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    n_train = n - n_test - n_val - 2 * margin
    if n_test < 1 or n_val < 1 or n_train < 1:
        raise ValueError(
            f"the clean protocol cannot cut {n} rows into train / val ({val_fraction}) / test "
            f"({test_fraction}) blocks with margin={margin}; use a longer recording or a smaller "
            "dataset.builder.margin"
        )
    train = np.arange(n_train)
    val = np.arange(n_train + margin, n_train + margin + n_val)
    test = np.arange(n - n_test, n)
    return train, val, test


def split_recordings(n: int, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """The split (``train``, ``val`` or ``test``) of each of ``n`` recordings: test and validation get
    ``round(fraction * n)`` recordings each (at least one), picked by a permutation seeded with ``seed``;
    the rest train."""
    n_test, n_val = max(1, round(test_fraction * n)), max(1, round(val_fraction * n))
    if n - n_test - n_val < 1:
        raise ValueError(
            f"the clean protocol cannot split {n} recordings into train / val ({n_val}) / test "
            f"({n_test}) by recording; add recordings, or raise dataset.builder.recording_split_min "
            f"above {n} to cut each recording into contiguous blocks instead"
        )
    _, val, test = group_split(range(n), val_fraction, test_fraction, seed, kind="recording")
    return ["test" if i in test else "val" if i in val else "train" for i in range(n)]


def _clean_rows(
    recordings: Sequence[Recording], starts: np.ndarray, protocol: Protocol, margin: int, recording_split_min: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Pooled rows (train, val, test) of the clean protocol and each recording's share (see the docstring)."""
    val_fraction, test_fraction = protocol.val_fraction, protocol.test_fraction
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    if len(recordings) >= recording_split_min:
        shares = split_recordings(len(recordings), val_fraction, test_fraction, protocol.split_seed)
        for i, share in enumerate(shares):
            parts[share].append(np.arange(starts[i], starts[i + 1]))
    else:
        shares = ["blocks"] * len(recordings)
        for i, recording in enumerate(recordings):
            try:
                blocks = contiguous_blocks(len(recording.frame), val_fraction, test_fraction, margin)
            except ValueError as err:
                raise ValueError(f"{recording.log}: {err}") from err
            for key, block in zip(("train", "val", "test"), blocks):
                parts[key].append(block + starts[i])
    rows = [np.concatenate(parts[key]) if parts[key] else np.zeros(0, np.int64) for key in ("train", "val", "test")]
    return rows[0], rows[1], rows[2], shares


def build(
    protocol: Mapping,
    data_root: Path,
    seed: int = 0,
    cache_dir: Path | None = None,
    margin: int = 20,
    augment: bool = True,
    augment_probability: float = 0.6,
    limit: int | None = None,
    recording_split_min: int = 3,
) -> DatasetSplits:
    """Udacity splits for ``protocol`` (``paper`` or ``clean``, see the module docstring).

    ``margin``: frames dropped between the clean protocol's blocks; ``augment``: training augmentation
    on/off; ``limit``: keep the first N rows of each recording's log (quick tests); ``recording_split_min``:
    the clean protocol splits by whole recordings when there are at least this many, else by contiguous
    blocks inside each recording. ``seed`` seeds the augmentation.
    """
    protocol = Protocol.parse("udacity", protocol)
    name = protocol.name
    if data_root is None:
        raise FileNotFoundError(
            "Udacity needs a data root holding udacity/driving_log.csv and udacity/IMG/ "
            "(paths.data_root or $NAC_DATA_ROOT). " + DOWNLOAD_HINT.format(folder="udacity")
        )
    if limit is not None and int(limit) < 1:
        raise ValueError(f"dataset.builder.limit={limit} must be a positive number of rows (or null for all rows)")
    recordings = read_recordings(data_root, limit)
    bands, cache_file, from_cache = load_bands(recordings, cache_dir, limit)
    steering = np.concatenate([recording.frame["steering"].to_numpy(np.float32) for recording in recordings])
    starts = np.cumsum([0] + [len(recording.frame) for recording in recordings])
    n = len(steering)
    if protocol.is_paper:  # rows of all recordings pooled in order
        train, val = paper_fold(protocol, n)
        test, shares = val, ["folds"] * len(recordings)
    else:
        train, val, test, shares = _clean_rows(recordings, starts, protocol, int(margin), int(recording_split_min))

    def split(rows, training: bool) -> UdacityFrames:
        return UdacityFrames(
            bands, steering, rows, augment=training and augment, probability=augment_probability, seed=seed
        )

    owner = np.repeat(np.arange(len(recordings)), np.diff(starts))
    per_recording = [
        {
            "name": recording.name,
            "log": str(recording.log),
            "n_rows": len(recording.frame),
            "split": share,
            **{key: int(np.sum(owner[rows] == i)) for key, rows in (("train", train), ("val", val), ("test", test))},
        }
        for i, (recording, share) in enumerate(zip(recordings, shares))
    ]
    train_mean = float(steering[train].mean())
    meta = DatasetMeta(
        name="udacity",
        input_dim=3,
        output_dim=1,
        task="regression",
        metric="mse",
        metric_mode="min",
        protocol=name,
        time_unit="token (PilotNet feature-map slice; t = 1)",
        fold=protocol.record_fold,
        source_files=source_files(recordings),
        extra={
            "n_rows": n,
            "rows": {"train": len(train), "val": len(val), "test": len(test)},
            "recordings": per_recording,
            "split_by": {"clean": "recording" if shares[0] != "blocks" else "blocks", "paper": "rows"}[name],
            "margin": int(margin) if name == "clean" else None,
            "augment": bool(augment),
            "augment_probability": float(augment_probability),
            "limit": limit,
            "train_mean_steering": train_mean,
            "baseline_test_mse_train_mean": float(np.mean((steering[test] - train_mean) ** 2)),
            "baseline_test_mse_zero": float(np.mean(steering[test].astype(np.float64) ** 2)),
            "cache_file": str(cache_file) if cache_file else None,
            "from_cache": from_cache,
        },
    )
    return DatasetSplits(split(train, True), split(val, False), split(test, False), meta=meta)
