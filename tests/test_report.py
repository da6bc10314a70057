"""The reproduction report (nac/harness/report.py, scripts/make_report.py) on synthetic E-MNIST records.

References are independent of the code under test: numbers worked out by hand below, t quantiles from a
printed table, and scipy.stats.ttest_ind(equal_var=False) for Welch intervals. Records carry the configs
the shipped experiments resolve to, so the like-for-like check and the commands are the real ones."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from functools import cache

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from nac.harness.records import write_json_atomic
from nac.harness.report import EMNIST, _curve, input_mode, main, verdict, welch_interval
from nac.harness.tables import Summary
from tests.conftest import CONFIGS, ROOT, model_choice

T975_4 = 2.776  # two-sided 95 % Student-t quantile, 4 degrees of freedom (printed table)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FOLD_ACC = [0.95, 0.96, 0.97, 0.94, 0.98]  # mean 96.00, sample std sqrt(10 / 4) = 1.5811, half 2.776 x 0.7071
CLEAN_TEST, CLEAN_VAL = [0.93, 0.94, 0.96], [0.95, 0.955, 0.97]
GROUP_OF = {"emnist_authors": "ga", "emnist_authors_clean": "gac", "emnist_paper": "gp", "emnist_clean": "gc"}


@cache
def _config(experiment: str, model: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_container(
            compose("config", overrides=[f"experiment={experiment}", f"model={model}", *overrides]), resolve=True
        )


def _rec(
    experiment: str,
    model: str,
    acc: float | None,
    seed: int = 0,
    fold: int | None = None,
    val: float | None = None,
    status: str = "ok",
    overrides: tuple[str, ...] = (),
    epochs: int = 3,
    commit: str = COMMIT,
) -> dict:
    config = _config(experiment, model, *overrides)
    protocol = config["protocol"]["name"]
    history = [
        {
            "epoch": e + 1,
            "val_accuracy": (val if val is not None else acc or 0.5) - 0.01 * (epochs - 1 - e),
            "train_loss": 1.0 / (e + 1),
            "lr": 1e-3,
            "epoch_time_s": 600.0,
        }
        for e in range(epochs)
    ]
    return {
        "schema": 1,
        "status": status,
        "model": model,
        "dataset": "emnist",
        "protocol": protocol,
        "fold": fold,
        "seed": seed,
        "tag": "",
        "git_commit": commit,
        "device": "cpu (x86_64, 1 threads)",
        "config": config,
        "data": {"digest": "166732ddb10e3d7a", "files": {}},
        "group_hash": GROUP_OF[experiment] + "".join(overrides) + model,
        "metric": "accuracy",
        "metric_mode": "max",
        "history": history,
        "test": {"accuracy": acc} if acc is not None else {},
        "val": {"accuracy": val if val is not None else acc},
        "started": f"2026-12-0{1 + seed}T10:00:00+00:00",
        "finished": f"2026-12-0{1 + seed}T12:30:00+00:00",
        "wall_time_s": 9000.0,
        "parameters_sequence_model": 10,
        "train_time_per_epoch_s": 600.0,
        "n_train": 56000 if protocol == "paper" else 48000,
        "n_val": 14000 if protocol == "paper" else 12000,
        "n_test": 14000 if protocol == "paper" else 10000,
    }


def _authors(accs=FOLD_ACC, **kw) -> list[dict]:
    return [_rec("emnist_authors", "nac_official", a, fold=f, **kw) for f, a in enumerate(accs)]


def _authors_clean(tests=CLEAN_TEST, vals=CLEAN_VAL) -> list[dict]:
    return [_rec("emnist_authors_clean", "nac_official", t, seed=s, val=v) for s, (t, v) in enumerate(zip(tests, vals))]


def _write(tmp_path, records: list[dict]):
    for i, rec in enumerate(records):
        write_json_atomic(tmp_path / "records" / f"r{i:03d}.json", rec)
    out = tmp_path / "out" / "reproduction_emnist.md"
    assert main(["emnist", "--records", str(tmp_path / "records"), "--out", str(out)]) == 0
    return out.read_text(), out


def _table(text: str, first_header: str) -> dict[str, dict[str, str]]:
    """The Markdown table whose first column is ``first_header``: rows keyed by their first cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.setdefault(cells[0], dict(zip(header, cells)))
    return rows


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


AUTHORS = "NAC (nac_official), authors' pipeline, paper protocol"
AUTHORS_CLEAN = "NAC (nac_official), authors' pipeline, clean protocol"


# ---------------------------------------------------------------- figures and the verdict


@pytest.mark.parametrize("spec", EMNIST.groups, ids=lambda g: g.key)
def test_every_group_is_what_its_experiment_composes(spec):
    """A record of the group's command lands in the group: same protocol, model and input mode."""
    config = _config(spec.experiment, spec.model)
    model = model_choice(f"experiment={spec.experiment}", f"model={spec.model}")
    assert (config["protocol"]["name"], model) == (spec.protocol, spec.model)
    assert input_mode(config) == spec.input_mode and config["trainer"]["epochs"] == 75


def test_group_figures_match_hand_computed_numbers_and_the_paper_is_reproduced(tmp_path):
    text, _ = _write(tmp_path, _authors() + _authors_clean())
    rows = _table(text, "group")
    half = T975_4 * math.sqrt(10 / 4) / math.sqrt(5)  # 1.963
    row = rows[AUTHORS]
    assert row["test acc. (%)"] == "96.00 ± 1.58" and row["runs (ok/total)"] == "5/5" and row["status"] == "complete"
    assert row["test 95% CI"] == f"[{96 - half:.2f}, {96 + half:.2f}]" == "[94.04, 97.96]"
    assert row["paper (%)"] == "96.64" and row["vs paper"] == "like for like"
    clean = rows[AUTHORS_CLEAN]  # 93, 94, 96: mean 94.33, std sqrt(7 / 3) = 1.53
    assert clean["test acc. (%)"] == "94.33 ± 1.53" and clean["val at selected epoch (%)"] == "95.83 ± 1.04"
    assert clean["paper (%)"] == "-" and clean["vs paper"] == "clean protocol"  # not like for like: no figure
    assert _line(text, "**Authors' pipeline") == (
        "**Authors' pipeline, paper protocol:** 96.64 % is reproduced: it lies inside the 95 % CI of the mean "
        "[94.04, 97.96] (96.00 % ± 1.58 over 5 runs)."
    )
    assert rows["LSTM, masked input, clean protocol"]["status"] == "not run yet"


def test_a_miss_is_stated_with_its_size_and_interval(tmp_path):
    text, _ = _write(tmp_path, _authors([a - 0.05 for a in FOLD_ACC]))  # mean 91.00, same spread
    assert _line(text, "**Authors' pipeline") == (
        "**Authors' pipeline, paper protocol:** 96.64 % is not reproduced: missed by 5.64 points "
        "(95 % CI [3.68, 7.60]; runs: 91.00 % ± 1.58 over 5 runs, 95 % CI of the mean [89.04, 92.96])."
    )


def test_verdict_rule_includes_the_bounds_and_names_an_excess():
    at_bound = Summary(5, 95.0, 1.0, 93.0, 96.64)
    assert verdict(at_bound, 96.64, []).startswith("96.64 % is reproduced")
    below = Summary(5, 95.0, 1.0, 93.0, 96.63)
    assert verdict(below, 96.64, []).startswith(
        "96.64 % is not reproduced: missed by 1.64 points (95 % CI [0.01, 3.64]"
    )
    above = Summary(5, 98.0, 1.0, 96.65, 99.35)
    assert verdict(above, 96.64, []).startswith(
        "96.64 % is not reproduced: exceeded by 1.36 points (95 % CI [0.01, 2.71]"
    )
    assert verdict(Summary(1, 97.0, None, None, None), 96.64, []).startswith("No verdict on 96.64 %: a single run")
    assert verdict(Summary(0, None, None, None, None), 96.64, []) == "No verdict on 96.64 %: not run yet."


def test_incomplete_groups_are_marked_and_get_no_verdict(tmp_path):
    records = (
        _authors(FOLD_ACC[:3])
        + [_rec("emnist_authors", "nac_official", None, fold=3, status="failed")]
        + _authors_clean(CLEAN_TEST[:2], CLEAN_VAL[:2])
        + [_rec("emnist_clean", "transformer", None, status="failed")]
    )
    text, _ = _write(tmp_path, records)
    rows = _table(text, "group")
    assert (
        rows[AUTHORS]["status"] == "incomplete: 1 not ok (failed); 3/5 folds"
        and rows[AUTHORS]["runs (ok/total)"] == "3/4"
    )
    assert rows[AUTHORS]["paper (%)"] == "-" and rows[AUTHORS]["vs paper"] == "3 of 5 folds"
    assert rows[AUTHORS_CLEAN]["status"] == "incomplete: seeds 2 missing"
    transformer = rows["Transformer, masked input, clean protocol"]  # every run failed
    assert transformer["status"] == "incomplete: 1 not ok (failed); seeds 0, 1, 2 missing"
    assert transformer["runs (ok/total)"] == "0/1" and transformer["test acc. (%)"] == "-"
    assert _line(text, "**Authors' pipeline").startswith(
        "**Authors' pipeline, paper protocol:** No verdict on 96.64 % yet: the runs are not like for like with the "
        "paper (3 of 5 folds). So far: 96.00 % ± 1.00 over 3 runs."
    )


def test_groups_without_records_say_not_run_yet(tmp_path):
    text, out = _write(tmp_path, [_rec("emnist_clean", "lstm", 0.9, seed=s) for s in range(3)])
    rows = _table(text, "group")
    assert rows[AUTHORS]["status"] == "not run yet" and rows[AUTHORS]["runs (ok/total)"] == "0"
    (tmp_path / "none").mkdir()
    empty = tmp_path / "empty.md"
    assert main(["emnist", "--records", str(tmp_path / "none"), "--out", str(empty)]) == 0
    nothing = _table(empty.read_text(), "group")
    assert {r["status"] for r in nothing.values()} == {"not run yet"} and len(nothing) == len(EMNIST.groups)
    assert nothing[AUTHORS]["test acc. (%)"] == "-" and nothing[AUTHORS]["paper (%)"] == "-"  # every column
    assert not (tmp_path / "empty_curves.png").exists()
    assert "Authors' pipeline, paper protocol:** not run yet, so no verdict on 96.64 %." in text
    assert "Not measured yet: authors' pipeline" in text and "(no difference measured yet)" in text
    assert "No curve yet (not run): " + AUTHORS in text
    # the command that would run a missing group carries its settings (here the NAC mode)
    assert f"{AUTHORS} (`nac-bench experiment=emnist_authors model=nac_official model.mode=euler`)" in text
    exact = "exact mode, paper protocol (`nac-bench experiment=emnist_authors model=nac_official model.mode=exact`)"
    assert exact in text
    assert (out.parent / "reproduction_emnist_curves.png").is_file()  # the LSTM has a curve


# ---------------------------------------------------------------- paper - clean


def test_welch_interval_matches_scipy_and_hand_numbers():
    a, b = [96.0, 95.0, 97.0, 94.0, 98.0], [93.0, 94.0, 96.0]
    d = welch_interval(a, b)
    va, vb = 2.5 / 5, (7 / 3) / 3  # sample variances / n
    assert d.diff == pytest.approx(96.0 - 94.0 - 1 / 3)
    assert d.df == pytest.approx((va + vb) ** 2 / (va**2 / 4 + vb**2 / 2))  # Welch-Satterthwaite, 4.47
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((reference.low, reference.high))
    assert welch_interval([1.0], [2.0, 3.0]).low is None and welch_interval([], [1.0]).diff is None


def test_inflation_rows_are_unpaired_welch_and_within_clean_is_paired(tmp_path):
    text, _ = _write(tmp_path, _authors() + _authors_clean())
    rows = [r for r in text.splitlines() if r.startswith("| authors' pipeline")]
    paper = np.array(FOLD_ACC) * 100
    clean_test, clean_val = np.array(CLEAN_TEST) * 100, np.array(CLEAN_VAL) * 100
    for row, other in zip(rows[:2], (clean_test, clean_val)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        ci = stats.ttest_ind(paper, other, equal_var=False).confidence_interval(0.95)
        assert cells[2] == f"{paper.mean() - other.mean():+.2f}"
        assert cells[3] == f"[{ci.low:+.2f}, {ci.high:+.2f}]" and cells[4].startswith("Welch, unpaired, df")
        assert cells[5] == "5 vs 3"
    assert rows[0].split("|")[2].strip() == "paper test − clean test (the inflation)"
    within = [c.strip() for c in rows[2].strip("|").split("|")]
    diffs = clean_val - clean_test  # 2.0, 1.5, 1.0: mean 1.5, std 0.5, t_{0.975, 2} = 4.303
    half = 4.303 * 0.5 / math.sqrt(3)
    assert within[2] == "+1.50" and within[3] == f"[{1.5 - half:+.2f}, {1.5 + half:+.2f}]" and diffs.mean() == 1.5
    assert within[4] == "paired by run, Student t" and within[5] == "3"
    figures = _table(text[text.index("## 2.") :], "group")
    assert figures[AUTHORS]["val at selected epoch (%)"] == "96.00 ± 1.58 (n = 5)"  # paper: best val = test
    assert figures[AUTHORS]["images (train / val / test)"] == "56,000 / 14,000 / 14,000"
    assert figures[AUTHORS_CLEAN]["images (train / val / test)"] == "48,000 / 12,000 / 10,000"
    assert figures[AUTHORS_CLEAN]["test (%)"] == "94.33 ± 1.53 (n = 3)"
    assert figures[AUTHORS_CLEAN]["val at selected epoch (%)"] == "95.83 ± 1.04 (n = 3)"


# ---------------------------------------------------------------- curves, provenance, other settings


def test_curve_is_the_mean_and_range_over_runs_at_each_epoch():
    runs = [
        {"history": [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}]},
        {"history": [{"epoch": 1, "val_accuracy": 0.7}]},
    ]  # stopped after one epoch
    epochs, mean, low, high = _curve(runs)
    assert list(epochs) == [1, 2]
    assert (
        mean == pytest.approx([60.0, 70.0])
        and low == pytest.approx([50.0, 70.0])
        and high == pytest.approx([70.0, 70.0])
    )


def test_curves_png_is_written_beside_the_report_and_embedded(tmp_path):
    text, out = _write(tmp_path, _authors() + [_rec("emnist_clean", m, 0.9, seed=0) for m in ("lstm", "cfc")])
    png = out.parent / "reproduction_emnist_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.size[0] > 1000 and image.size[1] > 400  # two panels (paper, clean)
    assert "![Validation accuracy per epoch](reproduction_emnist_curves.png)" in text
    assert "first 2 baselines with runs (lstm, cfc)" in text


def test_provenance_reconstructs_the_command_and_other_settings_stay_apart(tmp_path):
    smoke = _authors([0.5] * 5, overrides=("trainer.epochs=2",), epochs=2, commit=COMMIT + "-dirty-abcdef1234")
    text, _ = _write(tmp_path, _authors() + smoke)
    assert "96.64 % is reproduced" in text  # the 2-epoch runs are not pooled with the 75-epoch ones
    assert _table(text, "group")[AUTHORS]["runs (ok/total)"] == "5/5"
    assert f"| {AUTHORS} [trainer.epochs=2] " in text  # listed apart in section 1
    provenance = text[text.index("## 4. Provenance") :]
    main_row = dict(
        zip(
            *[
                [c.strip() for c in line.strip("|").split("|")]
                for line in provenance.splitlines()
                if line.startswith("| group ") or line.startswith(f"| {AUTHORS} ")
            ][:2]
        )
    )
    assert (
        main_row["command"]
        == "`nac-bench experiment=emnist_authors model=nac_official model.mode=euler protocol.fold=0,1,2,3,4`"
    )
    assert main_row["commit(s)"] == "0123456" and main_row["data digest"] == "166732ddb10e3d7a"
    assert main_row["train time (h)"] == "2.50"  # 5 runs x 3 epochs x 600 s
    assert main_row["run wall time (h)"] == "12.50" and main_row["dates"] == "2026-12-01 10:00 – 2026-12-01 12:30 UTC"
    smoke_row = next(line for line in provenance.splitlines() if line.startswith(f"| {AUTHORS} [other settings]"))
    assert (
        "`nac-bench experiment=emnist_authors model=nac_official model.mode=euler trainer.epochs=2 "
        "protocol.fold=0,1,2,3,4`" in smoke_row
    )
    assert "0123456-dirty-abcdef (5 with uncommitted changes)" in smoke_row and "| 1.67 " in smoke_row  # 5 x 2 x 600 s


def test_records_whose_config_names_the_model_report_like_new_ones(tmp_path):
    """Records made while the model configs had ``name:`` (config.model.name) get the same command."""
    old = copy.deepcopy(_authors())
    for rec in old:
        rec["config"]["model"]["name"] = "nac_official"
    text, _ = _write(tmp_path, old)
    assert _table(text, "group")[AUTHORS]["runs (ok/total)"] == "5/5" and "model.name" not in text
    assert "`nac-bench experiment=emnist_authors model=nac_official model.mode=euler protocol.fold=0,1,2,3,4`" in text


def test_records_outside_the_groups_are_listed_not_reported(tmp_path):
    text, _ = _write(tmp_path, _authors() + [_rec("emnist_paper", "nac_official", 0.9, fold=0)])
    assert "## Other records of this dataset" in text
    row = _table(text, "protocol")["paper"]
    assert row["model"] == "nac_official" and row["input_mode"] == "masked" and row["records"] == "1"


@pytest.mark.slow
def test_script_runs_and_bad_records_folder_is_one_line(tmp_path):
    for i, rec in enumerate(_authors()):
        write_json_atomic(tmp_path / "records" / f"r{i}.json", rec)
    out = tmp_path / "r.md"
    proc = subprocess.run(
        [sys.executable, "scripts/make_report.py", "emnist", "--records", str(tmp_path / "records"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("# E-MNIST") and (tmp_path / "r_curves.png").is_file()
    bad_out = tmp_path / "bad.md"
    bad = subprocess.run(
        [
            sys.executable,
            "scripts/make_report.py",
            "emnist",
            "--records",
            str(tmp_path / "nope"),
            "--out",
            str(bad_out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no records at" in bad.stderr
    assert not bad_out.exists()  # nothing written on bad input


def test_nac_against_each_baseline_is_paired_by_seed(tmp_path):
    """NAC − LSTM under clean over the seeds both have (a third NAC seed has no partner): the mean of
    the per-seed differences and its paired-t interval (scipy's ttest_rel), in points; baselines without
    runs are listed as not compared."""
    nac = [0.950, 0.955, 0.940, 0.960]  # seeds 0-3; LSTM has 0-2 only, in another order on disk
    lstm = {2: 0.930, 0: 0.945, 1: 0.945}
    records = [_rec("emnist_clean", "nac", a, seed=s) for s, a in enumerate(nac)]
    records += [_rec("emnist_clean", "lstm", a, seed=s) for s, a in lstm.items()]
    text, _ = _write(tmp_path, records)
    section = text[text.index("### NAC against the baselines") : text.index("## 2.")]
    row = _table(section, "comparison")["nac − lstm"]
    diffs = [100 * (nac[s] - lstm[s]) for s in (0, 1, 2)]  # +0.5, +1.0, +1.0
    ci = stats.ttest_rel([100 * nac[s] for s in (0, 1, 2)], [100 * lstm[s] for s in (0, 1, 2)]).confidence_interval()
    assert row["difference"] == f"{np.mean(diffs):.2f} ± {np.std(diffs, ddof=1):.2f}" == "0.83 ± 0.29"
    assert row["95% CI"] == f"[{ci.low:.2f}, {ci.high:.2f}]"
    assert row["pairs"] == "3" and row["paired by"] == "seed" and row["unpaired"] == "seed 3 (nac only)"
    assert row["verdict"] == "nac better"  # the interval [0.12, 1.55] excludes 0
    assert "Not compared yet (a side has no ok run):" in section and "− CfC, masked input, clean protocol" in section


def test_provenance_names_runs_resumed_from_a_checkpoint(tmp_path):
    runs = _authors()
    runs[1] = {**runs[1], "resumed_from_epoch": 2, "wall_time_s": 600.0}  # the resumed process ran one epoch
    text, _ = _write(tmp_path, runs)
    row = next(line for line in text[text.index("## 4. Provenance") :].splitlines() if line.startswith(f"| {AUTHORS} "))
    wall = 4 * 9000 + 600  # the other four as in the fixture (2.5 h each)
    assert f"| {wall / 3600:.2f} (1 resumed: from the resumption) " in row
    assert "(`resumed_from_epoch`) counts only the process that finished it" in text


@pytest.mark.parametrize("mode", ["exact", "steady"])
def test_the_authors_other_modes_are_groups_paired_by_fold_with_euler(tmp_path, mode):
    """Runs of the authors' pipeline with model.mode=exact or steady: a group of their own (not an "other
    settings" split of the euler group, whose verdict they leave alone), and mode − euler paired fold by
    fold, checked against scipy's ttest_rel."""
    exact = [0.96, 0.965, 0.975, 0.95, 0.985]
    records = _authors() + _authors(exact, overrides=(f"model.mode={mode}",))
    text, _ = _write(tmp_path, records)
    table = _table(text, "group")
    assert table[AUTHORS]["test acc. (%)"] == "96.00 ± 1.58"  # the euler folds only (FOLD_ACC)
    assert table[AUTHORS]["runs (ok/total)"] == "5/5"
    assert table[f"NAC (nac_official), authors' pipeline in {mode} mode, paper protocol"]["test acc. (%)"] == (
        f"{100 * np.mean(exact):.2f} ± {100 * np.std(exact, ddof=1):.2f}"
    )
    assert "other settings" not in text
    section = text[text.index("### NAC against the baselines") : text.index("## 2.")]
    row = _table(section, "comparison")[f"nac_official ({mode}) − nac_official (euler)"]
    diffs = [100 * (e - a) for e, a in zip(exact, FOLD_ACC)]  # +1.0, +0.5, +0.5, +1.0, +0.5
    ci = stats.ttest_rel([100 * e for e in exact], [100 * a for a in FOLD_ACC]).confidence_interval()
    assert row["difference"] == f"{np.mean(diffs):.2f} ± {np.std(diffs, ddof=1):.2f}" == "0.70 ± 0.27"
    assert row["95% CI"] == f"[{ci.low:.2f}, {ci.high:.2f}]"
    assert row["pairs"] == "5" and row["paired by"] == "fold" and row["verdict"] == f"nac_official ({mode}) better"
    provenance = _table(text[text.index("## 4. Provenance") :], "group")
    assert provenance[AUTHORS]["command"].startswith(
        "`nac-bench experiment=emnist_authors model=nac_official model.mode=euler protocol.fold=0,1,2,3,4`"
    )
