"""The benchmark scripts run end to end on tiny settings and print real figures."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bench_efficiency_tiny(tmp_path):
    out = tmp_path / "eff.csv"
    proc = _run(
        "scripts/bench_efficiency.py",
        "--models",
        "nac_official",
        "nac",
        "--length",
        "32",
        "--repeats",
        "2",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.model) == ["nac_official", "nac"] and (table.status == "ok").all()
    assert (table["mean s"] > 0).all() and (table["peak MB"] > table["increment MB"]).all()
    assert out.with_suffix(".md").exists() and "machine load" in proc.stdout


def test_bench_efficiency_unknown_model_lists_choices():
    proc = _run("scripts/bench_efficiency.py", "--models", "nope")
    assert proc.returncode == 2 and "choose from" in proc.stderr and "nac_official" in proc.stderr


def test_bench_nac_old_memory_options_still_work(tmp_path):
    proc = _run(
        "scripts/bench_nac.py",
        "--part",
        "memory",
        "--lengths",
        "64",
        "128",
        "--variants",
        "official",
        "--long-repeats",
        "1",
        "--repeats",
        "2",
        "--step-lengths",
        "11",
        "--out",
        str(tmp_path / "mem.csv"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "log-log slope" in proc.stdout and "official" in proc.stdout
    import pandas as pd

    table = pd.read_csv(tmp_path / "mem.csv")
    assert table[table.part == "long"].what.tolist() == [
        "long official fwd+bwd T=64",
        "long official memory increment T=64",
        "long official fwd+bwd T=128",
        "long official memory increment T=128",
        "long official+all fwd+bwd T=64",
        "long official+all memory increment T=64",
        "long official+all fwd+bwd T=128",
        "long official+all memory increment T=128",
    ]
    assert (tmp_path / "mem.md").is_file()


def test_bench_efficiency_length_sweep_train_mode_writes_slopes_and_plot(tmp_path):
    out = tmp_path / "scaling.csv"
    proc = _run(
        "scripts/bench_efficiency.py",
        "--models",
        "nac_official",
        "rnn",
        "--sweep",
        "length",
        "--lengths",
        "16",
        "32",
        "64",
        "--repeats",
        "1",
        "--mode",
        "train",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 6 and (table.status == "ok").all() and set(table["mode"]) == {"train"}
    slopes = pd.read_csv(tmp_path / "scaling_slopes.csv")
    assert list(slopes.model) == ["nac_official", "rnn"] and slopes["time slope"].notna().all()
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_bench_efficiency_skips_points_over_the_memory_cap(tmp_path):
    proc = _run(
        "scripts/bench_efficiency.py",
        "--models",
        "nac_pw",
        "--sweep",
        "length",
        "--lengths",
        "16",
        "32",
        "2048",
        "--repeats",
        "1",
        "--max-memory-mb",
        "300",
        "--out",
        str(tmp_path / "s.csv"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd

    status = pd.read_csv(tmp_path / "s.csv").status.tolist()
    # extrapolated from 16 and 32 steps (slope >= 1), all pairs at 2,048 steps need far more than 300 MB
    assert status[:2] == ["ok", "ok"] and status[2].startswith("skipped: predicted")
