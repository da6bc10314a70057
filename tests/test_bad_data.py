"""Bad data (issue 11, items 8-9): a damaged file gives one DataError line naming the file, the row or
field and what to do; nothing damaged gets through as NaN; the data root is never written to.

Every corrupted file is a small copy under tmp_path (synthetic, or a truncated copy of a shared
file); the shared data root is only read.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nac.data import bearing_features as bf
from nac.data import bearings as br
from nac.data import carracing as cr
from nac.data import cmapss, emnist
from nac.data import person_activity as par
from nac.data.errors import DataError
from nac.data.idx import MNIST_FILES
from tests.conftest import SHARED_DATA, run_cli
from tests.test_bearings import CLEAN as BEARINGS_CLEAN
from tests.test_bearings import SYNTHETIC, synthetic_root, write_feature_file
from tests.test_carracing import PAPER as CARRACING_PAPER
from tests.test_carracing import write_synthetic_recording
from tests.test_cmapss import CLEAN as CMAPSS_CLEAN
from tests.test_cmapss import write_fd002_like
from tests.test_emnist import write_synthetic_mnist


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: compared before and after a failed load."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def raises_one_line(call, path: Path, *fragments: str) -> str:
    """Run ``call``; it must raise a DataError whose one-line message names ``path`` and each fragment."""
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- C-MAPSS


@pytest.fixture
def fd002(tmp_path) -> Path:
    """A tiny synthetic FD002 under tmp_path/cmapss; returns the data root."""
    write_fd002_like(tmp_path / "cmapss")
    return tmp_path


def _build_fd002(root: Path):
    return cmapss.build(CMAPSS_CLEAN, root, subset="FD002")


def test_cmapss_row_cut_mid_row_names_file_and_line(fd002):
    path = fd002 / "cmapss" / "train_FD002.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])  # the file ends inside its last row
    before = tree_state(fd002)
    raises_one_line(lambda: _build_fd002(fd002), path, f"line {len(lines)}", "truncated")
    assert tree_state(fd002) == before  # nothing written into the data root


def test_cmapss_short_row_in_the_middle_and_extra_field(fd002):
    path = fd002 / "cmapss" / "test_FD002.txt"
    lines = path.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:20])
    path.write_text("\n".join(lines) + "\n")
    raises_one_line(lambda: _build_fd002(fd002), path, "line 5", "column s16")
    lines = path.read_text().splitlines()
    write_fd002_like(fd002 / "cmapss")
    lines = path.read_text().splitlines()
    lines[6] += " 1.0"  # 27 fields
    path.write_text("\n".join(lines) + "\n")
    raises_one_line(lambda: _build_fd002(fd002), path, "line 7", "26")


def test_cmapss_empty_file_and_non_numeric_cell(fd002):
    path = fd002 / "cmapss" / "train_FD002.txt"
    path.write_bytes(b"")
    raises_one_line(lambda: _build_fd002(fd002), path, "is empty", "download_data.py cmapss")
    write_fd002_like(fd002 / "cmapss")
    lines = path.read_text().splitlines()
    fields = lines[2].split()
    fields[7] = "abc"  # sensor 3
    lines[2] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    raises_one_line(lambda: _build_fd002(fd002), path, "line 3", "column s3", "'abc'")


def test_cmapss_bad_rul_file_names_the_line(fd002):
    path = fd002 / "cmapss" / "RUL_FD002.txt"
    path.write_text("20\nx1\n7\n")
    raises_one_line(lambda: _build_fd002(fd002), path, "line 2", "'x1'")
    path.write_text("20\n140\n")
    raises_one_line(lambda: _build_fd002(fd002), path, "2 values", "3 engines")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cmapss" / "train_FD001.txt").is_file(), reason="no shared C-MAPSS FD001")
def test_cli_reports_a_truncated_cmapss_copy_in_one_line(tmp_path):
    """End to end: a truncated copy of the real FD001 stops the CLI with exit 2 and one error line."""
    root = tmp_path / "data"
    (root / "cmapss").mkdir(parents=True)
    for kind in ("train", "test", "RUL"):
        source = SHARED_DATA / "cmapss" / f"{kind}_FD001.txt"
        data = source.read_bytes()
        (root / "cmapss" / source.name).write_bytes(data[: len(data) // 2] if kind == "train" else data)
    bad = root / "cmapss" / "train_FD001.txt"
    cut_line = bad.read_text().count("\n") + 1
    before = tree_state(root)
    done = run_cli(
        "experiment=none",
        "dataset=cmapss",
        "model=lstm",
        f"paths.data_root={root}",
        f"paths.output_root={tmp_path / 'out'}",
        "trainer.epochs=1",
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"nac-bench: error: dataset (cmapss, clean): {bad}: line {cut_line}: "
        + errors[0].split(f"line {cut_line}: ", 1)[1]
    ], done.stderr[-2000:]
    assert "truncated" in errors[0] and "Traceback" not in done.stderr
    assert tree_state(root) == before


# ---------------------------------------------------------------- bearing feature files


@pytest.fixture
def bearing_root(tmp_path) -> Path:
    return synthetic_root(tmp_path / "data")


def _test_bearing(root: Path) -> Path:
    return root / "bearings" / "features" / "pronostia" / "Bearing1_3_features.csv"


def _build_bearings(root: Path, cache: Path):
    return br.build(BEARINGS_CLEAN, root, cache_dir=cache, **SYNTHETIC)


def test_truncated_gzip_feature_file(bearing_root, tmp_path):
    plain = _test_bearing(bearing_root)
    packed = plain.with_name(plain.name + ".gz")
    data = gzip.compress(plain.read_bytes())
    plain.unlink()
    packed.write_bytes(data[: len(data) // 2])  # a download cut short
    before = tree_state(bearing_root)
    raises_one_line(
        lambda: _build_bearings(bearing_root, tmp_path / "cache"),
        packed,
        "cannot be read",
        "EOFError",
        "extract_bearing_features.py",
    )
    assert tree_state(bearing_root) == before
    packed.write_bytes(b"")
    raises_one_line(lambda: _build_bearings(bearing_root, tmp_path / "cache"), packed, "is empty")


@pytest.mark.skipif(not (SHARED_DATA / "bearings" / "features" / "pronostia").is_dir(), reason="no shared bearings")
def test_truncated_copy_of_a_real_gzip_file(tmp_path):
    source = SHARED_DATA / "bearings" / "features" / "pronostia" / "Bearing2_7_features.csv.gz"
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes()[:-100])
    raises_one_line(lambda: br.read_bearing(copy, br.parse_ref("Bearing2_7")), copy, "cannot be read")


def test_row_cut_mid_row_names_the_line(bearing_root, tmp_path):
    path = _test_bearing(bearing_root)
    lines = path.read_text().splitlines()
    cut = lines[-1].rsplit(",", 4)[0]  # the last row ends after its Time value
    path.write_text("\n".join(lines[:-1] + [cut]) + "\n")
    raises_one_line(
        lambda: _build_bearings(bearing_root, tmp_path / "cache"),
        path,
        f"line {len(lines)}",
        "column Temperature is empty",
    )


def test_nan_label_names_file_and_row(bearing_root, tmp_path):
    path = _test_bearing(bearing_root)
    frame = pd.read_csv(path)
    frame.loc[11, "Degradation"] = np.nan
    frame.to_csv(path, index=False)
    raises_one_line(
        lambda: _build_bearings(bearing_root, tmp_path / "cache"), path, "line 13", "column Degradation is empty"
    )
    frame.loc[11, "Degradation"] = 1.5
    frame.to_csv(path, index=False)
    raises_one_line(lambda: _build_bearings(bearing_root, tmp_path / "cache"), path, "line 13", "1.5 is outside [0, 1]")


@pytest.mark.parametrize(
    "cell, fragment",
    [
        ("[1.0, 2.0", "is not a JSON list"),
        ("[1, 2, 3, 4, 5, 6]", "7 numbers"),
        ("[1, 2, 3, 4, NaN, 6, 7]", "value 5 (skewness) is nan"),
    ],
)
def test_bad_channel_list_names_line_and_column(bearing_root, tmp_path, cell, fragment):
    path = _test_bearing(bearing_root)
    frame = pd.read_csv(path)
    frame.loc[4, "Vertical"] = cell
    frame.to_csv(path, index=False)
    raises_one_line(
        lambda: _build_bearings(bearing_root, tmp_path / "cache"), path, "line 6, column Vertical", fragment
    )


def test_missing_feature_column(bearing_root, tmp_path):
    path = _test_bearing(bearing_root)
    write_feature_file(path, columns=("Horizontal", "Time", "Temperature", "Degradation"))
    raises_one_line(lambda: _build_bearings(bearing_root, tmp_path / "cache"), path, "column Vertical: missing")


# ---------------------------------------------------------------- raw PRONOSTIA snapshots and the extractor


def write_raw_bearing(folder: Path, snapshots: int = 2, temp: bool = True) -> Path:
    """A synthetic raw PRONOSTIA folder (``BearingX_Y`` layout): acc files of 2,560 rows, one temp file."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(snapshots):
        micro = np.arange(bf.SNAPSHOT_ROWS) * 39.0625
        n = bf.SNAPSHOT_ROWS
        rows = np.column_stack(
            [np.full(n, 9), np.full(n, 10 + k), np.zeros(n), micro, rng.normal(size=n), rng.normal(size=n)]
        )
        np.savetxt(folder / f"acc_{k + 1:05d}.csv", rows, fmt=["%d", "%d", "%d", "%.1f", "%.3f", "%.3f"], delimiter=",")
    if temp:
        clock = np.column_stack(
            [np.full(60, 9), 10 + np.arange(60) // 30, np.arange(60) % 30 * 2, np.zeros(60), np.linspace(30, 31, 60)]
        )
        np.savetxt(folder / "temp_00001.csv", clock, fmt=["%d", "%d", "%d", "%d", "%.2f"], delimiter=";")
    return folder


def _extract(folder: Path, out: Path) -> tuple[int, str]:
    from scripts.extract_bearing_features import main

    return main([str(folder), "--out", str(out), "--no-progress"])


def test_extractor_on_good_synthetic_raw_folder(tmp_path):
    folder = write_raw_bearing(tmp_path / "raw" / "Bearing1_1")
    frame = bf.extract_bearing(folder)
    assert len(frame) == 1 + (2 * bf.SNAPSHOT_ROWS - bf.FRAME) // bf.HOP
    assert np.isfinite(frame[["Time", "Temperature", "Degradation"]].to_numpy()).all()
    assert 30 <= frame["Temperature"].min() and frame["Temperature"].max() <= 31


@pytest.mark.parametrize(
    "damage, fragments",
    [
        ("five_columns", ("has 5 ','-separated columns, expected 6",)),
        ("cut_mid_row", ("line 2560", "column vertical acceleration is empty")),
        ("missing_rows", ("has 2000 rows, expected 2560", "truncated")),
        ("empty", ("is empty",)),
        ("text", ("line 8", "'abc'")),
    ],
)
def test_damaged_snapshot_is_one_line_naming_it(tmp_path, capsys, damage, fragments):
    folder = write_raw_bearing(tmp_path / "raw" / "Bearing1_1")
    bad = folder / "acc_00002.csv"
    lines = bad.read_text().splitlines()
    if damage == "five_columns":
        bad.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    elif damage == "cut_mid_row":
        bad.write_text("\n".join(lines[:-1] + [lines[-1].rsplit(",", 1)[0] + ","]))
    elif damage == "missing_rows":
        bad.write_text("\n".join(lines[:2000]) + "\n")
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        lines[7] = lines[7].replace(lines[7].split(",")[4], "abc")
        bad.write_text("\n".join(lines) + "\n")
    before = tree_state(folder)
    message = raises_one_line(lambda: bf.extract_bearing(folder), bad, *fragments)
    assert _extract(folder, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {message}"]
    assert not list((tmp_path / "out").glob("*")) and tree_state(folder) == before


def test_folder_without_temperature_files_needs_a_named_fallback(tmp_path, capsys):
    folder = write_raw_bearing(tmp_path / "raw" / "Bearing1_1", temp=False)
    raises_one_line(lambda: bf.extract_bearing(folder), folder, "has no temp_*.csv files", "--temperature-fallback-c")
    frame = bf.extract_bearing(folder, temperature_fallback_c=25)
    assert (frame["Temperature"] == 25).all()
    from scripts.extract_bearing_features import main

    assert (
        main([str(folder), "--out", str(tmp_path / "out"), "--no-progress", "--temperature-fallback-c", "25", "--gzip"])
        == 0
    )
    written = pd.read_csv(tmp_path / "out" / "Bearing1_1_features.csv.gz")
    assert written["Temperature"].eq(25).all() and len(written) == len(frame)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Bearing1_1_features.csv.gz"]  # no temporary file left


# ---------------------------------------------------------------- CarRacing recordings


def _recording_arrays(path: Path) -> dict:
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


@pytest.mark.parametrize(
    "damage, fragments",
    [
        ("empty", ("is empty (0 bytes)", "generate_carracing.py")),
        ("truncated", ("cannot be read", "BadZipFile")),
        ("text", ("cannot be read",)),
        ("one_array", ("holds one array",)),
        ("no_seeds", ("missing arrays ['seeds']",)),
        ("bad_action", ("array actions, sample 4", "0..4")),
        ("short_episode_ids", ("array episode", "expected (30,)")),
        ("unknown_episode", ("array episode, sample 29", "0..2")),
    ],
)
def test_damaged_recording_is_one_line_naming_it(tmp_path, damage, fragments):
    root = tmp_path / "data"
    path = write_synthetic_recording(root / "carracing" / "expert.npz")
    arrays = _recording_arrays(path)
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("frames,actions\n1,2\n")
    elif damage == "one_array":
        with open(path, "wb") as handle:
            np.save(handle, arrays["frames"])
    else:
        if damage == "no_seeds":
            del arrays["seeds"]
        elif damage == "bad_action":
            arrays["actions"][4] = 7
        elif damage == "short_episode_ids":
            arrays["episode"] = arrays["episode"][:-1]
        else:
            arrays["episode"][29] = 3
        cr.save_recording(path, arrays)
    before = tree_state(root)
    raises_one_line(lambda: cr.build(CARRACING_PAPER, root), path, *fragments)
    assert tree_state(root) == before


# ---------------------------------------------------------------- MNIST IDX files


@pytest.mark.parametrize(
    "damage, fragments",
    [
        ("empty", ("header", "too short for an IDX header (0 bytes)", "download_data.py mnist")),
        ("cut_gzip", ("corrupt gzip stream",)),
        ("cut_data", ("announces shape (10, 28, 28)", "truncated or corrupted")),
        ("label_11", ("label 3", "11 is outside 0..9")),
        ("fewer_labels", ("9 labels but",)),
    ],
)
def test_damaged_idx_file_is_one_line_naming_it(tmp_path, damage, fragments):
    root = tmp_path / "data"
    folder = write_synthetic_mnist(root / "mnist")
    images = folder / (MNIST_FILES["test_images"] + ".gz")
    labels = folder / (MNIST_FILES["test_labels"] + ".gz")
    bad = images
    if damage == "empty":
        images.write_bytes(b"")
    elif damage == "cut_gzip":
        data = images.read_bytes()
        images.write_bytes(data[: len(data) // 2])
    elif damage == "cut_data":
        images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-28]))
    else:
        bad = labels
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        if damage == "label_11":
            raw[8 + 3] = 11
        else:
            raw[4:8] = (9).to_bytes(4, "big")
            raw = raw[:-1]
        labels.write_bytes(gzip.compress(bytes(raw)))
    before = tree_state(root)
    raises_one_line(lambda: emnist.build({"name": "clean"}, root, cache_dir=tmp_path / "cache"), bad, *fragments)
    assert tree_state(root) == before


# ---------------------------------------------------------------- Person Activity

PAR_FILES = sorted((SHARED_DATA / "person_activity").glob("ConfLongDemo_JSI*.txt"))


@pytest.mark.skipif(not PAR_FILES, reason="no shared Person Activity file")
@pytest.mark.parametrize(
    "damage, fragments",
    [
        ("cut_mid_row", ("line 200", "column activity is empty", "download_data.py person_activity")),
        ("extra_field", ("cannot be read", "line 5")),
        ("text_in_x", ("line 3", "column x holds 'abc'")),
        ("bad_ticks", ("line 7", "column ticks holds '63379x'")),
        ("unknown_activity", ("line 4", "unknown activity 'flying'")),
        ("empty", ("is empty",)),
    ],
)
def test_damaged_person_activity_file_is_one_line_naming_it(tmp_path, damage, fragments):
    root = tmp_path / "data"
    (root / "person_activity").mkdir(parents=True)
    path = root / "person_activity" / par.FILENAME
    lines = PAR_FILES[0].read_text().splitlines()[:200]  # a 200-row slice of the real file
    if damage == "cut_mid_row":
        lines[-1] = lines[-1].rsplit(",", 1)[0]
    elif damage == "extra_field":
        lines[4] += ",1.0"
    elif damage == "text_in_x":
        fields = lines[2].split(",")
        lines[2] = ",".join(fields[:4] + ["abc"] + fields[5:])
    elif damage == "bad_ticks":
        fields = lines[6].split(",")
        lines[6] = ",".join(fields[:2] + ["63379x"] + fields[3:])
    elif damage == "unknown_activity":
        lines[3] = lines[3].rsplit(",", 1)[0] + ",flying"
    path.write_text("" if damage == "empty" else "\n".join(lines) + "\n")
    before = tree_state(root)
    raises_one_line(lambda: par.build({"name": "paper", "fold": 0}, root, person="A"), path, *fragments)
    assert tree_state(root) == before
