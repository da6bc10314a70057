"""The cluster path for real: the small sweep through Hydra's submitit launcher on a SLURM cluster.

CI starts a single-node cluster first (scripts/slurm_local_cluster.sh) and sets
NAC_REQUIRE_SLURM=1, which turns a missing cluster into a failure instead of a skip.
"""

import os
import shutil
import subprocess

import pytest

from nac.harness.records import load_records
from tests.conftest import run_cli
from tests.test_sweeps import TINY


def _slurm_answers() -> bool:
    if shutil.which("srun") is None:
        return False
    try:
        return subprocess.run(["srun", "-N1", "-t", "1", "hostname"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_sweep_through_submitit_on_slurm(tmp_path):
    if not _slurm_answers():
        if os.environ.get("NAC_REQUIRE_SLURM") == "1":
            pytest.fail("NAC_REQUIRE_SLURM=1 but no SLURM cluster answers `srun hostname`")
        pytest.skip("no SLURM cluster here: start one with `sudo bash scripts/slurm_local_cluster.sh`")
    proc = run_cli("-m", "experiment=none", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                   "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10",
                   "model=nac_official,nac", "seed=0,1", *TINY, f"paths.output_root={tmp_path}", cwd=tmp_path,
                   timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    records = load_records(tmp_path / "records")
    assert sorted((r["model"], r["seed"]) for r in records) == [("nac", 0), ("nac", 1), ("nac_official", 0),
                                                                 ("nac_official", 1)]
    assert all(r["status"] == "ok" for r in records)
    assert list((tmp_path / "multirun").rglob(".submitit"))  # the jobs really went through submitit
    assert list((tmp_path / "multirun").rglob("table.csv"))
