"""Bearings (docs/PROTOCOLS.md section 3): feature extraction from raw PRONOSTIA vs the published features,
the feature-CSV builder's paper and clean protocols, the score, and a tiny end-to-end run.

Uses the shared development copy ($NAC_DATA_ROOT or ../shared/data: bearings/features/ and
bearings/femto_raw/Full_Test_Set/Bearing2_7/); skipped without it. Its published files lack PRONOSTIA
Bearing1_1, 1_5 and 1_6 (bearings/extracted/ has them: tests/test_bearings_paper_setup.py), so most
tests here run on substituted, published bearings.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from nac.data import bearing_features as bf
from nac.data import bearings as br
from nac.harness.metrics import MetricAccumulator, asymmetric_score
from nac.harness.runner import run
from tests.conftest import ROOT, SHARED_DATA

DATA_ROOT = SHARED_DATA
FEATURES = DATA_ROOT / "bearings" / "features"
RAW_2_7 = DATA_ROOT / "bearings" / "femto_raw" / "Full_Test_Set" / "Bearing2_7"
needs_data = pytest.mark.skipif(
    not (FEATURES / "pronostia").is_dir() or not RAW_2_7.is_dir(),
    reason=f"no bearing data under {DATA_ROOT / 'bearings'} (the shared copy)",
)

PAPER = {"name": "paper", "n_folds": 5, "fold": 0, "split_seed": 42}
CLEAN = {"name": "clean"}
#: what the shipped config gives XJTU-SY files, which have no Degradation and no Temperature column
FALLBACKS = dict(label_fallback={"xjtu": "linear"}, temperature_fallback_c={"xjtu": 25})
#: the bearings present in the shared copy, in place of the paper's
SUB = dict(
    train_bearings=["Bearing1_4", "Bearing1_7"],
    test_bearings={"pronostia": "Bearing1_2", "xjtu": "Bearing1_1", "hust": "Bearing1"},
    **FALLBACKS,
)
SNAPSHOTS = 6  # 6 x 2560 samples -> 1 + (15360 - 1000) // 500 = 29 frames


@pytest.fixture(scope="module")
def published_2_7() -> pd.DataFrame:
    return pd.read_csv(FEATURES / "pronostia" / "Bearing2_7_features.csv.gz")


@pytest.fixture(scope="module")
def extracted_2_7() -> pd.DataFrame:
    return bf.extract_bearing(RAW_2_7, max_snapshots=SNAPSHOTS)


def _lists(column) -> np.ndarray:
    return np.array([json.loads(v) for v in column])


@needs_data
def test_extraction_matches_published_time_domain_features_and_time(extracted_2_7, published_2_7):
    n = 1 + (SNAPSHOTS * 2560 - bf.FRAME) // bf.HOP
    assert len(extracted_2_7) == n == 29
    assert list(extracted_2_7.columns) == list(published_2_7.columns)
    assert (extracted_2_7["RPM"] == 1650.0).all() and (extracted_2_7["Load"] == 4200.0).all()
    for column in ("Horizontal", "Vertical"):
        ours, theirs = _lists(extracted_2_7[column]), _lists(published_2_7[column][:n])
        # kurtosis, skewness, mean, std (columns 3-6): the same numbers
        np.testing.assert_allclose(ours[:, 3:], theirs[:, 3:], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(extracted_2_7["Time"].to_numpy(), published_2_7["Time"][:n].to_numpy())
    assert published_2_7["Time"][1] == 0.03906  # 1000 / 25600 per row although rows advance by 500 samples


@needs_data
def test_extraction_documented_differences(extracted_2_7, published_2_7):
    n = len(extracted_2_7)
    ours, theirs = _lists(extracted_2_7["Horizontal"]), _lists(published_2_7["Horizontal"][:n])
    # dominant frequency: ours on the FFT grid (25.6 Hz), theirs on a 100-point geometric grid 20.37..185.19 Hz
    assert np.allclose(ours[:, 1] / 25.6, np.round(ours[:, 1] / 25.6))
    grid = np.geomspace(550 / 27, 5000 / 27, 100)
    all_theirs = _lists(published_2_7["Horizontal"])[:, 1]
    assert np.abs(all_theirs[:, None] - grid[None, :]).min(1).max() < 1e-6
    assert not np.allclose(ours[:, 1], theirs[:, 1])
    # energy: not a fixed multiple of either definition; spectral entropy differs too
    assert np.std(theirs[:, 0] / ours[:, 0]) / np.mean(theirs[:, 0] / ours[:, 0]) > 0.05
    assert np.abs(ours[:, 2] - theirs[:, 2]).max() > 0.01
    assert ((ours[:, 2] >= 0) & (ours[:, 2] <= 1)).all()
    # temperature: published rows are not raw readings; ours interpolate the temp files (deg C)
    assert published_2_7["Temperature"][0] == pytest.approx(284.28723)
    assert extracted_2_7["Temperature"][0] == pytest.approx(207.924)
    # degradation: ours Time / Time_end, theirs within 0.025 of that over the whole bearing
    time = published_2_7["Time"].to_numpy()
    assert np.abs(published_2_7["Degradation"].to_numpy() - time / time[-1]).max() < 0.025
    np.testing.assert_allclose(extracted_2_7["Degradation"], extracted_2_7["Time"] / extracted_2_7["Time"].iloc[-1])


def test_raw_reader_accepts_semicolons_and_commas(tmp_path):
    rows = [[8, 40, 25, 150040.0, 0.613, 0.188], [8, 40, 25, 150080.0, 0.68, -0.213]]
    (tmp_path / "comma.csv").write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "semi.csv").write_text("\n".join(";".join(map(str, r)) for r in rows) + "\n")
    comma, semi = bf.read_raw_csv(tmp_path / "comma.csv"), bf.read_raw_csv(tmp_path / "semi.csv")
    np.testing.assert_array_equal(comma, np.array(rows, dtype=float))
    np.testing.assert_array_equal(semi, comma)


@needs_data
def test_real_temperature_files_use_semicolons():
    first = (RAW_2_7 / "temp_00001.csv").read_text().splitlines()[0]
    assert ";" in first
    values = bf.read_raw_csv(RAW_2_7 / "temp_00001.csv")
    assert values.shape == (600, 5) and values[0, 4] == pytest.approx(207.924)


def test_score_numbers():
    errors = torch.tensor([-13.0, 10.0, 0.0])  # e = prediction - truth
    assert float(asymmetric_score(errors)) == pytest.approx(2 * (math.e - 1))
    # early (negative) errors cost less than late ones of the same size
    assert float(asymmetric_score(torch.tensor([-0.5]))) < float(asymmetric_score(torch.tensor([0.5])))
    acc = MetricAccumulator("regression")
    acc.update(torch.tensor([[0.1], [0.5]]), torch.tensor([0.0, 1.0]))
    result = acc.result()
    assert result["score"] == pytest.approx(math.expm1(0.1 / 10) + math.expm1(0.5 / 13))
    assert result["mse"] == pytest.approx((0.01 + 0.25) / 2)
    assert result["rmse"] == pytest.approx(math.sqrt((0.01 + 0.25) / 2))
    from scripts.bearing_time_reference import figures as script_figures

    assert script_figures(np.array([-13.0, 10.0, 0.0]), np.zeros(3))["score"] == pytest.approx(2 * (math.e - 1))


@needs_data
def test_paper_defaults_without_extracted_files_name_every_missing_file(tmp_path):
    root = tmp_path / "data"
    (root / "bearings").mkdir(parents=True)
    (root / "bearings" / "features").symlink_to(FEATURES)  # the published files only, no extracted/
    with pytest.raises(FileNotFoundError) as err:
        br.build(PAPER, root, cache_dir=tmp_path)
    message = str(err.value)
    for name in ("Bearing1_5_features.csv", "Bearing1_6_features.csv", "Bearing1_1_features.csv"):
        assert name in message
    assert "missing (3)" in message and "extract_bearing_features.py" in message and "train_bearings" in message
    assert str(root / "bearings" / "extracted") in message  # where extracted files go
    assert "Bearing1_4_features.csv" not in message  # present: not listed


def test_missing_everything_lists_all_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        br.build(PAPER, tmp_path / "empty", cache_dir=tmp_path)
    message = str(err.value)
    assert "missing (7)" in message
    assert "xjtu/Bearing1_1_features_with_labels.csv" in message and "hust/Bearing1_features.csv" in message


@needs_data
def test_paper_splits_folds_and_scalers(tmp_path):
    splits = br.build(PAPER, DATA_ROOT, cache_dir=tmp_path, **SUB)
    meta = splits.meta
    assert meta.input_dim == 16 and meta.metric == "mse" and meta.metric_mode == "min" and meta.fold == 0
    assert meta.extra["substituted_bearings"] is True and meta.extra["mixed_sources"] is False
    n_rows = meta.extra["rows"]["pronostia/Bearing1_4"] + meta.extra["rows"]["pronostia/Bearing1_7"]
    assert len(splits.train) + len(splits.val) == n_rows == meta.extra["n_rows"]
    assert abs(len(splits.val) - n_rows / 5) <= 1
    assert splits.train.x.shape[1:] == (1, 16) and splits.train.t.eq(1).all()
    # train and held-out fold are disjoint sets of rows (rows are unique), and pooled they are standardised
    pooled = torch.cat([splits.train.x[:, 0], splits.val.x[:, 0]]).double()
    train_rows = {tuple(r) for r in splits.train.x[:, 0].numpy().round(5)}
    assert not any(tuple(r) in train_rows for r in splits.val.x[:, 0].numpy().round(5))
    np.testing.assert_allclose(pooled.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(pooled.std(0, unbiased=False), 1, atol=1e-4)
    # each test bearing on its own statistics: mean 0, std 1 on every varying column
    assert set(splits.tests) == {"pronostia", "xjtu", "hust"} and splits.test is splits.tests["pronostia"]
    for dataset in splits.tests.values():
        x = dataset.x[:, 0].double()
        varying = x.std(0) > 0
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(x.std(0, unbiased=False)[varying], 1, atol=1e-4)
    # the authors' HUST temperature default: 25 deg C (a constant column, zero after scaling)
    assert splits.tests["hust"].x[:, 0, 15].abs().max() < 1e-9
    other = br.build({**PAPER, "fold": 1}, DATA_ROOT, cache_dir=tmp_path, **SUB)
    assert len(other.train) + len(other.val) == n_rows and not torch.equal(other.val.y, splits.val.y)


@needs_data
def test_clean_bearing_split_scaler_and_windows(tmp_path):
    splits = br.build(CLEAN, DATA_ROOT, cache_dir=tmp_path, val_bearings=["Bearing1_3"], window=32, stride=16, **SUB)
    roles = splits.meta.extra["bearings"]
    assert roles["train"] == ["pronostia/Bearing1_4", "pronostia/Bearing1_7"] and roles["val"] == [
        "pronostia/Bearing1_3"
    ]
    assert splits.meta.label_granularity == "step"
    # scaler from the training bearings only
    train_raw = np.concatenate(
        [
            br.read_bearing(br.feature_file(DATA_ROOT, br.parse_ref(b)), br.parse_ref(b)).features
            for b in ("Bearing1_4", "Bearing1_7")
        ]
    )
    np.testing.assert_allclose(splits.meta.extra["scaler_mean"], train_raw.mean(0), rtol=1e-9)
    test = splits.tests["pronostia"]
    raw_test = br.read_bearing(br.feature_file(DATA_ROOT, br.parse_ref("Bearing1_2")), br.parse_ref("Bearing1_2"))
    rows = test.x[test.mask].double().numpy()
    assert rows.shape[0] == len(raw_test.label)  # every test row exactly once
    expected = (raw_test.features - train_raw.mean(0)) / np.where(train_raw.std(0) > 0, train_raw.std(0), 1)
    np.testing.assert_allclose(rows, expected, atol=1e-4)
    assert abs(rows[:, br.TIME_INDEX].mean()) > 0.1  # not re-standardised on the test bearing
    np.testing.assert_allclose(test.y[test.mask].numpy(), raw_test.label, atol=1e-6)
    assert splits.train.x.shape[1:] == (32, 16) and splits.train.mask.all()
    assert torch.allclose(splits.train.t, torch.tensor(0.0390625), atol=1e-5)


def test_roles_must_be_disjoint():
    with pytest.raises(ValueError, match="both train and test"):
        br.resolve_roles("paper", ["Bearing1_2"], None, {"pronostia": "Bearing1_2"})
    with pytest.raises(ValueError, match="both"):
        br.resolve_roles("clean", ["Bearing1_4", "Bearing1_7"], ["Bearing1_3"], {"pronostia": "Bearing1_3"})
    train, val, tests = br.resolve_roles("clean", ["Bearing1_4", "Bearing1_7"], None, None)
    assert [str(r) for r in train] == ["pronostia/Bearing1_4"] and [str(r) for r in val] == ["pronostia/Bearing1_7"]
    assert {k: str(v) for k, v in tests.items()} == {
        "pronostia": "pronostia/Bearing1_1",
        "xjtu": "xjtu/Bearing1_1",
        "hust": "hust/Bearing1",
    }


@needs_data
@pytest.mark.parametrize("protocol", [PAPER, CLEAN])
def test_drop_time_switch_changes_input_dim(tmp_path, protocol):
    kwargs = dict(SUB, limit=100, val_bearings=["Bearing1_3"] if protocol is CLEAN else None)
    with_time = br.build(protocol, DATA_ROOT, cache_dir=tmp_path, **kwargs)
    without = br.build(protocol, DATA_ROOT, cache_dir=tmp_path, drop_time=True, **kwargs)
    assert with_time.meta.input_dim == 16 and without.meta.input_dim == 15
    assert "time" in with_time.meta.extra["features"] and "time" not in without.meta.extra["features"]
    assert without.train.x.shape[-1] == 15 and without.tests["xjtu"].x.shape[-1] == 15


@needs_data
def test_xjtu_labels_linear_and_ode_options(tmp_path):
    ref = br.parse_ref("xjtu/Bearing1_1")
    path = br.feature_file(DATA_ROOT, ref)
    linear, ode = br.read_bearing(path, ref, "linear", 25), br.read_bearing(path, ref, "ode", 25)
    np.testing.assert_allclose(linear.label, linear.time / linear.time[-1])
    assert ode.label[0] == 0 and ode.label[-1] == pytest.approx(1.0)
    assert ode.label[int(0.75 * len(ode.label))] < 0.01  # the ODE label stays near 0 for most of the run
    assert linear.features[0, 15] == pytest.approx(298.15)  # no Temperature column: 25 deg C


@needs_data
@pytest.mark.parametrize("protocol, model", [("paper", "nac"), ("clean", "lstm")])
def test_end_to_end_run(make_cfg, tmp_path, protocol, model):
    cfg = make_cfg(
        "dataset=bearings",
        f"paths.data_root={DATA_ROOT}",
        f"protocol={protocol}",
        f"model={model}",
        "dataset.builder.train_bearings=[Bearing1_4,Bearing1_7]",
        "dataset.builder.val_bearings=[Bearing1_3]",
        "dataset.builder.test_bearings.pronostia=Bearing1_2",
    )
    run(cfg)
    (record_file,) = (tmp_path / "records").rglob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["dataset"] == "bearings" and record["metric"] == {"paper": "mse", "clean": "score"}[protocol]
    assert set(record["tests"]) == {"pronostia", "xjtu", "hust"}
    for figures in record["tests"].values():
        assert figures["score"] >= 0 and figures["rmse"] == pytest.approx(math.sqrt(figures["mse"]))


def test_experiment_configs_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        paper = compose("config", overrides=["experiment=bearings_paper"], return_hydra_config=True)
        clean = compose("config", overrides=["experiment=bearings_clean"], return_hydra_config=True)
    assert paper.dataset.name == "bearings" and paper.protocol.name == "paper"
    assert paper.trainer.optimizer._target_ == "torch.optim.RMSprop" and paper.trainer.batch_size == 64
    assert paper.trainer.epochs == 50 and paper.hydra.sweeper.params["protocol.fold"] == "0,1,2,3,4"
    assert paper.hydra.sweeper.params["model"] == "nac,nac_official,ltc,cfc,lstm,transformer"
    assert paper.dataset.width == 16 and paper.dataset.heads == 8 and paper.dataset.nac.topk == 10
    assert list(paper.dataset.builder.train_bearings) == list(br.PAPER_TRAIN)
    assert dict(paper.dataset.builder.test_bearings) == br.PAPER_TESTS
    assert clean.protocol.name == "clean" and clean.hydra.sweeper.params["seed"] == "0,1,2"
    assert clean.hydra.sweeper.params["model"] == paper.hydra.sweeper.params["model"]
    assert clean.hydra.sweeper.params["dataset.builder.drop_time"] == "true,false"


ALL_COLUMNS = ("Horizontal", "Vertical", "Time", "Temperature", "Degradation", "RPM", "Load")


def write_feature_file(path, rows: int = 40, seed: int = 0, columns=ALL_COLUMNS):
    """A small synthetic feature CSV in the authors' format (gzipped when ``path`` ends in .gz)."""
    rng = np.random.default_rng(seed)
    time = np.round(np.arange(rows) * 1000 / 25600, 5)
    frame = pd.DataFrame(
        {
            "Horizontal": [json.dumps((rng.random(7) + 0.1).tolist()) for _ in range(rows)],
            "Vertical": [json.dumps((rng.random(7) + 0.1).tolist()) for _ in range(rows)],
            "Time": time,
            "Temperature": 30 + rng.random(rows),
            "Degradation": time / time[-1],
            "RPM": 1800.0,
            "Load": 4000.0,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame[list(columns)].to_csv(path, index=False)
    return path


def synthetic_root(root, rows: int = 40):
    """PRONOSTIA Bearing1_1 (train), 1_2 (val), 1_3 (test) under ``root``; returns the data root."""
    for i, name in enumerate(("Bearing1_1", "Bearing1_2", "Bearing1_3")):
        write_feature_file(root / "bearings" / "features" / "pronostia" / f"{name}_features.csv", rows, seed=i)
    return root


SYNTHETIC = dict(
    train_bearings=["Bearing1_1"],
    val_bearings=["Bearing1_2"],
    test_bearings={"pronostia": "Bearing1_3"},
    window=8,
    stride=4,
)


def test_source_files_and_a_replaced_file_is_not_served_from_cache(tmp_path):
    root = synthetic_root(tmp_path / "data")
    first = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    folder = (root / "bearings" / "features" / "pronostia").resolve()
    assert sorted(first.meta.source_files) == [str(folder / f"Bearing1_{i}_features.csv") for i in (1, 2, 3)]
    assert len(list((tmp_path / "cache" / "bearings").glob("*.npz"))) == 3
    # same name, new content (same row count): the next build must read it, not the cache
    target = folder / "Bearing1_3_features.csv"
    stat = target.stat()
    write_feature_file(target, seed=7)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later mtime, whatever the clock's grain
    second = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    uncached = br.build(CLEAN, root, cache_dir=None, **SYNTHETIC)
    assert not torch.equal(second.test.x, first.test.x)
    assert torch.equal(second.test.x, uncached.test.x) and torch.equal(second.train.x, first.train.x)


def test_missing_label_or_temperature_column_needs_a_named_fallback(tmp_path):
    root = synthetic_root(tmp_path / "data")
    target = root / "bearings" / "features" / "pronostia" / "Bearing1_3_features.csv"
    write_feature_file(target, seed=2, columns=("Horizontal", "Vertical", "Time", "RPM", "Load"))
    with pytest.raises(
        ValueError,
        match=r"Bearing1_3_features.csv: column Temperature: missing.*"
        r"temperature_fallback_c.pronostia=25",
    ):
        br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    with pytest.raises(
        ValueError,
        match=r"Bearing1_3_features.csv: column Degradation: missing.*"
        r"label_fallback.pronostia=linear",
    ):
        br.build(CLEAN, root, cache_dir=tmp_path / "cache", temperature_fallback_c={"pronostia": 25}, **SYNTHETIC)
    named = br.build(
        CLEAN,
        root,
        cache_dir=tmp_path / "cache",
        label_fallback={"pronostia": "linear"},
        temperature_fallback_c={"pronostia": 25},
        **SYNTHETIC,
    )
    bearing = br.read_bearing(target, br.parse_ref("Bearing1_3"), "linear", 25)
    np.testing.assert_allclose(bearing.label, bearing.time / bearing.time[-1])
    assert (bearing.features[:, 15] == 298.15).all()
    assert named.meta.extra["label_fallback"] == {"pronostia": "linear", "xjtu": None, "hust": None}
    with pytest.raises(ValueError, match=r"label_fallback.pronostia='ode' is not valid"):
        br.build(CLEAN, root, label_fallback={"pronostia": "ode"}, **SYNTHETIC)
    with pytest.raises(ValueError, match=r"unknown bearing dataset 'femto'"):
        br.build(CLEAN, root, temperature_fallback_c={"femto": 25}, **SYNTHETIC)


def test_shipped_config_names_fallbacks_for_xjtu_only():
    """The published XJTU-SY files lack Degradation and Temperature; every other dataset must have them."""
    from omegaconf import OmegaConf

    builder = OmegaConf.load(ROOT / "configs" / "dataset" / "bearings.yaml").builder
    assert dict(builder.label_fallback) == {"pronostia": None, "xjtu": "ramp", "hust": None}
    assert dict(builder.temperature_fallback_c) == {"pronostia": None, "xjtu": 25, "hust": None}


def test_torn_cache_file_is_rebuilt(tmp_path):
    root = synthetic_root(tmp_path / "data")
    first = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    for cache in (tmp_path / "cache" / "bearings").glob("*.npz"):
        cache.write_bytes(cache.read_bytes()[:100])  # a crash mid-write by other code
    again = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    assert torch.equal(again.train.x, first.train.x) and torch.equal(again.test.y, first.test.y)
    for cache in (tmp_path / "cache" / "bearings").glob("*.npz"):
        with np.load(cache) as arrays:  # rewritten whole
            assert set(arrays.files) == {"features", "label"}
