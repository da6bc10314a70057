"""The benchmark scripts run end to end on tiny settings and print real figures."""

import subprocess
import sys

from tests.conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bench_efficiency_tiny(tmp_path):
    out = tmp_path / "eff.csv"
    proc = _run("scripts/bench_efficiency.py", "--models", "nac_official", "nac", "--length", "32", "--repeats", "2",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.model) == ["nac_official", "nac"] and (table.status == "ok").all()
    assert (table["mean s"] > 0).all() and (table["peak MB"] > table["increment MB"]).all()
    assert out.with_suffix(".md").exists() and "machine load" in proc.stdout


def test_bench_efficiency_unknown_model_lists_choices():
    proc = _run("scripts/bench_efficiency.py", "--models", "nope")
    assert proc.returncode == 2 and "choose from" in proc.stderr and "nac_official" in proc.stderr


def test_bench_nac_memory_point_tiny():
    proc = _run("scripts/bench_nac.py", "--part", "memory", "--lengths", "64", "128", "--variants", "official")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "slope" in proc.stdout and "official" in proc.stdout
