"""Udacity simulator steering (udacity): reader, preprocessing, augmentation, protocols, PilotNet stem.

Real-data tests use the shared partial recording ($NAC_DATA_ROOT or ../shared/data/udacity: 1,200 rows
with Windows paths, no header); they are skipped without it.
"""

from __future__ import annotations

import inspect
import json
import ntpath
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nac.data import udacity as ud
from nac.data.errors import DataError
from nac.data.splits import kfold
from nac.harness.runner import run
from nac.models.pilotnet import EluHead, PilotNetStem
from tests.conftest import ROOT, SHARED_DATA

DATA_ROOT = SHARED_DATA
LOG = DATA_ROOT / "udacity" / "driving_log.csv"
needs_data = pytest.mark.skipif(not LOG.is_file(), reason=f"no Udacity recording at {LOG} (the shared copy)")

CLEAN = {"name": "clean", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}
PAPER = {"name": "paper", "n_folds": 5, "fold": 0, "split_seed": 42}
LIMIT = 200


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("udacity_cache")


@pytest.fixture(scope="module")
def paper(cache_dir):
    return ud.build(PAPER, DATA_ROOT, seed=0, cache_dir=cache_dir, limit=LIMIT)


# ------------------------------------------------------------------------------------------ reading


@needs_data
def test_read_shared_log_windows_paths_to_base_names():
    raw = pd.read_csv(LOG, header=None)
    frame = ud.read_log(LOG)
    assert len(frame) == len(raw) == 1200
    assert str(raw.iloc[0, 0]).startswith("C:\\")  # the shared copy has absolute Windows paths
    for column, camera in enumerate(ud.CAMERAS):
        assert list(frame[camera]) == [ntpath.basename(p) for p in raw[column]]
    assert np.array_equal(frame["steering"].to_numpy(), raw[3].to_numpy(np.float64))
    assert np.array_equal(frame["speed"].to_numpy(), raw[6].to_numpy(np.float64))
    paths = ud.image_paths(frame.iloc[:3], LOG.parent / "IMG")
    assert paths[0][1].name.startswith("left_") and all(p.is_file() for row in paths for p in row)


def test_read_log_with_header_and_unix_paths(tmp_path):
    log = tmp_path / "driving_log.csv"
    log.write_text(
        "center,left,right,steering,throttle,brake,speed\n"
        "IMG/center_1.jpg, IMG/left_1.jpg, IMG/right_1.jpg, 0.25, 1, 0, 30.1\n"
        "/home/me/run/IMG/center_2.jpg,/home/me/run/IMG/left_2.jpg,/home/me/run/IMG/right_2.jpg,"
        "-0.5,0,0,2\n"
    )
    frame = ud.read_log(log)
    assert list(frame["center"]) == ["center_1.jpg", "center_2.jpg"]
    assert list(frame["right"]) == ["right_1.jpg", "right_2.jpg"]
    assert frame["steering"].tolist() == [0.25, -0.5] and frame["speed"].tolist() == [30.1, 2.0]


def test_missing_log_and_missing_images_are_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        ud.build(CLEAN, tmp_path)
    message = str(err.value)
    assert str(tmp_path / "udacity" / "driving_log.csv") in message and "simulator" in message
    folder = tmp_path / "udacity"
    (folder / "IMG").mkdir(parents=True)
    (folder / "driving_log.csv").write_text(
        "\nC:\\x\\IMG\\center_a.jpg,C:\\x\\IMG\\left_a.jpg,C:\\x\\IMG\\right_a.jpg,0,0,0,1\n"
    )
    with pytest.raises(DataError) as err:
        ud.build(CLEAN, tmp_path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{folder / 'driving_log.csv'}: line 2: ")
    assert "3 of 3 images" in message and "center_a.jpg" in message and str(folder / "IMG") in message


# ------------------------------------------------------------------------------------ preprocessing


def test_crop_rows_and_output_shape_and_range():
    rows = np.repeat(np.arange(160, dtype=np.uint8)[:, None], 320, axis=1)
    frame = np.stack([rows, rows, rows], axis=-1)  # pixel value = raw row index
    crop = ud.crop_resize(frame)
    assert crop.shape == (66, 200, 3) and crop.dtype == np.uint8
    # first output row samples raw row 60.07, last 134 (the crop's last row): image[60:-25]
    assert crop[0, 0, 0] == 60 and crop[-1, 0, 0] == 134
    assert np.all(np.diff(crop[:, 0, 0].astype(int)) >= 1)
    x = ud.preprocess(frame)
    assert x.shape == (3, 66, 200) and x.dtype == torch.float32
    gray_yuv = ud.rgb_to_yuv(crop).astype(np.float32)
    assert torch.allclose(x, torch.from_numpy(gray_yuv.transpose(2, 0, 1) / 127.5 - 1.0))
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0


@needs_data
def test_preprocess_real_frame_range():
    name = ud.read_log(LOG)["center"].iloc[0]
    rgb = ud.load_rgb(LOG.parent / "IMG" / name)
    assert rgb.shape == (160, 320, 3)
    x = ud.preprocess(rgb)
    assert x.shape == (3, 66, 200)
    assert -1.0 <= float(x.min()) < -0.5 and 0.3 < float(x.max()) <= 1.0


def test_yuv_matches_opencv_bt601_on_known_pixels():
    pixels = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]], np.uint8)
    # Y = .299 R + .587 G + .114 B; U = .492 (B - Y) + 128; V = .877 (R - Y) + 128; rounded, saturated
    expected = [[255, 128, 128], [0, 128, 128], [76, 91, 255], [150, 54, 0], [29, 239, 103], [141, 157, 92]]
    assert ud.rgb_to_yuv(pixels).tolist() == expected
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(500, 3)).astype(np.uint8)
    r, g, b = rgb.astype(np.float64).T
    y = 0.299 * r + 0.587 * g + 0.114 * b  # the float formula; OpenCV rounds Y first (14-bit fixed point)
    reference = np.clip(np.stack([y, 0.492 * (b - y) + 128, 0.877 * (r - y) + 128], 1), 0, 255)
    error = np.abs(ud.rgb_to_yuv(rgb).astype(np.float64) - reference)
    assert error[:, 0].max() <= 0.51 and error.max() <= 1.0
    with pytest.raises(TypeError):
        ud.rgb_to_yuv(rgb.astype(np.float32))


# ------------------------------------------------------------------------------------- augmentation


class ScriptedRng:
    """Stands in for np.random.Generator with chosen draws: integers and random from lists, uniform = midpoint."""

    def __init__(self, integers, randoms):
        self._integers, self._randoms = list(integers), list(randoms)

    def integers(self, n):
        return self._integers.pop(0)

    def random(self):
        return self._randoms.pop(0)

    def uniform(self, low, high):
        return 1.0 if (low, high) == ud.BRIGHTNESS_RANGE else (low + high) / 2


def _bands() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 200, size=(3, 66 + 2 * ud.MARGIN_ROWS, 200, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    "camera, flip, expected", [(0, False, 0.1), (1, False, 0.3), (2, False, -0.1), (1, True, -0.3), (2, True, 0.1)]
)
def test_camera_offsets_and_flip(camera, flip, expected):
    bands = _bands()
    # draws: camera, side of the shadow (1 with a line on the left edge: no pixel darkened);
    # flip, tx = ty = 0 (u = 0.5), shadow line x1 = x2 = 0; brightness ratio 1
    rng = ScriptedRng([camera, 1], [0.2 if flip else 0.7, 0.5, 0.5, 0.0, 0.0])
    crop, steering = ud.augment(bands, 0.1, rng)
    m = ud.MARGIN_ROWS
    view = bands[camera, m : m + 66]
    assert steering == pytest.approx(expected)
    assert np.array_equal(crop, view[:, ::-1] if flip else view)


def test_translation_shifts_image_and_steering():
    bands = _bands()
    rng = ScriptedRng([0, 1], [0.7, 0.75, 0.5, 0.0, 0.0])  # tx = +25 raw px = 15.625 resized px, no flip
    crop, steering = ud.augment(bands, 0.0, rng)
    assert steering == pytest.approx(0.002 * 25)
    assert np.all(crop[:, :15] == 0)  # uncovered columns are black
    m = ud.MARGIN_ROWS
    # output column c reads source column c - 15.625
    shifted = 0.625 * bands[0, m : m + 66, 100:150].astype(float) + 0.375 * bands[0, m : m + 66, 101:151]
    assert np.abs(crop[:, 116:166].astype(float) - shifted).max() <= 0.5 + 1e-6


def test_shadow_and_brightness_only_darken_or_scale():
    bands = np.full((3, 66 + 2 * ud.MARGIN_ROWS, 200, 3), 100, np.uint8)
    rng = ScriptedRng([0, 0], [0.7, 0.5, 0.5, 0.0, 0.0])  # side 0 with the line on the left edge: all darkened
    crop, _ = ud.augment(bands, 0.0, rng)
    assert np.all(crop == 35)  # 100 * 0.35 (the midpoint of U(0.2, 0.5))


@needs_data
def test_same_seed_same_augmented_batch(cache_dir):
    def first_batch(seed, augment=True):
        splits = ud.build(PAPER, DATA_ROOT, seed=seed, cache_dir=cache_dir, limit=LIMIT, augment=augment)
        return (
            splits.train,
            torch.stack([splits.train[i]["x"] for i in range(12)]),
            torch.stack([splits.train[i]["y"] for i in range(12)]),
        )

    train, x0, y0 = first_batch(0)
    _, x0_again, y0_again = first_batch(0)
    assert torch.equal(x0, x0_again) and torch.equal(y0, y0_again)
    _, x1, _ = first_batch(1)
    assert not torch.equal(x0, x1)
    second_epoch = torch.stack([train[i]["x"] for i in range(12)])
    assert not torch.equal(x0, second_epoch)  # a new draw per epoch
    off, x_off, y_off = first_batch(0, augment=False)
    rows = off.rows[:12]
    assert torch.allclose(y_off, torch.from_numpy(off.steering[rows]))
    centre = torch.stack([ud.to_input(np.asarray(off.bands[r, 0, ud.MARGIN_ROWS : ud.MARGIN_ROWS + 66])) for r in rows])
    assert torch.equal(x_off[:, 0], centre)
    # with probability 0.6 some of 100 items are augmented (label moved off the recorded steering)
    changed = sum(float(train[i]["y"]) != float(train.steering[train.rows[i]]) for i in range(100))
    assert 30 <= changed <= 90


# ---------------------------------------------------------------------------------------- protocols


def test_clean_blocks_are_contiguous_disjoint_with_margin():
    train, val, test = ud.contiguous_blocks(1200, 0.2, 0.2, 20)
    assert (len(train), len(val), len(test)) == (680, 240, 240)
    for block in (train, val, test):
        assert np.array_equal(block, np.arange(block[0], block[-1] + 1))
    assert train[-1] < val[0] and val[-1] < test[0]
    assert val[0] - train[-1] > 20 and test[0] - val[-1] > 20 and test[-1] == 1199
    assert np.abs(test[:, None] - train[None, :]).min() > 20
    with pytest.raises(ValueError, match="margin=60"):
        ud.contiguous_blocks(200, 0.2, 0.2, 60)


def test_paper_folds_partition_rows():  # the shared k-fold the Udacity and bearing paper protocols use
    held = [kfold(1200, 5, fold, 42) for fold in range(5)]
    for train, held_out in held:
        assert len(np.intersect1d(train, held_out)) == 0 and len(train) + len(held_out) == 1200
    assert np.array_equal(np.sort(np.concatenate([h for _, h in held])), np.arange(1200))
    assert not np.array_equal(held[0][1], np.arange(240))  # shuffled
    with pytest.raises(ValueError, match="protocol.fold=5"):
        kfold(1200, 5, 5, 42)


@needs_data
def test_build_paper_and_clean_splits(paper, cache_dir):
    assert paper.meta.metric == "mse" and paper.meta.metric_mode == "min" and paper.meta.task == "regression"
    assert paper.meta.fold == 0 and paper.meta.extra["from_cache"] in (True, False)
    assert np.array_equal(paper.val.rows, paper.test.rows) and len(paper.val) == LIMIT // 5
    assert paper.train.augment and not paper.val.augment and not paper.test.augment
    assert len(np.intersect1d(paper.train.rows, paper.test.rows)) == 0
    clean = ud.build(CLEAN, DATA_ROOT, seed=0, cache_dir=cache_dir, limit=LIMIT, margin=10)
    assert clean.meta.extra["from_cache"]  # the band cache is shared by both protocols
    assert (len(clean.train), len(clean.val), len(clean.test)) == (100, 40, 40)
    assert clean.test.rows[0] - clean.val.rows[-1] == 11 and clean.val.rows[0] - clean.train.rows[-1] == 11
    steering = ud.read_log(LOG)["steering"].to_numpy()[:LIMIT]
    mean = steering[clean.train.rows].mean()
    assert clean.meta.extra["baseline_test_mse_train_mean"] == pytest.approx(np.mean((steering[-40:] - mean) ** 2))
    assert clean.meta.extra["baseline_test_mse_zero"] == pytest.approx(np.mean(steering[-40:] ** 2))
    item = clean.test[0]
    assert item["x"].shape == (1, 3, 66, 200) and item["t"].tolist() == [1.0] and item["mask"].tolist() == [True]
    assert float(item["y"]) == pytest.approx(steering[clean.test.rows[0]])


# ------------------------------------------------------------------------------------------ PilotNet


def test_pilotnet_stem_tokens_and_head():
    torch.manual_seed(0)
    stem = PilotNetStem(in_features=3).eval()
    x = torch.randn(2, 1, 3, 66, 200)
    mask = torch.tensor([[True], [False]])
    tokens, t, token_mask = stem(x, torch.ones(2, 1), mask)
    assert stem.output_dim == 18 and tokens.shape == (2, 64, 18)
    assert t.shape == (2, 64) and token_mask.shape == (2, 64)
    assert token_mask[0].all() and not token_mask[1].any() and torch.all(tokens[1] == 0) and torch.all(t[0] == 1)
    conv_map = stem.convs(x[:, 0])  # (2, 64, 1, 18)
    assert conv_map.shape == (2, 64, 1, 18)
    # the authors' Keras Reshape((-1, 18)) of the channels-last (1, 18, 64) map
    assert torch.allclose(tokens[0], conv_map[0].permute(1, 2, 0).reshape(64, 18))
    by_channel = PilotNetStem(3, token_layout="channels").eval()
    by_channel.load_state_dict(stem.state_dict())
    assert torch.allclose(by_channel(x, None, mask)[0][0], conv_map[0, :, 0, :])
    assert EluHead(64, 1)(torch.randn(5, 64)).shape == (5, 1)
    with pytest.raises(ValueError, match="token_layout"):
        PilotNetStem(3, token_layout="rows")


# -------------------------------------------------------------------------------------- end to end


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the run sets threads=1 for the whole process


@needs_data
@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize("protocol, model", [("clean", "nac"), ("paper", "cfc")])
def test_end_to_end_run(make_cfg, tmp_path, cache_dir, protocol, model):
    cfg = make_cfg(
        "dataset=udacity",
        f"paths.data_root={DATA_ROOT}",
        f"protocol={protocol}",
        f"model={model}",
        f"paths.cache_dir={cache_dir}",
        "trainer.batch_size=8",
        "threads=1",
    )
    run(cfg)
    (record_file,) = (tmp_path / "records").rglob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["dataset"] == "udacity" and record["protocol"] == protocol and record["metric"] == "mse"
    assert record["n_test"] == (40 if protocol == "clean" else 40)
    assert 0.0 <= record["test"]["mse"] < 1.0 and np.isfinite(record["test"]["mse"])
    assert record["test"]["rmse"] == pytest.approx(record["test"]["mse"] ** 0.5)


def test_experiment_configs_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        paper_cfg = compose("config", overrides=["experiment=udacity_paper"], return_hydra_config=True)
        clean_cfg = compose("config", overrides=["experiment=udacity_clean"], return_hydra_config=True)
    assert paper_cfg.dataset.name == "udacity" and paper_cfg.protocol.name == "paper"
    assert paper_cfg.trainer.batch_size == 40 and paper_cfg.trainer.epochs == 10
    assert paper_cfg.hydra.sweeper.params["protocol.fold"] == "0,1,2,3,4"
    assert clean_cfg.protocol.name == "clean" and clean_cfg.hydra.sweeper.params["seed"] == "0,1,2"
    assert paper_cfg.model.topk == 10 and paper_cfg.model.sparsity == 0.7 and paper_cfg.model.d_model == 64
    assert clean_cfg.dataset.builder.recording_split_min == 3
    builder_options = set(clean_cfg.dataset.builder) - {"_target_", "_partial_"}
    assert builder_options <= set(inspect.signature(ud.build).parameters)


# ----------------------------------------------------------------------- synthetic recordings (tmp_path)


def _frame(shade: int) -> np.ndarray:
    """A 320x160 RGB frame: a horizontal ramp offset by ``shade`` (JPEG keeps it close to exact)."""
    ramp = np.linspace(0, 80, ud.RAW_WIDTH)[None, :, None]
    return np.clip(shade + ramp + np.zeros((ud.RAW_HEIGHT, 1, 3)), 0, 255).astype(np.uint8)


def write_recording(folder: Path, n: int, tag: int = 0) -> Path:
    """A recording of ``n`` rows in ``folder`` (driving_log.csv with Windows paths, no header, and IMG/).

    Steering of row i is ``tag + i / 1000`` and its images' shade depends on ``tag``, so every item can be
    traced to its recording; image base names are the same in every recording."""
    (folder / "IMG").mkdir(parents=True)
    lines = []
    for i in range(n):
        names = [f"{camera}_{i:04d}.jpg" for camera in ud.CAMERAS]
        for c, name in enumerate(names):
            Image.fromarray(_frame((37 * tag + 3 * i + 50 * c) % 150)).save(folder / "IMG" / name, quality=95)
        lines.append(
            ",".join(
                [f"C:\\\\drive{tag}\\\\IMG\\\\{name}" for name in names] + [f"{tag + i / 1000:.3f}", "0.5", "0", "30"]
            )
        )
    log = folder / "driving_log.csv"
    log.write_text("\n".join(lines) + "\n")
    return log


def _snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _owners(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(recording tag, row inside the recording) of each item, from the steering it was read with."""
    steering = dataset.steering[dataset.rows].astype(np.float64)
    tag = np.floor(steering + 1e-6).astype(int)
    return tag, np.rint((steering - tag) * 1000).astype(int)


def test_cache_serves_a_replaced_image_afresh_and_lists_source_files(tmp_path):
    root, cache = tmp_path / "root", tmp_path / "cache"
    log = write_recording(root / "udacity", 12)
    before = _snapshot(root)
    first = ud.build(CLEAN, root, cache_dir=cache, margin=1, augment=False)
    image = root / "udacity" / "IMG" / "center_0003.jpg"
    expected = {str(log.resolve())} | {str(p.resolve()) for p in (root / "udacity" / "IMG").iterdir()}
    assert sorted(first.meta.source_files) == sorted(expected) and len(expected) == 1 + 36
    assert not first.meta.extra["from_cache"]
    assert ud.build(CLEAN, root, cache_dir=cache, margin=1).meta.extra["from_cache"]  # unchanged files: cached
    assert _snapshot(root) == before  # the data root is only read
    old_band = np.array(first.train.bands[3, 0])
    Image.fromarray(255 - _frame(0)).save(image, quality=95)  # same name, other pixels
    second = ud.build(CLEAN, root, cache_dir=cache, margin=1, augment=False)
    assert not second.meta.extra["from_cache"]
    fresh = ud.resize_band(ud.load_rgb(image))
    assert np.array_equal(second.train.bands[3, 0], fresh) and np.abs(fresh.astype(int) - old_band).mean() > 50
    assert torch.equal(second.train[3]["x"][0], ud.to_input(fresh[ud.MARGIN_ROWS : ud.MARGIN_ROWS + 66]))


def _corrupt(kind: str, path: Path) -> None:
    if kind == "truncated":
        noise = np.random.default_rng(0).integers(0, 256, (160, 320, 3)).astype(np.uint8)
        Image.fromarray(noise).save(path, quality=95)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("<html>404 Not Found</html>")
    else:  # a readable image of the wrong size
        Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(path)


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "small"])
def test_unreadable_image_names_file_and_log_line(tmp_path, kind):
    log = write_recording(tmp_path / "udacity", 8)
    image = tmp_path / "udacity" / "IMG" / "left_0005.jpg"
    _corrupt(kind, image)
    with pytest.raises(DataError) as err:
        ud.build(CLEAN, tmp_path, cache_dir=tmp_path / "cache", margin=0)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{image}: referenced by {log} line 6: cannot be read")
    assert "restore the file" in message
    assert not (tmp_path / "cache" / "udacity").exists() or not list((tmp_path / "cache" / "udacity").iterdir())


@pytest.mark.parametrize(
    "line3, problem",
    [
        ("c.jpg,l.jpg,r.jpg,abc,0,0,1", "steering is 'abc', not a finite number"),
        ("c.jpg,l.jpg,r.jpg,nan,0,0,1", "steering is 'nan', not a finite number"),
        ("c.jpg,l.jpg,r.jpg,0.1,0,0,inf", "speed is 'inf', not a finite number"),
        ("c.jpg,l.jpg,r.jpg,0.1,0,0", "has 6 comma-separated fields, expected 7"),
        ("C:\\a,b\\IMG\\c.jpg,l.jpg,r.jpg,0.1,0,0,1", "has 8 comma-separated fields, expected 7"),
        ("c.jpg, ,r.jpg,0.1,0,0,1", "the left image path is empty"),
    ],
)
def test_bad_log_row_names_file_and_line(tmp_path, line3, problem):
    log = tmp_path / "driving_log.csv"
    log.write_text("c.jpg,l.jpg,r.jpg,0.0,0,0,1\nc.jpg,l.jpg,r.jpg,0.1,0,0,1\n" + line3 + "\n")
    with pytest.raises(DataError) as err:
        ud.read_log(log)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{log}: line 3: {problem}; fix or delete that line")


def test_first_row_with_numbers_is_data_not_a_header(tmp_path):
    log = tmp_path / "driving_log.csv"
    log.write_text("c.jpg,l.jpg,r.jpg,x,0,0,1\nc.jpg,l.jpg,r.jpg,0.1,0,0,1\n")
    with pytest.raises(DataError, match="line 1: steering is 'x'"):
        ud.read_log(log)
    log.write_text("")
    with pytest.raises(DataError, match="holds no frames"):
        ud.read_log(log)
    log.write_text("center,left,right,steering,throttle,brake,speed\n\nc.jpg,l.jpg,r.jpg,0.1,0,0,1\n")
    assert ud.read_log(log)["line"].tolist() == [3]


def test_clean_splits_by_whole_recording_when_there_are_enough(tmp_path):
    folder = tmp_path / "udacity"
    for tag, (name, n) in enumerate([(".", 9), ("b", 10), ("c", 11), ("d/e", 12)]):
        write_recording(folder / name, n, tag)
    protocol = {**CLEAN, "split_seed": 3}
    splits = ud.build(protocol, tmp_path, augment=False, limit=10)
    recordings = splits.meta.extra["recordings"]
    assert [r["name"] for r in recordings] == [".", "b", "c", "d/e"] and splits.meta.extra["split_by"] == "recording"
    assert [r["n_rows"] for r in recordings] == [9, 10, 10, 10]  # limit: first 10 rows of each recording
    shares = ud.split_recordings(4, 0.2, 0.2, 3)
    assert sorted(shares) == ["test", "train", "train", "val"] and [r["split"] for r in recordings] == shares
    for key in ("train", "val", "test"):
        tags, rows = _owners(getattr(splits, key))
        expected = [
            (tag, row) for tag, share in enumerate(shares) if share == key for row in range(recordings[tag]["n_rows"])
        ]
        assert sorted(zip(tags.tolist(), rows.tolist())) == expected
        assert [r[key] for r in recordings] == [r["n_rows"] if r["split"] == key else 0 for r in recordings]
    # each recording's images come from its own IMG/ (the base names are the same in all of them)
    tags, rows = _owners(splits.test)
    sub = [".", "b", "c", "d/e"][tags[0]]
    image = folder / sub / "IMG" / f"center_{rows[0]:04d}.jpg"
    assert np.array_equal(splits.test.bands[splits.test.rows[0], 0], ud.resize_band(ud.load_rgb(image)))
    assert len(splits.meta.source_files) == 4 + 3 * 39
    other = [ud.split_recordings(4, 0.2, 0.2, seed) for seed in range(6)]
    assert len({tuple(s) for s in other}) > 1  # the split seed picks the recordings
    with pytest.raises(ValueError, match="cannot split 4 recordings.*recording_split_min"):
        ud.build({**CLEAN, "val_fraction": 0.4, "test_fraction": 0.4}, tmp_path, limit=10)


def test_clean_cuts_blocks_inside_each_recording_when_there_are_few(tmp_path):
    write_recording(tmp_path / "udacity" / "one", 20, 0)
    write_recording(tmp_path / "udacity" / "two", 30, 1)
    splits = ud.build(CLEAN, tmp_path, augment=False, margin=2)
    assert splits.meta.extra["split_by"] == "blocks"
    assert [(r["split"], r["train"], r["val"], r["test"]) for r in splits.meta.extra["recordings"]] == [
        ("blocks", 8, 4, 4),
        ("blocks", 14, 6, 6),
    ]
    expected = {0: ud.contiguous_blocks(20, 0.2, 0.2, 2), 1: ud.contiguous_blocks(30, 0.2, 0.2, 2)}
    for k, key in enumerate(("train", "val", "test")):
        tags, rows = _owners(getattr(splits, key))
        for tag in (0, 1):
            assert np.array_equal(rows[tags == tag], expected[tag][k])
    # with 3 recordings and recording_split_min raised to 4, still blocks; a short recording is named
    write_recording(tmp_path / "udacity" / "three", 6, 2)
    with pytest.raises(ValueError, match=r"three/driving_log.csv: the clean protocol cannot cut 6 rows"):
        ud.build(CLEAN, tmp_path, margin=2, recording_split_min=4)


def test_paper_pools_the_rows_of_all_recordings(tmp_path):
    write_recording(tmp_path / "udacity", 10, 0)
    write_recording(tmp_path / "udacity" / "later", 15, 1)
    paper_fold = {**PAPER, "fold": 1}
    splits = ud.build(paper_fold, tmp_path, augment=False)
    train, held_out = kfold(25, 5, 1, 42)
    assert np.array_equal(splits.train.rows, train) and np.array_equal(splits.test.rows, held_out)
    tags, rows = _owners(splits.train)
    pooled = [(0, i) for i in range(10)] + [(1, i) for i in range(15)]
    assert list(zip(tags.tolist(), rows.tolist())) == [pooled[i] for i in train]
    assert splits.meta.extra["split_by"] == "rows"
    assert sum(r["test"] for r in splits.meta.extra["recordings"]) == 5
