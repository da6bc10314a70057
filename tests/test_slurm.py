"""The cluster path for real: sweeps through Hydra's submitit launcher on a SLURM cluster.

CI starts a single-node cluster with accounting first (scripts/slurm_local_cluster.sh) and sets
NAC_REQUIRE_SLURM=1, which turns a missing cluster into a failure instead of a skip.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from nac.harness.records import load_records
from tests.conftest import ROOT, run_cli
from tests.test_sweeps import TINY

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)

SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=10",
]


def _slurm_answers() -> bool:
    if shutil.which("srun") is None or shutil.which("sacct") is None:
        return False
    try:
        return (
            subprocess.run(["srun", "-N1", "-t", "1", "hostname"], capture_output=True, timeout=30).returncode == 0
            and subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, timeout=30).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def slurm():
    if not _slurm_answers():
        if os.environ.get("NAC_REQUIRE_SLURM") == "1":
            pytest.fail("NAC_REQUIRE_SLURM=1 but no SLURM cluster answers `srun hostname` and `sacct`")
        pytest.skip("no SLURM cluster with accounting here: start one with `sudo bash scripts/slurm_local_cluster.sh`")


def test_sweep_through_submitit_on_slurm(slurm, tmp_path):
    proc = run_cli(
        "-m",
        "experiment=none",
        *SLURM,
        "model=nac_official,nac",
        "seed=0,1",
        *TINY,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    records = load_records(tmp_path / "records")
    assert sorted((r["model"], r["seed"]) for r in records) == [
        ("nac", 0),
        ("nac", 1),
        ("nac_official", 0),
        ("nac_official", 1),
    ]
    assert all(r["status"] == "ok" for r in records)
    assert list((tmp_path / "multirun").rglob(".submitit"))  # the jobs really went through submitit
    assert list((tmp_path / "multirun").rglob("table.csv"))


def _wait_for(what: str, check, timeout: float, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s:\n{proc.communicate()[0][-3000:]}")


def test_cancelling_jobs_ends_the_sweep_with_those_runs_marked(slurm, tmp_path):
    """Three jobs, one at a time: #0 finishes, #1 is cancelled while it trains, #2 while it waits.

    The sweep must end (before accounting, a cancelled job stayed UNKNOWN to submitit and the sweep
    polled for ever), wait for every job, mark both cancelled runs in their output folders (#1 by
    the runner on SIGTERM, #2, which never ran, by the launcher) and write a table that counts them.
    """
    tiny = [o for o in TINY if not o.startswith("trainer.epochs=")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nac",
            "-m",
            "experiment=none",
            *SLURM,
            "hydra.launcher.array_parallelism=1",
            "model=nac_official",
            "trainer.epochs=1,20000,2",
            *tiny,
            f"paths.output_root={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def training(job: int):
            return lambda: [p for p in (tmp_path / "multirun").glob(f"*/*/{job}/*.log") if "epoch 1/" in p.read_text()]

        (log_1,) = _wait_for("job #1 training", training(1), 180, proc)
        sweep_dir = log_1.parent.parent
        (array_id,) = [p.name for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
        pending = subprocess.run(
            ["squeue", "-h", "-j", f"{array_id}_2", "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        assert pending == "PENDING", f"job #2 should wait behind #1 (array_parallelism=1), squeue says {pending!r}"
        subprocess.run(["scancel", f"{array_id}_1", f"{array_id}_2"], check=True)
        cancelled = time.monotonic()
        output, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    ended_after = time.monotonic() - cancelled
    assert proc.returncode == 1, output[-3000:]
    runs = {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/record.json")}
    assert sorted(runs) == [0, 1, 2], output[-3000:]
    assert runs[0]["status"] == "ok"
    assert runs[1]["status"] == "interrupted" and "SIGTERM" in runs[1]["error"]  # the runner's, from the job
    assert runs[1]["config"]["trainer"]["epochs"] == 20000 and 0 < runs[1]["epochs_run"] < 20000
    assert runs[2]["status"] == "interrupted" and runs[2]["slurm_state"].startswith("CANCELLED")  # the launcher's
    assert (runs[2]["model"], runs[2]["seed"], runs[2]["config"]["trainer"]["epochs"]) == ("nac_official", 0, 2)
    assert len(load_records(sweep_dir)) == 3  # a valid record (schema 1) that tables read
    assert f"SLURM job {array_id}_1 ended CANCELLED" in output and f"SLURM job {array_id}_2 ended CANCELLED" in output
    (table_file,) = sweep_dir.glob("table*.csv")
    table = pd.read_csv(table_file)
    assert sorted(table.runs) == ["0/1", "0/1", "1/1"]
    assert table.status.str.contains("interrupted").sum() == 2, table.to_string()
    print(f"sweep ended {ended_after:.1f} s after scancel")
