"""The bearings reproduction report (nac/harness/report.py, ``make_report.py bearings``) on synthetic records.

References are independent of the code under test: means, stds and t intervals worked out by hand (t quantiles
from a printed table), Welch intervals from scipy.stats.ttest_ind(equal_var=False), the asymmetric score written
out from its definition. Records carry the configs the shipped bearing experiments resolve to, so the
like-for-like check and the commands are the real ones; the Time-only CSV is written by the script's own
table function."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from nac.harness.predictions import SetPredictions, predictions_path, read_predictions, write_predictions
from nac.harness.records import write_json_atomic
from nac.harness.report import main
from nac.harness.report_bearings import BEARINGS, bearing_predictions_figure
from tests.conftest import CONFIGS, ROOT, model_choice

T975_4, T975_2 = 2.7764, 4.3027  # two-sided 95 % Student-t quantiles, 4 and 2 degrees of freedom (printed table)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ROWS = {"pronostia": 14350, "xjtu": 8000, "hust": 12387}
TESTS = {"pronostia": "pronostia/Bearing1_1", "xjtu": "xjtu/Bearing1_1", "hust": "hust/Bearing1"}
SOURCES = {
    "pronostia/Bearing1_4": "published",
    "pronostia/Bearing1_5": "extracted",
    "pronostia/Bearing1_6": "extracted",
    "pronostia/Bearing1_7": "published",
    "pronostia/Bearing1_1": "extracted",
    "xjtu/Bearing1_1": "published",
    "hust/Bearing1": "published",
}
PAPER_S = [30.0, 35.0, 40.0, 45.0, 50.0]  # NAC paper folds on PRONOSTIA: mean 40, std sqrt(62.5) = 7.9057
KEPT, DROPPED = [0.010, 0.012, 0.014], [0.020, 0.026, 0.029]  # clean S/row, seeds 0-2, every bearing


@cache
def _config(experiment: str, model: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_container(
            compose("config", overrides=[f"experiment={experiment}", f"model={model}", *overrides]), resolve=True
        )


def _rec(
    model: str,
    per_row: float | None,
    *,
    fold: int | None = None,
    seed: int = 0,
    drop_time: bool | None = None,
    status: str = "ok",
    overrides: tuple[str, ...] = (),
    experiment: str | None = None,
) -> dict:
    """A bearings record: ``paper`` when ``drop_time`` is None, else ``clean`` (``experiment``, default
    bearings_clean); every test set gets S/row ``per_row`` (S = per_row x rows); a failed record
    (``per_row`` None) has no test sets, as the runner writes."""
    experiment = "bearings_paper" if drop_time is None else experiment or "bearings_clean"
    extra = ("dataset.builder.drop_time=" + str(drop_time).lower(),) if drop_time is not None else ()
    config = _config(experiment, model, *extra, *overrides)
    tests = (
        {name: {"mse": per_row / 10, "score": per_row * rows, "score_per_row": per_row} for name, rows in ROWS.items()}
        if per_row is not None
        else {}
    )
    return {
        "schema": 1,
        "status": status,
        "model": model,
        "dataset": "bearings",
        "protocol": config["protocol"]["name"],
        "fold": fold,
        "seed": seed,
        "tag": "",
        "git_commit": COMMIT,
        "device": "cpu (x86_64, 1 threads)",
        "config": config,
        "data": {"digest": "56e1f923c4583f71", "files": {}},
        "group_hash": f"{experiment}-{model}-{drop_time}-{'-'.join(overrides)}",
        "metric": "mse" if drop_time is None else "score",
        "metric_mode": "min",
        "dataset_meta": {
            "extra": {
                "bearings": {"test": TESTS},
                "bearing_sources": SOURCES,
                "mixed_sources": True,
                "rows": {TESTS[n]: r for n, r in ROWS.items()},
            }
        },
        "history": [{"epoch": 1, "val_mse": 0.01, "epoch_time_s": 360.0}],
        "tests": tests,
        "test": tests.get("pronostia", {}),
        "started": "2026-12-01T10:00:00+00:00",
        "finished": "2026-12-01T11:00:00+00:00",
        "wall_time_s": 3600.0,
    }


def _paper_nac(scores=PAPER_S) -> list[dict]:
    return [_rec("nac", s / ROWS["pronostia"], fold=f) for f, s in enumerate(scores)]


def _clean_nac() -> list[dict]:
    return [_rec("nac", v, seed=s, drop_time=False) for s, v in enumerate(KEPT)] + [
        _rec("nac", v, seed=s, drop_time=True) for s, v in enumerate(DROPPED)
    ]


def _time_only_csv(path, protocol: str) -> None:
    """A Time-only CSV as scripts/bearing_time_reference.py --out writes it (its own summary_frame)."""
    file = ROOT / "scripts" / "bearing_time_reference.py"
    spec = importlib.util.spec_from_file_location("bearing_time_reference", file)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folds = [21.0, 21.5, 20.5, 21.2, 20.8] if protocol == "paper" else [25.0]  # PRONOSTIA S per fold
    results = {
        name: [
            {
                "score": s * (1 if name == "pronostia" else 0.5),
                "score_per_row": s / ROWS[name],
                "mse": 0.001,
                "rmse": 0.03,
            }
            for s in folds
        ]
        for name in ROWS
    }
    extra = {"bearings": {"test": TESTS}, "bearing_sources": SOURCES, "rows": {TESTS[n]: r for n, r in ROWS.items()}}
    script.summary_frame(results, extra).assign(command="x", commit="y").to_csv(path, index=False)


def _write(tmp_path, records: list[dict], *extra: str, predictions: dict[int, dict] | None = None):
    for i, rec in enumerate(records):
        write_json_atomic(tmp_path / "records" / f"r{i:03d}.json", rec)
    for i, sets in (predictions or {}).items():
        write_predictions(
            predictions_path(tmp_path / "records" / f"r{i:03d}.json"),
            sets,
            {"dataset": "bearings", "model": records[i]["model"], "seed": records[i]["seed"], "tag": ""},
        )
    out = tmp_path / "out" / "reproduction_bearings.md"
    time_only = ["--time-only", str(tmp_path / "tp.csv"), "--time-only-clean", str(tmp_path / "tc.csv")]
    assert main(["bearings", "--records", str(tmp_path / "records"), "--out", str(out), *time_only, *extra]) == 0
    return out.read_text(), out


def _table(text: str, heading: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table after ``heading`` whose first column is ``first_header``."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")])))
    return rows


def _row(rows: list[dict], model: str, protocol: str) -> dict[str, str]:
    return next(r for r in rows if r["model"] == model and r["protocol"] == protocol)


PRONOSTIA, XJTU = "### PRONOSTIA Bearing1_1", "### XJTU-SY Bearing1_1"


def test_causal_runs_have_their_own_rows_and_records_older_than_the_key_count_as_non_causal(tmp_path):
    """bearings_clean_causal runs go to the `clean` causal rows only; a record made before
    ``dataset.causal`` existed (no such key) is a non-causal run, not dropped; the look-ahead difference
    (as run − causal, Welch) is in section 2."""
    old = _rec("nac", 0.010, seed=0, drop_time=False)
    del old["config"]["dataset"]["causal"]
    kept = [old] + [_rec("nac", v, seed=s, drop_time=False) for s, v in list(enumerate(KEPT))[1:]]
    causal = [
        _rec("nac", v, seed=s, drop_time=False, experiment="bearings_clean_causal")
        for s, v in enumerate([0.02, 0.03, 0.04])
    ]
    text, _ = _write(tmp_path, kept + causal)
    rows = _table(text, PRONOSTIA, "model")
    assert _row(rows, "NAC (nac)", "`clean`, Time kept")["S/row"] == "0.012000 ± 0.002000"
    assert _row(rows, "NAC (nac)", "`clean` causal, Time kept")["S/row"] == "0.030000 ± 0.010000"
    assert _row(rows, "NAC (nac)", "`clean` causal, Time dropped")["status"] == "not run yet"
    effect = _table(text, "## 2. The protocol's effect", "test bearing")
    look_ahead = next(
        r
        for r in effect
        if r["model"] == "NAC (nac)" and "causal" in r["difference (S/row)"] and r["test bearing"].startswith("PRON")
    )
    welch = stats.ttest_ind(KEPT, [0.02, 0.03, 0.04], equal_var=False).confidence_interval(0.95)
    assert look_ahead["value"] == "-0.018000"
    assert look_ahead["95% CI"] == f"[{welch.low:+.6f}, {welch.high:+.6f}]"


# ---------------------------------------------------------------- section 1


def test_per_bearing_figures_match_hand_computed_numbers(tmp_path):
    text, _ = _write(tmp_path, _paper_nac() + _clean_nac())
    rows = _table(text, PRONOSTIA, "model")
    paper = _row(rows, "NAC (nac)", "`paper`")
    std, half = math.sqrt(62.5), T975_4 * math.sqrt(62.5) / math.sqrt(5)  # 7.9057, 9.816
    assert paper["S"] == "40.00 ± 7.91"
    assert paper["S 95% CI"] == f"[{40 - half:.2f}, {40 + half:.2f}]" == "[30.18, 49.82]"
    n = ROWS["pronostia"]
    assert paper["S/row"] == f"{40 / n:.6f} ± {std / n:.6f}" == "0.002787 ± 0.000551"
    assert paper["S/row 95% CI"] == f"[{(40 - half) / n:.6f}, {(40 + half) / n:.6f}]"
    assert paper["n"] == "5" and paper["runs (ok/total)"] == "5/5" and paper["status"] == "complete"
    assert paper["settings"] == "as the experiment"
    assert len([r for r in rows if r["model"] == "NAC (nac)"]) == 5  # one row per setting: none pooled or listed twice
    kept = _row(rows, "NAC (nac)", "`clean`, Time kept")  # 0.010, 0.012, 0.014: std 0.002
    assert kept["S/row"] == "0.012000 ± 0.002000" and kept["n"] == "3" and kept["status"] == "complete"
    half_kept = T975_2 * 0.002 / math.sqrt(3)
    assert kept["S/row 95% CI"] == f"[{0.012 - half_kept:.6f}, {0.012 + half_kept:.6f}]" == "[0.007032, 0.016968]"
    assert kept["S"] == f"{0.012 * n:.2f} ± {0.002 * n:.2f}"
    dropped = _row(rows, "NAC (nac)", "`clean`, Time dropped")  # drop_time=true records land here, not above
    assert dropped["S/row"] == f"{np.mean(DROPPED):.6f} ± {np.std(DROPPED, ddof=1):.6f}" == "0.025000 ± 0.004583"
    xjtu = _row(_table(text, XJTU, "model"), "NAC (nac)", "`paper`")  # S = S/row x 8,000 rows on XJTU-SY
    assert xjtu["S"] == f"{40 / n * 8000:.2f} ± {std / n * 8000:.2f}"
    assert "Paper: **S = 37.5** for NAC under `paper` (S/row 0.002613 if the authors' file has the 14,350 rows" in text


def test_missing_groups_say_not_run_yet(tmp_path):
    text, _ = _write(tmp_path, _paper_nac())
    rows = _table(text, PRONOSTIA, "model")
    for model, protocol in (
        ("LTC", "`paper`"),
        ("NAC (nac_official)", "`paper`"),
        ("NAC (nac)", "`clean`, Time kept"),
        ("Transformer", "`clean`, Time dropped"),
    ):
        row = _row(rows, model, protocol)
        assert row["status"] == "not run yet" and row["S"] == "-" and row["runs (ok/total)"] == "0"
    assert _row(rows, "Time only (a line on Time)", "`paper`")["status"] == "not run yet"  # no CSV written
    make = f"python scripts/bearing_time_reference.py --protocol clean --out {tmp_path}/tc.csv"
    assert f"`clean`: not run yet (`{make}`)" in text
    assert (
        "Not run yet: groups of `nac-bench experiment=bearings_clean`, `nac-bench experiment=bearings_clean_causal`, "
        "`nac-bench experiment=bearings_paper`." in text
    )
    effect = _table(text, "## 2.", "test bearing")
    assert {r["value"] for r in effect} == {"not run yet"}  # no clean runs: no difference anywhere
    assert "No predictions saved yet" in text


def test_empty_records_folder_gives_every_group_not_run_yet(tmp_path):
    (tmp_path / "none").mkdir()
    out = tmp_path / "r.md"
    no_csv = ["--time-only", str(tmp_path / "no_paper.csv"), "--time-only-clean", str(tmp_path / "no_clean.csv")]
    assert main(["bearings", "--records", str(tmp_path / "none"), "--out", str(out), *no_csv]) == 0
    rows = _table(out.read_text(), PRONOSTIA, "model")
    assert len(rows) == len(BEARINGS.groups) + 2 and {r["status"] for r in rows} == {"not run yet"}
    assert "Sources: no records yet" in out.read_text() and not (tmp_path / "r_predictions.png").exists()


def test_a_failed_run_without_test_sets_counts_on_every_bearing(tmp_path):
    records = _paper_nac(PAPER_S[:4]) + [_rec("nac", None, fold=4, status="failed")]
    text, _ = _write(tmp_path, records)
    for heading in (PRONOSTIA, XJTU, "### HUST Bearing1"):
        row = _row(_table(text, heading, "model"), "NAC (nac)", "`paper`")
        assert row["runs (ok/total)"] == "4/5" and row["status"] == "incomplete: 1 not ok (failed); 4/5 folds"
        assert row["n"] == "4"


def test_the_time_only_csv_is_read(tmp_path):
    _time_only_csv(tmp_path / "tp.csv", "paper")
    _time_only_csv(tmp_path / "tc.csv", "clean")
    text, _ = _write(tmp_path, _paper_nac())
    rows = _table(text, PRONOSTIA, "model")
    paper = _row(rows, "Time only (a line on Time)", "`paper`")
    folds = np.array([21.0, 21.5, 20.5, 21.2, 20.8])  # mean 21.0, std sqrt(0.58 / 4) = 0.3808
    half = T975_4 * folds.std(ddof=1) / math.sqrt(5)
    assert paper["S"] == "21.00 ± 0.38" and paper["S 95% CI"] == f"[{21 - half:.2f}, {21 + half:.2f}]"
    assert paper["S/row"] == f"{21 / 14350:.6f} ± {folds.std(ddof=1) / 14350:.6f}" and paper["n"] == "5"
    assert paper["status"] == "reference" and paper["runs (ok/total)"] == "5 fit(s)"
    clean = _row(rows, "Time only (a line on Time)", "`clean`, Time kept")
    assert clean["S"] == "25.00" and clean["S 95% CI"] == "single fit" and clean["S/row"] == f"{25 / 14350:.6f}"
    assert _row(_table(text, XJTU, "model"), "Time only (a line on Time)", "`paper`")["S"] == "10.50 ± 0.19"
    assert (
        f"Time-only references: `paper`: {tmp_path}/tp.csv (command `x`, commit y); `clean`: {tmp_path}/tc.csv" in text
    )


@pytest.mark.slow
def test_a_csv_of_another_format_is_one_line(tmp_path):
    pd.DataFrame({"test": ["pronostia"], "S": [1.0]}).to_csv(tmp_path / "other.csv", index=False)
    (tmp_path / "records").mkdir()
    out = tmp_path / "r.md"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/make_report.py",
            "bearings",
            "--records",
            str(tmp_path / "records"),
            "--out",
            str(out),
            "--time-only",
            str(tmp_path / "other.csv"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "lacks the column(s)" in proc.stderr
    assert not out.exists()
    emnist = subprocess.run(
        [
            sys.executable,
            "scripts/make_report.py",
            "emnist",
            "--records",
            str(tmp_path / "records"),
            "--out",
            str(out),
            "--time-only",
            "x.csv",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert emnist.returncode == 2 and "are for the bearings report" in emnist.stderr and not out.exists()


def test_sources_are_named_and_the_paper_gap_says_extracted(tmp_path):
    text, _ = _write(tmp_path, _paper_nac())
    assert (
        "- `paper`, 5 record(s): mixed sources in 5; extracted features: pronostia/Bearing1_1, "
        "pronostia/Bearing1_5, pronostia/Bearing1_6; test bearings: pronostia/Bearing1_1 extracted; "
        "xjtu/Bearing1_1 published; hust/Bearing1 published."
    ) in text
    assert (
        "Against the paper's figure (`tables.paper_gaps`): NAC (nac): extracted features for pronostia/Bearing1_1, "
        "pronostia/Bearing1_5, pronostia/Bearing1_6."
    ) in text  # otherwise like for like: 50 epochs, 5 folds


# ---------------------------------------------------------------- section 2


def test_protocol_and_time_effects_are_welch_intervals_on_s_per_row(tmp_path):
    smoke = [_rec("nac", 0.5, seed=s, drop_time=False, overrides=("trainer.epochs=2",)) for s in range(3)]
    text, _ = _write(tmp_path, _paper_nac() + _clean_nac() + smoke)
    effect = [r for r in _table(text, "## 2.", "test bearing") if r["model"] == "NAC (nac)"]
    paper = np.array(PAPER_S) / 14350
    for row, (a, b) in zip(
        [r for r in effect if r["test bearing"] == "PRONOSTIA Bearing1_1"],
        ((paper, np.array(KEPT)), (np.array(KEPT), np.array(DROPPED))),
    ):
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert row["value"] == f"{a.mean() - b.mean():+.6f}"
        assert row["95% CI"] == f"[{ci.low:+.6f}, {ci.high:+.6f}]" and row["runs"] == f"{len(a)} vs {len(b)}"
        assert row["interval"].startswith("Welch, unpaired, df")
    assert effect[0]["difference (S/row)"].startswith("`paper` − `clean` Time kept")
    assert effect[1]["value"] == "-0.013000"  # 0.012 - 0.025; the 2-epoch smoke runs (S/row 0.5) stay out
    smoke_row = [r for r in _table(text, PRONOSTIA, "model") if r["settings"] == "trainer.epochs=2"]
    assert len(smoke_row) == 1 and smoke_row[0]["S/row"] == "0.500000 ± 0.000000"  # listed apart in section 1


# ---------------------------------------------------------------- section 3 (PNG), provenance


def _sets(offset: float) -> dict[str, SetPredictions]:
    true = np.linspace(0.0, 1.0, 50)
    return {name: SetPredictions(true + offset, true) for name in ROWS}


def test_prediction_png_is_written_with_a_panel_per_family(tmp_path):
    records = _paper_nac() + [_rec("lstm", 0.003, fold=f) for f in range(5)]
    text, out = _write(tmp_path, records, predictions={0: _sets(0.1), 5: _sets(-0.13)})  # nac fold 0, lstm fold 0
    png = out.with_name("reproduction_bearings_predictions.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.size[1] > image.size[0] > 500  # three families stacked, one setting (paper) column
    assert "![Predictions on PRONOSTIA Bearing1_1](reproduction_bearings_predictions.png)" in text
    assert "No predictions saved: nac_official (`paper`, fold 0); ltc (`paper`, fold 0)" in text


def test_prediction_figure_plots_the_files_data_and_recomputed_score(tmp_path):
    path = tmp_path / "r.predictions.npz"
    write_predictions(path, _sets(0.1), {"dataset": "bearings", "model": "nac", "seed": 0})
    info, sets = read_predictions(path)
    fig = bearing_predictions_figure(
        {("NAC", "paper"): [(info, sets["pronostia"])]},
        ["NAC", "recurrent"],
        [("paper", "`paper`, fold 0")],
        "pronostia",
    )
    nac, recurrent = fig.axes
    prediction, truth = nac.lines
    true = np.linspace(0.0, 1.0, 50)
    assert np.allclose(prediction.get_ydata(), true + 0.1) and np.allclose(truth.get_ydata(), true)
    s = 50 * (math.exp(0.1 / 10) - 1)  # every error +0.1 >= 0: exp(e / 10) - 1 per row
    assert prediction.get_label() == f"nac: RMSE 0.100, S {s:.4g}"
    assert [t.get_text() for t in recurrent.texts] == ["no predictions saved"]


def test_provenance_gives_each_groups_command(tmp_path):
    text, _ = _write(tmp_path, _paper_nac() + _clean_nac())
    provenance = text[text.index("## 4. Provenance") :]
    assert "`nac-bench experiment=bearings_paper model=nac protocol.fold=0,1,2,3,4`" in provenance
    assert "`nac-bench experiment=bearings_clean model=nac dataset.builder.drop_time=true seed=0,1,2`" in provenance
    assert "`nac-bench experiment=bearings_clean model=nac dataset.builder.drop_time=false seed=0,1,2`" in provenance
    row = next(line for line in provenance.splitlines() if line.startswith("| NAC (nac), `paper` "))
    assert "| 0.50 " in row and "| 0123456 " in row  # 5 runs x 360 s of training


@pytest.mark.parametrize("group", BEARINGS.groups, ids=lambda g: g.key)
def test_every_group_is_what_its_experiment_composes(group):
    config = _config(group.experiment, group.model, *group.overrides())
    model = model_choice(f"experiment={group.experiment}", f"model={group.model}", *group.overrides())
    assert (config["protocol"]["name"], model) == (group.protocol, group.model)
    assert config["trainer"]["epochs"] == 50 and config["dataset"]["name"] == "bearings"
