"""Regression metrics (target scale, the asymmetric score), named test sets and evaluations."""

import math

import pytest
import torch

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.harness import runner as runner_module
from nac.harness.metrics import MetricAccumulator, asymmetric_score
from nac.harness.records import load_records
from nac.harness.runner import run
from nac.harness.tables import records_frame, summary_table


def test_asymmetric_score_matches_the_formula():
    errors = torch.tensor([-13.0, 0.0, 10.0, -26.0])
    expected = (math.e - 1) + 0.0 + (math.e - 1) + (math.e**2 - 1)
    assert float(asymmetric_score(errors)) == pytest.approx(expected)
    # late (positive) errors cost more than early ones of the same size
    assert float(asymmetric_score(torch.tensor([5.0]))) > float(asymmetric_score(torch.tensor([-5.0])))


def test_regression_metrics_are_in_scaled_units():
    acc = MetricAccumulator("regression", target_scale=125.0)
    pred, y = torch.tensor([[0.5], [0.2]]), torch.tensor([0.4, 0.2])
    acc.update(pred, y)
    out = acc.result()
    assert out["rmse"] == pytest.approx(math.sqrt((12.5**2) / 2))
    assert out["mae"] == pytest.approx(12.5 / 2)
    assert out["score"] == pytest.approx(math.expm1(1.25))
    assert out["loss"] == pytest.approx(0.01 / 2)  # the training loss stays in training units


def _toy_splits(**_):
    gen = torch.Generator().manual_seed(0)

    def part(n):
        x = torch.rand(n, 4, 2, generator=gen)
        return SequenceTensorDataset(x, torch.ones(n, 4), torch.ones(n, 4, dtype=torch.bool), x.mean((1, 2)))

    meta = DatasetMeta(
        name="toy",
        input_dim=2,
        output_dim=1,
        task="regression",
        metric="rmse",
        metric_mode="min",
        protocol="clean",
        target_scale=10.0,
    )
    calls = []
    splits = DatasetSplits(
        part(32),
        part(16),
        part(16),
        meta,
        tests={"a": part(8), "b": part(12)},
        evaluations={
            "drive": lambda model, device: (
                calls.append(model.training) or {"return": 3.5, "laps": 1, "note": "text is kept out of tables"}
            )
        },
    )
    return splits, calls


def test_runner_records_named_tests_and_evaluations(make_cfg, tmp_path, monkeypatch):
    splits, calls = _toy_splits()
    monkeypatch.setattr(runner_module, "build_splits", lambda cfg: splits)
    run(make_cfg("model=gru", "seed=0"))
    (rec,) = load_records(tmp_path / "records")
    assert set(rec["tests"]) == {"a", "b"} and {"rmse", "score", "mse"} <= set(rec["tests"]["a"])
    assert rec["evaluations"]["drive"]["return"] == 3.5 and calls == [False]  # run in eval mode
    table = summary_table(records_frame([rec, {**rec, "seed": 1, "evaluations": {"drive": {"return": 5.5}}}]))
    assert list(table.dataset) == ["digits/a", "digits/b"]  # the record names the configured dataset
    assert table.iloc[0]["test"] == f"{rec['tests']['a']['rmse']:.4f} ± 0.0000"
    assert (
        table.iloc[0]["drive return"] == "4.50 ± 1.41"
    )  # sample std of 3.5, 5.5 and "drive note" not in table.columns


def test_data_root_is_the_first_candidate_holding_the_dataset_folder(tmp_path, monkeypatch):
    """Generating one dataset into ./datasets must not hide the others in the shared copy."""
    project = tmp_path / "project"
    (project / "datasets" / "carracing").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "cmapss").mkdir(parents=True)
    monkeypatch.delenv("NAC_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner_module.env, "PROJECT_ROOT", project)
    resolve = runner_module.resolve_data_root
    assert resolve(None, "carracing") == project / "datasets"
    assert resolve(None, "cmapss") == tmp_path / "shared" / "data"
    assert resolve(None, "udacity") == runner_module.Path("datasets")  # nowhere: the default, named in the error
    assert resolve(str(tmp_path / "mine"), "cmapss") == tmp_path / "mine"
    monkeypatch.setenv("NAC_DATA_ROOT", str(tmp_path / "env"))
    assert resolve(None, "cmapss") == tmp_path / "env"
