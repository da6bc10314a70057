"""The speed benchmark (issue 12): its pieces, and a --quick run end to end. No test asserts a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from nac.bench import fresh
from nac.bench.epoch import EPOCHS, bearings_root, run_epoch
from nac.bench.probe import MemoryProbe
from nac.bench.report import Provenance, Report, Row
from nac.bench.speed import PARTS, UsageError, attach_ratios, output_path, parse_args
from nac.bench.timing import Summary, measure
from tests.conftest import ROOT, SHARED_DATA

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)

HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "scripts/bench_nac.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------------- pieces
def test_measure_times_each_call_after_the_warmup():
    calls = []
    m = measure(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and len(m.times) == 5
    s = Summary.of_times([1.0, 2.0, 3.0, 10.0])
    assert (s.median, s.iqr, s.low, s.high, s.n) == (2.5, 3.0, 1.0, 10.0, 4)  # quartiles 1.75, 4.75
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, warmup=0, repeats=0)


def test_memory_probe_sees_an_allocation():
    probe = MemoryProbe("cpu")
    probe.start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    reading = probe.stop()
    del block
    assert reading.method.startswith("cpu_peak_rss")
    assert 60 <= reading.increment_mib < 200 and reading.peak_mib > reading.baseline_mib


def test_fresh_process_returns_the_result_or_says_why():
    done = fresh.call_fresh("json:loads", {"s": "[1, 2]"}, timeout=120)
    assert done.ok and done.result() == [1, 2]
    failed = fresh.call_fresh("json:loads", {"s": "{not json"}, timeout=120)
    assert failed.result() is None and failed.why().startswith("exit code 1: json.decoder.JSONDecodeError")
    slow = fresh.run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert slow.result() is None and slow.why() == f"timed out after {slow.seconds:.0f} s"


def test_ratios_use_the_reference_at_the_same_length_else_the_longest():
    refs = [
        Row("reference", f"step {name} T={t}", "", median=m)
        for name, t, m in [("LSTM", 11, 0.01), ("MHA", 11, 0.02), ("LSTM", 256, 0.1), ("MHA", 256, 0.5)]
    ]
    rows = [
        Row("step", "step paper T=11", "", median=0.03),
        Row("step", "step paper T=256", "", median=0.2),
        Row("long", "long paper fwd+bwd T=4096", "", median=1.0),
        Row("long", "long paper memory increment T=4096", "", unit="MiB", median=300.0),
        Row("epoch", "epoch emnist_clean paper", "", median=None),
    ]
    attach_ratios(rows, refs, 256)
    assert [(r.x_lstm, r.x_mha) for r in rows] == [
        (pytest.approx(3.0), pytest.approx(1.5)),
        (pytest.approx(2.0), pytest.approx(0.4)),
        (pytest.approx(10.0), pytest.approx(2.0)),
        (None, None),
        (None, None),
    ]


def test_verdicts():
    row = Row("step", "x", "", median=0.3, target=0.25)
    row.judge(verdicts=True)
    assert row.result == "fail"
    row.median = 0.25
    row.judge(verdicts=True)
    assert row.result == "pass"
    row.load_cores = 0.5  # other processes kept half a core busy meanwhile
    row.judge(verdicts=True)
    assert row.result == "pass (busy)"
    row.judge(verdicts=False)
    assert row.result == "-"
    missing = Row("epoch", "y", "", target=15.0)
    missing.judge(verdicts=True)
    assert missing.result == "not run"


def test_options_aliases_and_defaults():
    full = parse_args([])
    assert full.parts == list(PARTS) and full.step_lengths == [11, 256] and full.long_lengths == [1024, 4096, 16384]
    assert (full.threads, full.warmup, full.repeats, full.long_repeats, full.epoch_repeats) == (2, 2, 10, 3, 3)
    assert parse_args(["--quick"]).epoch_repeats == 1 and parse_args(["--epoch-repeats", "5"]).epoch_repeats == 5
    assert (
        output_path(full, pd.Timestamp("2030-01-02").to_pydatetime()) == ROOT / "results" / "speed_2030-01-02_cpu2t.md"
    )
    old = parse_args(["--part", "memory", "--lengths", "64", "128", "--variants", "official"])
    assert old.parts == ["long"] and old.long_lengths == [64, 128] and old.variants == ["official"]
    subset = parse_args(["--parts", "step,long", "--quick"])
    assert subset.parts == ["step", "long"] and subset.step_lengths == [11, 32]
    assert output_path(subset, pd.Timestamp("2030-01-02").to_pydatetime()).parent == ROOT / "runs" / "bench"
    assert output_path(parse_args(["--out", "x/s.csv"]), pd.Timestamp("2030-01-02").to_pydatetime()) == Path("x/s.md")
    bad_options = (["--parts", "step,warp"], ["--threads", "0"], ["--epoch-repeats", "0"], ["--nope"])
    for bad in (*bad_options, ["--part", "speed", "--parts", "step"]):
        with pytest.raises(UsageError):
            parse_args(bad)


def test_report_files_carry_the_provenance(tmp_path):
    prov = Provenance.now("scripts/bench_nac.py", ["--quick", "--out-dir", "a b"], threads=2, device="cpu")
    assert prov.command == "python scripts/bench_nac.py --quick --out-dir 'a b'"
    assert prov.commit.startswith(HEAD) and prov.date.startswith(pd.Timestamp.now("UTC").strftime("%Y-%m"))
    rows = [
        Row(
            "step",
            "step paper T=11",
            "B=32 T=11",
            median=0.0123,
            iqr=0.001,
            low=0.011,
            high=0.02,
            n=10,
            target=0.012,
            result="fail",
            x_lstm=2.0,
        )
    ]
    md, csv = Report(prov, ["settings line"], rows, "machine load: x").write(tmp_path / "s.md", "T")
    text = md.read_text()
    for line in prov.lines():
        assert f"- {line}" in text
    assert "| step paper T=11 " in text and "0.0123 s" in text and "<= 0.012 s" in text and "fail" in text
    table = pd.read_csv(csv)
    assert table.loc[0, "run_commit"] == prov.commit and table.loc[0, "run_command"] == prov.command
    assert table.loc[0, "run_threads"] == 2 and table.loc[0, "median"] == 0.0123


def _bearing_tree(root: Path, with_extracted: bool) -> None:
    files = {
        "features/pronostia": ["Bearing1_4_features.csv.gz", "Bearing1_7_features.csv.gz"],
        "features/xjtu": ["Bearing1_1_features_with_labels.csv.gz"],
        "features/hust": ["Bearing1_features.csv.gz"],
    }
    if with_extracted:
        files["extracted"] = [f"Bearing1_{i}_features.csv.gz" for i in (1, 5, 6)]
    for folder, names in files.items():
        (root / "bearings" / folder).mkdir(parents=True)
        for name in names:
            (root / "bearings" / folder / name).write_text(name)


def test_bearings_root_adds_the_extracted_pronostia_files(tmp_path):
    _bearing_tree(tmp_path / "data", with_extracted=True)
    root, note = bearings_root(tmp_path / "data", tmp_path / "work")
    assert root == tmp_path / "work" / "data" and "Bearing1_5" in note and "extracted" in note
    for name in ("1_1", "1_4", "1_5", "1_6", "1_7"):
        assert (root / f"bearings/features/pronostia/Bearing{name}_features.csv.gz").read_text().startswith("Bearing")
    assert (root / "bearings/features/hust/Bearing1_features.csv.gz").is_file()
    _bearing_tree(tmp_path / "bare", with_extracted=False)
    assert bearings_root(tmp_path / "bare", tmp_path / "w2") == (tmp_path / "bare", "")


# ------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    proc = _bench("--quick", "--threads", "1", "--out-dir", str(out))
    return proc, out


def test_quick_run_writes_files_with_command_commit_date_and_rows(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    mds, csvs = list(out.glob("speed_*_quick.md")), list(out.glob("speed_*_quick.csv"))
    assert len(mds) == 1 and len(csvs) == 1, list(out.iterdir())
    text = mds[0].read_text()
    assert f"- command: `python scripts/bench_nac.py --quick --threads 1 --out-dir {out}`" in text
    assert f"- commit: {HEAD}" in text and "- date: 20" in text and "torch threads 1" in text
    assert f"torch {torch.__version__}" in text and "- machine load: " in text and "QUICK RUN" in text
    table = pd.read_csv(csvs[0])
    expected = (
        [f"step {m} T={t}" for t in (11, 32) for m in ("LSTM", "MHA")]
        + [f"step {v} T={t}" for t in (11, 32) for v in ("paper", "official", "paper+all", "official+all")]
        + [
            f"long {v} {f} T={t}"
            for v in ("paper", "official", "paper+all", "official+all")
            for t in (64, 128)
            for f in ("fwd+bwd", "memory increment")
        ]
        + ["epoch emnist_clean paper", "epoch emnist_clean official", "epoch bearings_paper paper"]
    )
    assert table.what.tolist() == expected
    timed = table[table.part.isin(["reference", "step", "long"])]
    assert (timed["median"] > 0).all() and timed.load_cores.notna().all()
    assert set(table.result) <= {"-", "not run"}  # quick: no verdicts
    nac_steps = table[table.part == "step"].set_index("what")
    lstm = table.set_index("what")["median"]
    assert nac_steps.loc["step paper T=32", "x_lstm"] == pytest.approx(
        nac_steps.loc["step paper T=32", "median"] / lstm["step LSTM T=32"]
    )
    assert (table[table.unit == "MiB"].x_lstm.isna()).all() and (table[table.unit == "MiB"]["median"] > 0).all()
    epochs = table[table.part == "epoch"]
    assert (epochs["median"].notna() | epochs.note.str.startswith("not run")).all()
    assert (table.run_commit.str.startswith(HEAD)).all() and (table.run_threads == 1).all()
    for line in text.splitlines():
        if line.startswith("| step paper T=11"):
            assert line in proc.stdout  # the printed table is the written one
    assert "Memory increment against T, log-log slope" in proc.stdout


def test_missing_data_is_a_row_not_a_failure(tmp_path):
    proc = _bench("--quick", "--parts", "epoch", "--data-root", str(tmp_path / "empty"), "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(next(tmp_path.glob("speed_*_quick_epoch.csv"))).set_index("what")
    epochs = table[table.part == "epoch"]
    assert len(epochs) == 3 and (epochs.result == "not run").all()
    assert "mnist" in epochs.loc["epoch emnist_clean paper", "note"]
    assert "bearing feature files missing" in epochs.loc["epoch bearings_paper paper", "note"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parts", "step,warp"], "--parts: unknown 'warp'; choose from step,long,epoch"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--threads", "0"], "--threads must be positive, got 0"),
        (["--device", "tpu"], "--device 'tpu' is not a device"),
    ],
)
def test_a_bad_option_is_one_line(args, message, tmp_path):
    proc = _bench(*args, "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"scripts/bench_nac.py: error: {message}")
    assert not list(tmp_path.iterdir())


def test_module_entry_needs_a_command():
    proc = subprocess.run([sys.executable, "-m", "nac.bench"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == "nac.bench: error: expected a command (speed), got nothing\n"


def test_long_point_in_a_fresh_process_reports_time_and_memory():
    done = fresh.call_fresh(
        "nac.bench.workloads:long_point",
        dict(variant="official", length=32, device="cpu", threads=1, repeats=2, shape=dict(heads=4, topk=4)),
        timeout=300,
    )
    result = done.result()
    assert result is not None, done.why()
    assert result["threads"] == 1 and len(result["times_s"]) == 2 and result["cold_s"] > 0
    assert result["increment_mib"] == pytest.approx(result["peak_mib"] - result["baseline_mib"])
    assert json.dumps(result)  # JSON-able


def test_every_query_layer_gives_the_last_query_layers_output():
    """``<variant>+all`` computes every query and reads the last step; it must equal the plain layer
    (which attends from the last query only), so the two rows time the same function."""
    from nac.bench.workloads import StepShape, sequence_layer

    shape = StepShape(batch=3, input_dim=8, d_model=16, heads=4, topk=3)
    x = torch.randn(3, 7, 8)
    for variant in ("paper", "official"):
        torch.manual_seed(0)
        last_only = sequence_layer(variant, shape)
        torch.manual_seed(0)
        every = sequence_layer(variant + "+all", shape)
        assert every.layer.return_sequences and not last_only.return_sequences
        torch.testing.assert_close(every(x), last_only(x))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_epoch_row_is_the_median_of_the_epochs_the_run_recorded(tmp_path):
    spec = EPOCHS[1]  # emnist_clean official
    result = run_epoch(
        spec, device="cpu", threads=1, workdir=tmp_path, data_root=SHARED_DATA, quick=True, timeout=300, epochs=3
    )
    assert result.error == "" and "trainer.epochs=3" in result.command
    record = json.loads((tmp_path / "hydra" / "record.json").read_text())
    assert result.epoch_seconds == [h["epoch_time_s"] for h in record["history"]] and len(result.epoch_seconds) == 3
    summary = Summary.of_times(result.epoch_seconds)
    assert summary.median == sorted(result.epoch_seconds)[1] and summary.n == 3
