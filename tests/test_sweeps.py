"""Sweeps: a small multirun (2 models x 2 seeds) through the parallel local launcher, resumed."""

import json

import pandas as pd
import pytest

from nac.harness.records import load_records
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)

TINY = [
    "trainer.epochs=1",
    "trainer.limit_train_batches=2",
    "dataset.builder.limit=150",
    "trainer.latency_samples=2",
    "trainer.progress=false",
    "threads=1",
]


def sweep(tmp_path, *extra):
    return run_cli(
        "-m",
        "experiment=none",
        "model=nac_official,nac",
        "seed=0,1",
        *TINY,
        f"paths.output_root={tmp_path}",
        *extra,
        cwd=tmp_path,
    )


def test_parallel_multirun_writes_four_records_one_table_and_resumes(tmp_path):
    proc = sweep(tmp_path, "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_records(tmp_path / "records")
    assert sorted((r["model"], r["seed"]) for r in records) == [
        ("nac", 0),
        ("nac", 1),
        ("nac_official", 0),
        ("nac_official", 1),
    ]
    assert all(r["status"] == "ok" for r in records)
    assert len({r["_path"] for r in records}) == 4  # two jobs never write to the same place
    (table_file,) = list((tmp_path / "multirun").rglob("table.csv"))
    table = pd.read_csv(table_file)
    assert sorted(table.model) == ["nac", "nac_official"] and (table.runs == "2/2").all()

    finished = {r["_path"]: r["finished"] for r in records}
    again = sweep(tmp_path)  # the same sweep, sequential launcher: everything is skipped
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("skipped:") + again.stdout.count("skipped:") == 4
    assert {p: json.load(open(p))["finished"] for p in finished} == finished
    tables = sorted((tmp_path / "multirun").rglob("table.csv"))
    assert len(tables) == 2 and (pd.read_csv(tables[-1]).runs == "2/2").all()


def test_emnist_paper_experiment_gives_five_fold_records_and_a_complete_table(tmp_path):
    """The paper protocol as the experiment runs it: one record per fold, one mean ± std row."""
    import pytest

    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no MNIST files under {SHARED_DATA}")
    proc = run_cli(
        "experiment=emnist_paper",
        "model=lstm",
        "dataset.builder.limit=300",
        *TINY,
        f"paths.data_root={SHARED_DATA}",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = load_records(tmp_path / "records")
    assert sorted(r["fold"] for r in records) == [0, 1, 2, 3, 4] and {r["protocol"] for r in records} == {"paper"}
    (table_file,) = list((tmp_path / "multirun").rglob("table.csv"))
    row = pd.read_csv(table_file).iloc[0]
    assert row["runs"] == "5/5" and row["status"] == "complete" and "±" in row["test"]
