"""The SLURM launcher and the local cluster script, without a cluster.

The launcher's real path (a sweep with cancelled jobs) is in tests/test_slurm.py; here: Hydra
finds the launcher where nac-bench is installed, the record it writes for a job that ended without
one counts in tables, and the cluster script's ``stop`` signals only the daemons it started.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nac.harness.records import load_records, write_json_atomic
from nac.harness.tables import records_frame, summary_table
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)

launcher = pytest.importorskip(
    "hydra_plugins.nac_slurm_launcher.slurm_launcher", reason="hydra/launcher=slurm needs pip install -e '.[sweep]'"
)
SCRIPT = ROOT / "scripts" / "slurm_local_cluster.sh"


def test_hydra_finds_the_slurm_launcher_outside_the_checkout(tmp_path):
    """`nac-bench` run from any folder (no checkout on sys.path) must find hydra/launcher=slurm's class."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
        "print(sorted({f'{p.__module__}.{p.__name__}' for p in Plugins.instance().discover(Launcher)}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "hydra_plugins.nac_slurm_launcher.slurm_launcher.SlurmLauncher" in found.stdout, (
        "Hydra does not see the launcher in an installed nac-bench: pyproject.toml must include the "
        f"hydra_plugins* packages (then pip install -e .)\n{found.stdout}{found.stderr}"
    )


@pytest.mark.parametrize(
    "state, status",
    [
        ("CANCELLED by 0", "interrupted"),
        ("TIMEOUT", "interrupted"),
        ("PREEMPTED", "interrupted"),
        ("OUT_OF_MEMORY", "failed"),
        ("NODE_FAIL", "failed"),
        ("", "failed"),
    ],
)
def test_a_job_without_result_gets_a_record_that_tables_count(make_cfg, tmp_path, state, status):
    cfg = make_cfg("model=nac_official", "seed=3", "tag=sweep1")
    record = launcher.marked_record(cfg, "41_2", state, "SLURM job 41_2 ended without a result")
    assert record["status"] == status and record["slurm_job_id"] == "41_2" and record["slurm_state"] == state
    assert (record["model"], record["dataset"], record["protocol"], record["seed"], record["fold"], record["tag"]) == (
        "nac_official",
        "digits",
        "clean",
        3,
        None,
        "sweep1",
    )
    assert record["config"]["trainer"]["epochs"] == cfg.trainer.epochs  # resolved, plain data
    write_json_atomic(tmp_path / "sweep" / "2" / "record.json", record)
    (loaded,) = load_records(tmp_path / "sweep")  # schema 1: the sweep table reads it
    table = summary_table(records_frame([loaded]))
    assert list(table.runs) == ["0/1"] and list(table.status) == [f"incomplete: 1 not ok ({status})"]


def test_a_paper_protocol_job_keeps_its_fold(make_cfg):
    cfg = make_cfg("protocol=paper", "protocol.fold=2")
    assert launcher.marked_record(cfg, "7", "CANCELLED", "")["fold"] == 2


def _process(tmp_path: Path, name: str) -> subprocess.Popen:
    """A process whose name (/proc/PID/comm) is ``name``: a copy of sleep."""
    binary = tmp_path / "bin" / name
    binary.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which("sleep"), binary)
    proc = subprocess.Popen([str(binary), "300"])
    for _ in range(50):
        if Path(f"/proc/{proc.pid}/comm").read_text().strip() == name:
            return proc
        time.sleep(0.02)
    raise AssertionError(f"{name} did not start")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the script runs as root")
def test_cluster_stop_signals_only_the_daemons_it_started(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    ours = _process(tmp_path, "slurmctld")
    foreign = _process(tmp_path, "slurmd")  # same name, not started by the script
    reused = subprocess.Popen(["sleep", "300"])  # a recorded PID now taken by another program
    (state / "slurmctld.pid").write_text(f"{ours.pid}\n")
    (state / "munged.pid").write_text(f"{reused.pid}\n")
    try:
        stop = subprocess.run(
            ["bash", str(SCRIPT), "stop"],
            env={**os.environ, "NAC_SLURM_STATE": str(state)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stop.returncode == 0, stop.stderr
        assert ours.wait(timeout=15) is not None
        time.sleep(0.5)
        assert foreign.poll() is None and reused.poll() is None, "stop signalled a process it did not start"
        assert not list(state.glob("*.pid"))
    finally:
        for proc in (ours, foreign, reused):
            proc.kill()
            proc.wait()
