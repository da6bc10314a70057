"""Saved test predictions (trainer.save_predictions, nac/harness/predictions.py) and their plots.

The end-to-end test trains a tiny C-MAPSS run and recomputes the record's test metrics from the
predictions file; the others use small synthetic datasets.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nac.data.base import DatasetMeta, SequenceTensorDataset
from nac.harness.errors import SetupError
from nac.harness.prediction_plots import collect, figure_for, sample_order
from nac.harness.predictions import (
    SetPredictions,
    predictions_path,
    read_predictions,
    regression_metrics,
    requested,
    save_predictions,
    write_predictions,
)
from nac.harness.runner import make_loader, run
from nac.harness.train import evaluate
from tests.conftest import ROOT, SHARED_DATA

FOLDER = SHARED_DATA / "cmapss"
HAVE_FD001 = all((FOLDER / f"{kind}_FD001.txt").is_file() for kind in ("train", "test", "RUL"))


@pytest.mark.skipif(not HAVE_FD001, reason=f"no C-MAPSS FD001 files under {FOLDER}")
def test_run_writes_predictions_that_reproduce_the_record(make_cfg, tmp_path):
    cfg = make_cfg("dataset=cmapss", "model=lstm", "trainer=cmapss", "threads=1", f"paths.data_root={SHARED_DATA}")
    assert cfg.trainer.save_predictions is True
    objective = run(cfg)  # what an Optuna sweep minimises: the best validation RMSE, not the test one
    [path] = (tmp_path / "records" / "cmapss" / "clean" / "lstm").glob("*.json")
    record = json.loads(path.read_text())
    assert objective == record["val"]["rmse"] != record["test"]["rmse"]
    assert record["status"] == "ok" and record["predictions_file"] == path.stem + ".predictions.npz"
    info, sets = read_predictions(predictions_path(path))
    assert list(sets) == ["test"] and info["record"] == path.name and info["model"] == "lstm"
    assert info["target_scale"] == 125 and info["metric"] == "rmse" and info["subset"] == "FD001"
    test = sets["test"]
    assert test.pred.shape == test.true.shape == (100,)
    recomputed = regression_metrics(test.pred, test.true)
    for key in ("rmse", "mae", "score"):
        assert recomputed[key] == pytest.approx(record["test"][key], rel=1e-5), key
    truth = np.minimum(np.loadtxt(FOLDER / "RUL_FD001.txt"), 125)  # in cycles, engine order
    np.testing.assert_allclose(test.true, truth, rtol=0, atol=1e-4)
    assert test.index[:, 0].tolist() == list(range(1, 101))  # (engine, last row) per test engine


class LastStep(nn.Module):
    """pred = 2 * x[last valid step, 0] (a model whose outputs are known)."""

    def forward(self, x, t=None, mask=None):
        last = mask.sum(1).long() - 1
        return 2 * x[torch.arange(len(x)), last, :1]


def dataset(n: int, seed: int) -> SequenceTensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 4, 1, generator=g)
    mask = torch.ones(n, 4, dtype=torch.bool)
    mask[0, 2:] = False  # one padded sample
    data = SequenceTensorDataset(
        x.numpy(), np.ones((n, 4), np.float32), mask.numpy(), torch.rand(n, generator=g).numpy()
    )
    data.windows = [(i + 1, 3) for i in range(n)]
    return data


def test_named_test_sets_match_evaluate_and_hand_values(tmp_path):
    a, b = dataset(7, 0), dataset(5, 1)
    meta = DatasetMeta(
        name="toy",
        input_dim=1,
        output_dim=1,
        task="regression",
        metric="rmse",
        metric_mode="min",
        protocol="clean",
        target_scale=125.0,
    )
    loader = lambda data: make_loader(data, 3, False, 0, 0)  # noqa: E731
    path = save_predictions(
        tmp_path / "r.predictions.npz",
        LastStep(),
        {"test": a, "a": a, "b": b},
        loader,
        torch.device("cpu"),
        meta,
        False,
        {"model": "toy"},
    )
    info, sets = read_predictions(path)
    assert list(sets) == ["test", "a", "b"] and info["record"] == "r.json" and info["task"] == "regression"
    for name, data in (("a", a), ("b", b)):
        last = [data.x[i, int(data.mask[i].sum()) - 1, 0] for i in range(len(data))]
        np.testing.assert_allclose(sets[name].pred, 125 * 2 * np.array(last, np.float64), rtol=1e-6)
        np.testing.assert_allclose(sets[name].true, 125 * data.y.numpy().astype(np.float64), rtol=1e-6)
        expected = evaluate(LastStep(), loader(data), torch.device("cpu"), "regression", False, 125.0)
        got = regression_metrics(sets[name].pred, sets[name].true)
        assert all(got[k] == pytest.approx(expected[k], rel=1e-5) for k in ("rmse", "mae", "score"))
        assert sets[name].index.tolist() == [list(w) for w in data.windows]
    np.testing.assert_array_equal(sets["test"].pred, sets["a"].pred)


def test_regression_metrics_by_hand():
    got = regression_metrics(np.array([10.0, 0.0, 5.0]), np.array([0.0, 13.0, 5.0]))  # late 10, early 13, exact
    assert got["rmse"] == pytest.approx(math.sqrt((100 + 169) / 3))
    assert got["mae"] == pytest.approx(23 / 3) and got["score"] == pytest.approx(2 * (math.e - 1))


def test_option_must_be_a_boolean():
    assert requested({}) is False and requested({"save_predictions": True}) is True
    with pytest.raises(SetupError, match=r"trainer.save_predictions='yes' is not valid; use true or false"):
        requested({"save_predictions": "yes"})


def test_unreadable_file_names_itself(tmp_path):
    bad = tmp_path / "x.predictions.npz"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match=r"x.predictions.npz is not a predictions file"):
        read_predictions(bad)
    with pytest.raises(ValueError, match=r"cannot be stored"):
        write_predictions(tmp_path / "y.npz", {"a__b": SetPredictions(np.zeros(1), np.zeros(1))}, {})


def write_example(folder, dataset: str, tag: str, sets: dict, seed: int = 0):
    info = {"dataset": dataset, "model": "nac", "seed": seed, "tag": tag, "task": "regression"}
    return write_predictions(
        folder / f"{dataset}-{tag}-{seed}.predictions.npz",
        {name: SetPredictions(np.asarray(p, float), np.asarray(t, float)) for name, (p, t) in sets.items()},
        info,
    )


def test_cmapss_panels_sort_engines_by_true_rul_and_rows_keep_file_order(tmp_path):
    cm = write_example(tmp_path, "cmapss", "FD001", {"test": ([50, 10, 90], [60, 5, 125])})
    be = write_example(tmp_path, "bearings", "", {"xjtu": ([0.1, 0.4, 0.2], [0.0, 1.0, 0.5])})
    info, sets = read_predictions(cm)
    fig = figure_for("test", [(info, sets["test"])])
    truth, pred = (line.get_ydata() for line in fig.axes[0].lines)
    assert truth.tolist() == [5, 60, 125] and pred.tolist() == [10, 50, 90]
    assert "nac FD001 seed 0, test: RMSE 21.21" in fig.axes[0].get_title()  # sqrt((100 + 25 + 1225) / 3)
    untagged = {**info, "tag": "", "subset": "FD003"}  # an untagged C-MAPSS run is labelled by its subset
    assert figure_for("test", [(untagged, sets["test"])]).axes[0].get_title().startswith("nac FD003 seed 0")
    info, sets = read_predictions(be)
    truth, pred = (line.get_ydata() for line in figure_for("xjtu", [(info, sets["xjtu"])]).axes[0].lines)
    assert truth.tolist() == [0.0, 1.0, 0.5] and pred.tolist() == [0.1, 0.4, 0.2]  # rows: file order
    assert sample_order(info, sets["xjtu"], "truth").tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match=r"order='up' is not valid"):
        sample_order(info, sets["xjtu"], "up")


@pytest.mark.slow
def test_cli_writes_one_png_per_set_with_a_panel_per_file(tmp_path):
    for seed, tag in enumerate(["FD002", "FD001"]):
        write_example(tmp_path / "in", "cmapss", tag, {"test": ([50, 10, 90], [60, 5, 125])}, seed)
    write_example(tmp_path / "in", "bearings", "", {"a": ([1, 2], [1, 3]), "b": ([0, 1], [0, 0])})
    script = ROOT / "scripts" / "plot_predictions.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--name", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["x_a.png", "x_b.png", "x_test.png"]
    assert all((tmp_path / "out" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in written)
    # panels sorted by dataset, tag, model, seed: FD001 before FD002
    assert [info["tag"] for _, info, _ in collect([tmp_path / "in"]) if info["dataset"] == "cmapss"] == [
        "FD001",
        "FD002",
    ]
    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "missing.npz")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "missing.npz does not exist" in bad.stderr
