"""Bearings at the paper's setup (docs/PROTOCOLS.md section 3): extracted PRONOSTIA files found beside the
published ones, mixed sources warned about and recorded, S per row, the XJTU-SY ramp label, the epoch
chosen on validation MSE, the sweeps, the tables and the Time-only reference.

References are independent of the code under test: files read with pandas, scores summed by hand with
numpy, labels from ``np.linspace``, argmins over the recorded history.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nac.data import bearings as br
from nac.harness.metrics import MetricAccumulator
from nac.harness.runner import make_loader, run
from nac.harness.tables import paper_gaps, records_frame, summary_table
from nac.harness.train import evaluate
from tests.conftest import CONFIGS, ROOT, SHARED_DATA
from tests.test_bearings import CLEAN, PAPER, SYNTHETIC, synthetic_root, write_feature_file

EXTRACTED = SHARED_DATA / "bearings" / "extracted"
needs_extracted = pytest.mark.skipif(
    not all((EXTRACTED / f"Bearing1_{i}_features.csv.gz").is_file() for i in (1, 5, 6))
    or not (SHARED_DATA / "bearings" / "features" / "pronostia").is_dir(),
    reason=f"no extracted PRONOSTIA 1_1, 1_5, 1_6 under {EXTRACTED} (the shared copy)",
)
#: the shipped dataset config's fallbacks (XJTU-SY files have no label and no temperature)
SHIPPED = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "dataset" / "bearings.yaml").builder)
FALLBACKS = dict(label_fallback=SHIPPED["label_fallback"], temperature_fallback_c=SHIPPED["temperature_fallback_c"])
PAPER_SOURCES = {
    "pronostia/Bearing1_4": "published",
    "pronostia/Bearing1_5": "extracted",
    "pronostia/Bearing1_6": "extracted",
    "pronostia/Bearing1_7": "published",
    "pronostia/Bearing1_1": "extracted",
    "xjtu/Bearing1_1": "published",
    "hust/Bearing1": "published",
}


# ---------------------------------------------------------------- where the files come from


@needs_extracted
def test_paper_defaults_load_with_the_extracted_pronostia_bearings(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nac.data.bearings"):
        splits = br.build(PAPER, SHARED_DATA, cache_dir=tmp_path, limit=30, **FALLBACKS)
    extra = splits.meta.extra
    assert extra["bearing_sources"] == PAPER_SOURCES and extra["mixed_sources"] is True
    assert extra["substituted_bearings"] is False  # the paper's own bearings
    assert extra["files"]["pronostia/Bearing1_5"] == str(EXTRACTED / "Bearing1_5_features.csv.gz")
    assert extra["files"]["pronostia/Bearing1_4"].endswith("features/pronostia/Bearing1_4_features.csv.gz")
    assert set(splits.tests) == {"pronostia", "xjtu", "hust"} and len(splits.train) + len(splits.val) == 4 * 30
    # the test bearing's rows are the extracted file's (read here with pandas), thinned to 30 evenly spaced rows
    frame = pd.read_csv(EXTRACTED / "Bearing1_1_features.csv.gz")
    idx = np.unique(np.linspace(0, len(frame) - 1, 30).round().astype(int))
    raw = br.read_bearing(EXTRACTED / "Bearing1_1_features.csv.gz", br.parse_ref("Bearing1_1"))
    np.testing.assert_array_equal(raw.time, frame["Time"].to_numpy())
    scaled_time = splits.tests["pronostia"].x[:, 0, br.TIME_INDEX].double().numpy()
    time = frame["Time"].to_numpy()[idx]
    np.testing.assert_allclose(scaled_time, (time - time.mean()) / time.std(), atol=1e-5)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "extracted: pronostia/Bearing1_5, pronostia/Bearing1_6, pronostia/Bearing1_1" in warning
    assert "published: pronostia/Bearing1_4, pronostia/Bearing1_7, xjtu/Bearing1_1, hust/Bearing1" in warning


def _extracted_root(tmp_path, nested: bool = False):
    """Synthetic PRONOSTIA 1_1 (train) and 1_2 (val) published; 1_3 (test) only in extracted/."""
    root = synthetic_root(tmp_path / "data")
    published = root / "bearings" / "features" / "pronostia" / "Bearing1_3_features.csv"
    extracted = root / "bearings" / "extracted" / ("pronostia" if nested else "") / "Bearing1_3_features.csv.gz"
    extracted.parent.mkdir(parents=True, exist_ok=True)
    write_feature_file(extracted, seed=5)
    published.unlink()
    return root, extracted


@pytest.mark.parametrize("nested", [False, True])
def test_mixed_sources_warn_and_are_recorded(tmp_path, caplog, nested):
    root, extracted = _extracted_root(tmp_path, nested)
    with caplog.at_level(logging.WARNING, logger="nac.data.bearings"):
        splits = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    assert splits.meta.extra["bearing_sources"] == {
        "pronostia/Bearing1_1": "published",
        "pronostia/Bearing1_2": "published",
        "pronostia/Bearing1_3": "extracted",
    }
    assert splits.meta.extra["mixed_sources"] is True
    assert splits.meta.source_files[-1] == str(extracted.resolve())
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "published: pronostia/Bearing1_1, pronostia/Bearing1_2; extracted: pronostia/Bearing1_3" in warning
    expected = br.read_bearing(extracted, br.parse_ref("Bearing1_3"))
    np.testing.assert_allclose(splits.test.y[splits.test.mask].numpy(), expected.label, atol=1e-7)


def test_one_source_does_not_warn_and_published_files_come_first(tmp_path, caplog):
    root = synthetic_root(tmp_path / "data")
    for decoy in ("Bearing1_3_features.csv", "pronostia/Bearing1_3_features.csv"):  # the published copy must win
        write_feature_file(root / "bearings" / "extracted" / decoy, seed=9)
    with caplog.at_level(logging.WARNING, logger="nac.data.bearings"):
        splits = br.build(CLEAN, root, cache_dir=tmp_path / "cache", **SYNTHETIC)
    assert set(splits.meta.extra["bearing_sources"].values()) == {"published"}
    assert splits.meta.extra["mixed_sources"] is False and not caplog.records
    published = br.read_bearing(
        root / "bearings" / "features" / "pronostia" / "Bearing1_3_features.csv", br.parse_ref("Bearing1_3")
    )
    np.testing.assert_allclose(splits.test.y[splits.test.mask].numpy(), published.label, atol=1e-7)


def test_a_symlink_into_extracted_counts_as_extracted(tmp_path):
    root, extracted = _extracted_root(tmp_path)
    link = root / "bearings" / "features" / "pronostia" / extracted.name
    link.symlink_to(extracted)
    assert br.source_of(link) == "extracted" and br.find_file(root, br.parse_ref("Bearing1_3")) == link
    assert br.source_of(root / "bearings" / "features" / "pronostia" / "Bearing1_1_features.csv") == "published"


# ---------------------------------------------------------------- score per row


def test_score_per_row_is_the_score_over_the_rows_by_hand():
    pred, truth = np.array([0.3, 0.1, 0.9, 0.5, 0.0]), np.array([0.2, 0.4, 0.9, 0.1, 0.6])
    error = pred - truth
    by_hand = sum(math.exp(-e / 13) - 1 if e < 0 else math.exp(e / 10) - 1 for e in error)
    acc = MetricAccumulator("regression")
    acc.update(torch.tensor(pred[:2, None]), torch.tensor(truth[:2]))  # two batches
    acc.update(torch.tensor(pred[2:, None]), torch.tensor(truth[2:]))
    result = acc.result()
    assert result["score"] == pytest.approx(by_hand, rel=1e-12)
    assert result["score_per_row"] == pytest.approx(by_hand / 5, rel=1e-12)


class _Constant(torch.nn.Module):
    """Predicts 0.25 at every step of every window."""

    def forward(self, x, t, mask):
        return torch.full(x.shape[:2] + (1,), 0.25)


def test_score_per_row_of_a_windowed_bearing_counts_its_rows_not_the_padding(tmp_path):
    root = synthetic_root(tmp_path / "data", rows=37)  # 37 rows -> 5 windows of 8, the last padded
    splits = br.build(CLEAN, root, cache_dir=None, **SYNTHETIC)
    label = br.read_bearing(
        root / "bearings" / "features" / "pronostia" / "Bearing1_3_features.csv", br.parse_ref("Bearing1_3")
    ).label
    error = 0.25 - label
    by_hand = float(np.sum(np.where(error < 0, np.expm1(-error / 13), np.expm1(error / 10))))
    loader = make_loader(splits.test, 3, False, 0, 0)
    result = evaluate(_Constant(), loader, torch.device("cpu"), "regression", per_step=True)
    assert splits.test.mask.shape == (5, 8) and int(splits.test.mask.sum()) == 37
    assert result["score"] == pytest.approx(by_hand, rel=1e-6)
    assert result["score_per_row"] == pytest.approx(by_hand / 37, rel=1e-6)


# ---------------------------------------------------------------- the XJTU-SY label


def test_xjtu_ramp_label_is_linspace_over_the_rows_not_time(tmp_path):
    path = tmp_path / "Bearing1_1_features_with_labels.csv"
    write_feature_file(path, rows=12, columns=("Horizontal", "Vertical", "Time"))
    frame = pd.read_csv(path)
    frame.loc[:, "Time"] = 5.0 + np.arange(12) ** 2  # uneven steps, not starting at 0: ramp != Time / Time_end
    frame.to_csv(path, index=False)
    ref = br.parse_ref("xjtu/Bearing1_1")
    ramp = br.read_bearing(path, ref, "ramp", 25).label
    linear = br.read_bearing(path, ref, "linear", 25).label
    np.testing.assert_array_equal(ramp, np.linspace(0, 1, 12))
    np.testing.assert_allclose(linear, frame["Time"] / frame["Time"].iloc[-1])
    assert not np.allclose(ramp, linear)
    assert SHIPPED["label_fallback"]["xjtu"] == "ramp"  # the shipped default: the authors' notebook


@needs_extracted
def test_xjtu_ramp_on_the_published_file_is_the_notebooks_label(tmp_path):
    path = SHARED_DATA / "bearings" / "features" / "xjtu" / "Bearing1_1_features_with_labels.csv.gz"
    n = len(pd.read_csv(path, usecols=["Time"]))
    bearing = br.read_bearing(path, br.parse_ref("xjtu/Bearing1_1"), "ramp", 25)
    np.testing.assert_array_equal(bearing.label, np.linspace(0, 1, n))  # notebook: y = np.linspace(0, 1, len(df))


# ---------------------------------------------------------------- the selection metric


def test_selection_metric_per_protocol_and_override(tmp_path):
    root = synthetic_root(tmp_path / "data")
    assert (
        br.build(
            PAPER,
            root,
            cache_dir=None,
            train_bearings=["Bearing1_1", "Bearing1_2"],
            test_bearings={"pronostia": "Bearing1_3"},
        ).meta.metric
        == "mse"
    )
    clean = br.build(CLEAN, root, cache_dir=None, **SYNTHETIC)
    assert (clean.meta.metric, clean.meta.metric_mode, clean.meta.extra["select_on"]) == ("score", "min", "score")
    assert br.build(CLEAN, root, cache_dir=None, select_on="rmse", **SYNTHETIC).meta.metric == "rmse"
    with pytest.raises(ValueError, match=r"^dataset.builder.select_on='accuracy' is not valid; choose one of"):
        br.build(CLEAN, root, cache_dir=None, select_on="accuracy", **SYNTHETIC)


def test_paper_run_keeps_the_epoch_of_least_validation_mse(make_cfg, tmp_path):
    root = synthetic_root(tmp_path / "data", rows=120)
    cfg = make_cfg(
        "dataset=bearings",
        f"paths.data_root={root}",
        "protocol=paper",
        "trainer=bearings",
        "model=lstm",
        "trainer.epochs=4",
        "trainer.limit_train_batches=null",
        "trainer.optimizer.lr=0.01",
        "dataset.builder.train_bearings=[Bearing1_1,Bearing1_2]",
        "dataset.builder.test_bearings.pronostia=Bearing1_3",
        "~dataset.builder.test_bearings.xjtu",
        "~dataset.builder.test_bearings.hust",
    )
    run(cfg)
    (record_file,) = (tmp_path / "records").rglob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["metric"] == "mse" and record["dataset_meta"]["extra"]["select_on"] == "mse"
    val_mse = [entry["val_mse"] for entry in record["history"]]
    assert record["best_epoch"] == 1 + int(np.argmin(val_mse)) and record["val"]["mse"] == min(val_mse)
    figures = record["tests"]["pronostia"]
    assert figures["score_per_row"] == pytest.approx(figures["score"] / 120, rel=1e-12)


# ---------------------------------------------------------------- the experiments


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("model", ["nac", "nac_official"])
def test_bearing_nac_has_relu_on_its_output_by_default(model):
    cfg = _compose("experiment=bearings_paper", f"model={model}")
    assert cfg.model.activation == "relu" and cfg.dataset.nac.activation == "relu"
    assert _compose("experiment=bearings_clean", f"model={model}").model.activation == "relu"
    assert _compose("experiment=none", f"model={model}").model.activation is None  # other datasets: none


def test_campaign_sweeps_run_two_jobs_at_a_time():
    for experiment in ("bearings_paper", "bearings_clean"):
        cfg = _compose(f"experiment={experiment}")
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.threads == 1
        assert cfg.trainer.epochs == 50 and cfg.trainer.batch_size == 64 and cfg.trainer.optimizer.lr == 1e-3


# ---------------------------------------------------------------- tables


def _bearing_record(fold, sources, config, metric="mse", score=30.0, rows=14350):
    return {
        "dataset": "bearings",
        "protocol": "paper",
        "model": "nac",
        "seed": 0,
        "fold": fold,
        "status": "ok",
        "metric": metric,
        "metric_mode": "min",
        "group_hash": "g",
        "git_commit": "0" * 40,
        "data": {"digest": "d" * 16, "files": {}},
        "config": config,
        "test": {},
        "tests": {"pronostia": {"mse": 0.01, "score": score + fold, "score_per_row": (score + fold) / rows}},
        "dataset_meta": {"extra": {"bearing_sources": sources}},
    }


@pytest.fixture(scope="module")
def paper_config():
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_container(
            compose("config", overrides=["experiment=bearings_paper", "model=nac"]), resolve=True
        )


def test_tables_name_mixed_sources_and_count_them_as_a_gap(paper_config):
    records = [_bearing_record(f, PAPER_SOURCES, paper_config) for f in range(5)]
    row = summary_table(records_frame(records)).iloc[0]
    assert row["sources"] == ("mixed (extracted: pronostia/Bearing1_1, pronostia/Bearing1_5, pronostia/Bearing1_6)")
    assert row["vs paper"] == (
        "extracted features for pronostia/Bearing1_1, pronostia/Bearing1_5, pronostia/Bearing1_6"
    )
    assert row["test S"] == "32.0000 ± 1.5811"  # S of folds 30..34: sample std sqrt(2.5)
    assert row["test S/row"] == f"{32.0 / 14350:.6f} ± {math.sqrt(2.5) / 14350:.6f}"


def test_tables_compare_the_papers_s_where_like_for_like(paper_config):
    published = {name: "published" for name in PAPER_SOURCES}
    row = summary_table(records_frame([_bearing_record(f, published, paper_config) for f in range(5)])).iloc[0]
    assert row["sources"] == "published" and row["vs paper"] == "like for like" and row["metric"] == "mse"
    assert row["paper (NAC)"] == 37.5 and row["diff vs paper"] == pytest.approx(32.0 - 37.5)
    gaps = paper_gaps("bearings/pronostia", "paper", "nac", paper_config, range(5), selected_on="score")
    assert gaps == ["epoch chosen on validation score (paper mse)"]


# ---------------------------------------------------------------- the Time-only reference


@pytest.mark.slow
@needs_extracted
def test_time_reference_writes_csv_and_markdown_with_s_per_row(tmp_path):
    out = tmp_path / "results" / "time_only.csv"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bearing_time_reference.py"),
            "--limit",
            "40",
            "--folds",
            "3",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--data-root",
            str(SHARED_DATA),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(out)
    assert list(table.test) == ["pronostia", "xjtu", "hust"] and (table.folds == 3).all() and (table.rows == 40).all()
    assert list(table.source) == ["extracted", "published", "published"]
    np.testing.assert_allclose(table["S/row mean"], table["S mean"] / table["rows"], rtol=1e-12)
    text = out.with_suffix(".md").read_text()
    assert "- command: `python scripts/bearing_time_reference.py --limit 40 --folds 3" in text
    assert (
        "- commit: " in text
        and "- date: 20" in text
        and "| pronostia | pronostia/Bearing1_1 | extracted | 40 |" in text
    )
