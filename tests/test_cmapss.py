"""C-MAPSS (cmapss): parsing, RUL labels, engine split, scaling and test targets checked by hand.

Real-data tests read the shared FD001 copy ($NAC_DATA_ROOT or ../shared/data) and skip without it;
the per-condition tests use a small synthetic FD002-like subset written to tmp_path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from nac.data import cmapss
from nac.harness.metrics import MetricAccumulator, asymmetric_score
from nac.harness.runner import build_splits, run
from nac.models.factory import model_name
from tests.conftest import CONFIGS, SHARED_DATA

FOLDER = SHARED_DATA / "cmapss"
HAVE_FD001 = all((FOLDER / f"{kind}_FD001.txt").is_file() for kind in ("train", "test", "RUL"))
needs_fd001 = pytest.mark.skipif(
    not HAVE_FD001, reason=f"no C-MAPSS FD001 files under {FOLDER}; get them with scripts/download_data.py cmapss"
)
HAVE = {s: all((FOLDER / f"{kind}_{s}.txt").is_file() for kind in ("train", "test", "RUL")) for s in cmapss.SUBSETS}


def needs(*subsets: str):
    missing = [s for s in subsets if not HAVE[s]]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"no C-MAPSS {missing} files under {FOLDER}; get them with scripts/download_data.py cmapss",
    )


CLEAN = {"name": "clean", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}
SENSOR_COLUMNS = [4 + s for s in cmapss.SENSORS]  # 0-based file columns: unit, cycle, 3 settings, then s1 at 5


@pytest.fixture(scope="module")
def raw_train() -> np.ndarray:
    return np.loadtxt(FOLDER / "train_FD001.txt")


@pytest.fixture(scope="module")
def raw_test() -> np.ndarray:
    return np.loadtxt(FOLDER / "test_FD001.txt")


@pytest.fixture(scope="module")
def fd001():
    return cmapss.build(CLEAN, SHARED_DATA)


def scale_by_hand(values: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    low, high = fit_rows.min(0), fit_rows.max(0)
    half = np.where(high > low, (high - low) / 2, 1.0)
    return (values - (high + low) / 2) / half


@needs_fd001
def test_parsing_matches_loadtxt(raw_train):
    frame = cmapss.read_table(FOLDER / "train_FD001.txt")
    assert list(frame.columns) == cmapss.COLUMNS and frame.shape == (20631, 26)
    assert np.allclose(frame.to_numpy(np.float64), raw_train)
    assert frame["unit"].nunique() == 100 and frame["unit"].dtype == np.int64
    assert frame.loc[0, ["unit", "cycle"]].tolist() == [1, 1] and frame.loc[0, "s2"] == 641.82
    rul = cmapss.read_rul(FOLDER / "RUL_FD001.txt")
    assert rul.shape == (100,) and rul[:5].tolist() == [112, 98, 69, 82, 91]


@needs_fd001
def test_rul_labels_are_piecewise_linear_and_capped(raw_train, fd001):
    frame = cmapss.read_table(FOLDER / "train_FD001.txt")
    unit1 = frame["unit"].to_numpy() == 1
    n = int(unit1.sum())  # 192 cycles
    assert n == 192
    assert np.array_equal(cmapss.rul_targets(frame, None)[unit1], np.arange(n - 1, -1, -1))
    assert np.array_equal(cmapss.rul_targets(frame, 125)[unit1], np.minimum(np.arange(n - 1, -1, -1), 125))
    # every training window: label (x 125) = min(cycles left after its last row, 125), its x the raw rows
    lengths = {int(u): int((raw_train[:, 0] == u).sum()) for u in np.unique(raw_train[:, 0])}
    labels = fd001.train.y.numpy() * 125
    expected = [min(lengths[unit] - 1 - end, 125) for unit, end in fd001.train.windows]
    assert np.allclose(labels, expected)
    assert labels.max() == 125 and labels.min() == 0
    # stride 1: the first window of an engine ends at its 30th cycle; every step valid, t = 1 per cycle
    unit, end = fd001.train.windows[0]
    assert end == 29 and fd001.train.mask.all() and torch.all(fd001.train.t == 1.0)
    assert fd001.meta.target_scale == 125 and fd001.meta.metric == "rmse" and fd001.meta.metric_mode == "min"


@needs_fd001
def test_stride_counts_back_from_each_engines_end():
    assert cmapss.window_ends(35, 30, 2).tolist() == [30, 32, 34]
    assert cmapss.window_ends(30, 30, 5).tolist() == [29]
    assert cmapss.window_ends(12, 30, 1).tolist() == [11]
    splits = cmapss.build(CLEAN, SHARED_DATA, stride=7)
    last = {}
    for unit, end in splits.train.windows:
        last[unit] = max(last.get(unit, -1), end)
    assert all(splits.train.y[i] == 0 for i, (u, e) in enumerate(splits.train.windows) if e == last[u])


@needs_fd001
def test_validation_is_engine_disjoint(fd001):
    train_units = {u for u, _ in fd001.train.windows}
    val_units = {u for u, _ in fd001.val.windows}
    assert not train_units & val_units
    assert train_units | val_units == set(range(1, 101)) and len(val_units) == 20
    assert sorted(val_units) == fd001.meta.extra["engines"]["val"]
    again = cmapss.build({**CLEAN, "split_seed": 1}, SHARED_DATA)
    assert {u for u, _ in again.val.windows} != val_units  # split_seed moves the split
    assert cmapss.build(CLEAN, SHARED_DATA, seed=5).meta.extra["engines"] == fd001.meta.extra["engines"]


@needs_fd001
def test_scaler_fitted_on_training_engines_only(raw_train, raw_test, fd001):
    train_units = fd001.meta.extra["engines"]["train"]
    fit_rows = raw_train[np.isin(raw_train[:, 0], train_units)][:, SENSOR_COLUMNS]
    params = fd001.meta.extra["scaler_params"]["(0, 100)"]
    low, high = fit_rows.min(0), fit_rows.max(0)
    assert np.allclose(params["offset"], (high + low) / 2) and np.allclose(params["scale"], (high - low) / 2)
    assert fd001.train.x.min() == -1 and fd001.train.x.max() == 1  # exactly the training range
    assert fd001.val.x.abs().max() > 1  # validation engines were not part of the fit
    # test: the last 30 rows of engine 1, scaled by hand with the training-engine fit
    engine1 = raw_test[raw_test[:, 0] == 1][:, SENSOR_COLUMNS]
    assert np.allclose(fd001.test.x[0].numpy(), scale_by_hand(engine1[-30:], fit_rows), atol=1e-5)


@needs_fd001
def test_last_window_test_targets_equal_rul_file(raw_test):
    truth = np.loadtxt(FOLDER / "RUL_FD001.txt")
    raw = cmapss.build(CLEAN, SHARED_DATA, cap_test_rul=False)
    capped = cmapss.build(CLEAN, SHARED_DATA)
    assert len(raw.test) == 100
    assert np.allclose(raw.test.y.numpy() * 125, truth)
    assert np.allclose(capped.test.y.numpy() * 125, np.minimum(truth, 125)) and truth.max() > 125
    lengths = [int((raw_test[:, 0] == u).sum()) for u in range(1, 101)]
    assert raw.test.windows == [(u, n - 1) for u, n in zip(range(1, 101), lengths)]  # each engine's last row
    assert min(lengths) >= 30 and raw.test.mask.all()


def write_fd002_like(folder: Path, seed: int = 0, short_test_engine: bool = True) -> dict:
    """A tiny FD002-like subset: 6 operating conditions with large sensor offsets, 8 train engines,
    3 test engines (one shorter than the window). Returns the arrays written."""
    rng = np.random.default_rng(seed)
    conditions = np.array(
        [[0, 0.0, 100], [10, 0.25, 100], [20, 0.70, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]]
    )

    def engine(unit: int, cycles: int):
        cond = rng.integers(0, 6, cycles)
        settings = conditions[cond] + rng.normal(0, [0.002, 0.0003, 0.0], (cycles, 3))
        sensors = 1000.0 * cond[:, None] + rng.normal(0, 1, (cycles, 21)) + np.linspace(0, 5, cycles)[:, None]
        return np.column_stack([np.full(cycles, unit), np.arange(1, cycles + 1), settings, sensors])

    train = np.concatenate([engine(u, int(rng.integers(60, 90))) for u in range(1, 9)])
    test = np.concatenate([engine(1, 40), engine(2, 12 if short_test_engine else 45), engine(3, 35)])
    rul = np.array([20, 140, 7])
    folder.mkdir(parents=True, exist_ok=True)
    fmt = ["%d", "%d"] + ["%.4f"] * 24
    np.savetxt(folder / "train_FD002.txt", train, fmt=fmt, delimiter=" ")
    np.savetxt(folder / "test_FD002.txt", test, fmt=fmt, delimiter=" ")
    np.savetxt(folder / "RUL_FD002.txt", rul, fmt="%d")
    return {"train": train, "test": test, "rul": rul}


def test_per_condition_scaling_on_synthetic_fd002(tmp_path):
    write_fd002_like(tmp_path / "cmapss")
    splits = cmapss.build(CLEAN, tmp_path, subset="FD002")
    extra = splits.meta.extra
    assert extra["n_conditions"] == 6
    assert extra["conditions"] == [[0, 100], [10, 100], [20, 100], [25, 60], [35, 100], [42, 100]]
    train, val = extra["engines"]["train"], extra["engines"]["val"]
    assert len(val) == 2 and not set(train) & set(val)  # round(0.2 * 8) = 2 engines
    raw = np.loadtxt(tmp_path / "cmapss" / "train_FD002.txt")  # as written (4 decimals)
    fit = raw[np.isin(raw[:, 0], train)]
    keys = np.round(fit[:, [2, 4]]).astype(int)
    for condition in extra["conditions"]:
        rows = fit[(keys == condition).all(1)][:, SENSOR_COLUMNS]
        params = extra["scaler_params"][str(tuple(condition))]
        assert np.allclose(params["offset"], (rows.max(0) + rows.min(0)) / 2)
        assert np.allclose(params["scale"], (rows.max(0) - rows.min(0)) / 2)
    # the 1000-per-condition offsets are gone: every training value lies in [-1, 1], each end reached
    assert splits.train.x.min() == -1 and splits.train.x.max() == 1
    # a global scaler would squeeze the within-condition signal into a tiny band; per condition it spans
    assert splits.train.x[:, :, 0].std() > 0.3
    # z-score variant: per condition mean 0 on training rows
    zscore = cmapss.build(CLEAN, tmp_path, subset="FD002", scaler="zscore")
    assert abs(float(zscore.train.x.mean())) < 0.2


def test_short_test_engine_is_right_padded_with_mask(tmp_path):
    write_fd002_like(tmp_path / "cmapss")
    splits = cmapss.build(CLEAN, tmp_path, subset="FD002", cap_test_rul=False)
    assert np.allclose(splits.test.y.numpy() * 125, [20, 140, 7])
    short = splits.test[1]  # engine 2: 12 cycles
    assert short["mask"][:12].all() and not short["mask"][12:].any()
    assert torch.all(short["x"][12:] == 0) and torch.all(short["t"][:12] == 1) and torch.all(short["t"][12:] == 0)
    assert splits.test.windows[1] == (2, 11)
    assert np.allclose(cmapss.build(CLEAN, tmp_path, subset="FD002").test.y.numpy() * 125, [20, 125, 7])
    assert splits.meta.extra["test_min_cycles"] == 12 and splits.meta.extra["test_padded_engines"] == [2]
    # an engine exactly as long as the window (engine 3: 35 cycles) fills it: not padded
    exact = cmapss.build(CLEAN, tmp_path, subset="FD002", window=35)
    assert exact.meta.extra["test_padded_engines"] == [2] and exact.test.mask[2].all()


def test_unseen_test_condition_is_an_error(tmp_path):
    data = write_fd002_like(tmp_path / "cmapss")
    test = data["test"].copy()
    test[0, 2] = 50.0  # an altitude no training row has
    np.savetxt(tmp_path / "cmapss" / "test_FD002.txt", test, fmt=["%d", "%d"] + ["%.4f"] * 24)
    with pytest.raises(ValueError, match=r"operating conditions \[\(50, 100\)\]"):
        cmapss.build(CLEAN, tmp_path, subset="FD002")


def test_missing_files_name_files_nasa_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cmapss.build(CLEAN, tmp_path, subset="FD003")
    message = str(err.value)
    for name in ("train_FD003.txt", "test_FD003.txt", "RUL_FD003.txt", str(tmp_path / "cmapss")):
        assert name in message
    assert "NASA" in message and "Turbofan Engine Degradation Simulation" in message
    assert f"python scripts/download_data.py cmapss --root {tmp_path}" in message


@needs_fd001
def test_missing_train_file_of_present_subset_named_alone():
    if (FOLDER / "train_FD003.txt").is_file():
        pytest.skip("the shared copy has train_FD003.txt")
    with pytest.raises(FileNotFoundError, match=r"missing \['train_FD003.txt'\]"):
        cmapss.build(CLEAN, SHARED_DATA, subset="FD003")


def test_unknown_subset_and_paper_protocol_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\['FD001', 'FD002', 'FD003', 'FD004'\]"):
        cmapss.build(CLEAN, tmp_path, subset="FD005")
    with pytest.raises(ValueError, match=r"no protocol 'paper'.*\['clean'\]"):
        cmapss.build({"name": "paper", "fold": 0}, tmp_path)


def test_score_and_rmse_in_cycles_on_known_errors():
    errors = torch.tensor([-13.0, 10.0, 0.0, -26.0])  # early 13, late 10, exact, early 26
    expected = (math.e - 1) + (math.e - 1) + 0 + (math.e**2 - 1)
    assert float(asymmetric_score(errors)) == pytest.approx(expected)
    # the harness scores RUL / 125 predictions in cycles (target_scale)
    truth = torch.tensor([50.0, 100.0, 125.0, 80.0])
    acc = MetricAccumulator("regression", target_scale=125)
    acc.update(((truth + errors) / 125)[:, None], truth / 125)
    result = acc.result()
    assert result["score"] == pytest.approx(expected, rel=1e-6)
    assert result["rmse"] == pytest.approx(math.sqrt((13**2 + 10**2 + 26**2) / 4), rel=1e-6)


@needs_fd001
def test_tiny_end_to_end_run(make_cfg, tmp_path):
    # the data root is given: the harness' fallback picks ./datasets as soon as any dataset folder exists there
    cfg = make_cfg("dataset=cmapss", "model=lstm", "threads=1", f"paths.data_root={SHARED_DATA}")
    run(cfg)
    [path] = (tmp_path / "records" / "cmapss" / "clean" / "lstm").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["metric"] == "rmse"
    assert record["n_train"] == 200 and record["n_val"] == 200 and record["n_test"] == 100
    test = record["test"]
    assert set(test) >= {"rmse", "score", "mae", "loss"}
    assert math.isclose(test["rmse"] ** 2, test["loss"] * 125**2, rel_tol=1e-4)  # metrics in cycles
    assert 0 < test["rmse"] < 200 and test["score"] > 0
    assert record["dataset_meta"]["target_scale"] == 125
    # trainer.save_predictions is off by default: no predictions file beside the record
    assert "predictions_file" not in record and not list(path.parent.glob("*.predictions.npz"))


def test_source_files_are_the_three_files_read(tmp_path):
    write_fd002_like(tmp_path / "cmapss")
    meta = cmapss.build(CLEAN, tmp_path, subset="FD002").meta
    folder = (tmp_path / "cmapss").resolve()
    assert sorted(meta.source_files) == sorted(str(folder / f"{kind}_FD002.txt") for kind in ("train", "test", "RUL"))


def compose_cmapss(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(
            "config", overrides=["experiment=none", "dataset=cmapss", f"paths.data_root={SHARED_DATA}", *overrides]
        )


def test_config_windows_follow_li_et_al_per_subset():
    windows = {s: compose_cmapss(f"dataset.builder.subset={s}").dataset.builder.window for s in cmapss.SUBSETS}
    assert windows == {"FD001": 30, "FD002": 20, "FD003": 30, "FD004": 15}
    assert compose_cmapss("dataset.builder.subset=FD004", "dataset.builder.window=21").dataset.builder.window == 21
    # a subset name the table does not know leaves the window unset: the loader says what to do
    cfg = compose_cmapss("dataset.builder.subset=fd004")
    with pytest.raises(ValueError, match=r"no window length for subset 'fd004'.*\('FD004'\)"):
        build_splits(cfg)


@needs(*cmapss.SUBSETS)
def test_each_subset_window_fits_its_shortest_test_engine():
    """No test engine of any subset is shorter than the configured window (none is padded)."""
    shortest = {}
    for subset in cmapss.SUBSETS:
        units = np.loadtxt(FOLDER / f"test_{subset}.txt", usecols=0)
        shortest[subset] = int(np.unique(units, return_counts=True)[1].min())
        window = compose_cmapss(f"dataset.builder.subset={subset}").dataset.builder.window
        assert window <= shortest[subset], subset
    assert shortest == {"FD001": 31, "FD002": 21, "FD003": 38, "FD004": 19}
    splits = build_splits(compose_cmapss("dataset.builder.subset=FD004"))
    assert splits.meta.extra["window"] == 15 and splits.test.x.shape[1] == 15 and splits.test.mask.all()
    assert splits.meta.extra["test_min_cycles"] == 19 and splits.meta.extra["test_padded_engines"] == []


@needs("FD004")
def test_fd004_at_window_30_pads_exactly_its_short_test_engines():
    raw = np.loadtxt(FOLDER / "test_FD004.txt")
    truth = np.loadtxt(FOLDER / "RUL_FD004.txt")
    units, lengths = np.unique(raw[:, 0].astype(int), return_counts=True)
    splits = cmapss.build(CLEAN, SHARED_DATA, subset="FD004", window=30)
    short = units[lengths < 30].tolist()
    assert len(short) == 11 and splits.meta.extra["test_padded_engines"] == short
    for unit in short:
        i = int(np.flatnonzero(units == unit)[0])
        n = int(lengths[i])
        item = splits.test[i]
        assert int(item["mask"].sum()) == n and item["mask"][:n].all()
        assert torch.all(item["x"][n:] == 0) and torch.all(item["t"][n:] == 0)
        assert splits.test.windows[i] == (unit, n - 1)
        assert float(item["y"]) * 125 == pytest.approx(min(truth[i], 125))
    assert int(splits.test.mask.all(1).sum()) == len(units) - 11


@pytest.mark.parametrize("subset", ["FD002", "FD004"])
def test_real_multi_condition_subsets_are_scaled_per_condition(subset):
    if not HAVE[subset]:
        pytest.skip(f"no C-MAPSS {subset} files under {FOLDER}")
    raw_train = np.loadtxt(FOLDER / f"train_{subset}.txt")
    raw_test = np.loadtxt(FOLDER / f"test_{subset}.txt")
    window = {"FD002": 20, "FD004": 15}[subset]
    splits = cmapss.build(CLEAN, SHARED_DATA, subset=subset, window=window)
    extra = splits.meta.extra
    conditions = [[0, 100], [10, 100], [20, 100], [25, 60], [35, 100], [42, 100]]
    assert extra["n_conditions"] == 6 and extra["conditions"] == conditions
    fit = raw_train[np.isin(raw_train[:, 0], extra["engines"]["train"])]
    fit_keys = np.round(fit[:, [2, 4]]).astype(int)
    params = {}
    for condition in conditions:
        rows = fit[(fit_keys == condition).all(1)][:, SENSOR_COLUMNS]
        assert len(rows) > 5000  # each condition is a sixth of the rows
        low, high = rows.min(0), rows.max(0)
        assert (high > low).all()  # no sensor is constant within a condition
        params[tuple(condition)] = ((high + low) / 2, (high - low) / 2)
        fitted = extra["scaler_params"][str(tuple(condition))]
        assert np.allclose(fitted["offset"], params[tuple(condition)][0])
        assert np.allclose(fitted["scale"], params[tuple(condition)][1])
    # the last window of test engine 1, each row scaled with its own condition's parameters
    engine = raw_test[raw_test[:, 0] == 1][-window:]
    keys = np.round(engine[:, [2, 4]]).astype(int)
    assert len({tuple(k) for k in keys}) > 1  # the window crosses conditions
    expected = np.stack(
        [(row[SENSOR_COLUMNS] - params[tuple(k)][0]) / params[tuple(k)][1] for row, k in zip(engine, keys)]
    )
    assert np.allclose(splits.test.x[0].numpy(), expected, atol=1e-5)
    # per-condition scaling removes the operating offsets: training values span [-1, 1] exactly
    assert splits.train.x.min() == -1 and splits.train.x.max() == 1
    assert splits.test.x.abs().max() < 1.5


def test_full_budget_experiment_settings():
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "config", overrides=["experiment=cmapss_full", "dataset.builder.subset=FD004"], return_hydra_config=True
        )
        cheap = compose("config", overrides=["experiment=cmapss"])
    builder = cfg.dataset.builder
    assert (builder.subset, builder.window, builder.stride, builder.val_stride) == ("FD004", 15, 1, 1)
    trainer = cfg.trainer
    assert (trainer.epochs, trainer.early_stopping_patience, trainer.save_predictions) == (50, 10, True)
    assert trainer.scheduler.patience == 3 and trainer.optimizer.lr == 1e-3
    assert cfg.tag == "FD004"  # the experiment's tag follows the subset (config.yaml's _self_ comes first)
    params = cfg.hydra.sweeper.params
    assert params.model.split(",") == ["nac", "nac_official", "lstm", "cfc", "ltc", "transformer", "cnn1d"]
    assert params.seed == "0,1,2" and params["dataset.builder.subset"] == "FD001"
    assert cfg.hydra.launcher.n_jobs is not None
    # the cheap FD001 benchmark is unchanged: every 3rd window, 8 epochs, no predictions
    assert (cheap.dataset.builder.window, cheap.dataset.builder.stride, cheap.trainer.epochs) == (30, 3, 8)
    assert cheap.trainer.save_predictions is False


def test_tuning_experiments_search_on_validation_with_one_budget():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="no Optuna sweeper: pip install -e '.[optuna]'")
    spaces = {}
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        for name, model in (("cmapss_tune", "transformer"), ("cmapss_tune_nac", "nac"), ("cmapss_tune_cnn1d", "cnn1d")):
            cfg = compose("config", overrides=[f"experiment={name}", f"model={model}"], return_hydra_config=True)
            sweeper = cfg.hydra.sweeper
            assert (sweeper.n_trials, sweeper.direction, sweeper.sampler.seed) == (20, "minimize", 0), name
            assert cfg.dataset.builder.subset == "FD001" and cfg.dataset.builder.stride == 1
            assert cfg.trainer.epochs == 50 and cfg.trainer.save_predictions is False
            assert cfg.paths.records_dir.endswith("tune/records") and model_name(cfg) == model
            spaces[name] = dict(sweeper.params)
    assert all(space.pop("tag") == "tune" for space in spaces.values())
    assert spaces["cmapss_tune"] == {
        "trainer.optimizer.lr": "tag(log, interval(2e-4, 5e-3))",
        "dataset.width": "choice(16, 32, 64)",
    }
    assert spaces["cmapss_tune_nac"] == {
        **spaces["cmapss_tune"],
        "model.topk": "range(2, 30)",
        "model.mode": "choice(exact, euler, steady)",
    }
    assert spaces["cmapss_tune_cnn1d"] == {
        "trainer.optimizer.lr": "tag(log, interval(2e-4, 5e-3))",
        "dataset.width": "32",
        "dataset.cnn1d.units": "choice(50, 100, 200)",
    }
